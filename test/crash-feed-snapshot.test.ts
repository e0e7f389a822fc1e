/**
 * Regression: the edge feed is one consistent snapshot, so an edge never receives part of a bulk PUT.
 *
 * The feed reads the configuration version, then each hostname's state, one statement at a time. On PostgreSQL
 * those statements ran outside a transaction (READ COMMITTED: each sees what is committed when it starts), so a bulk
 * PUT committing while a feed was being built showed up on some of its hostnames and not others, under a version
 * that predates it: in a probe before the fix (one writer, three readers), 145 of 270 full feeds mixed two PUTs. The feed now reads
 * inside one REPEATABLE READ READ ONLY transaction on PostgreSQL (SQLite reads never overlap a write). Every feed
 * here must show all hostnames pinned to the same certificate, the one of a single PUT.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeCA, makeLeaf } from './helpers/certs.js';
import { startServer, type TestServer } from './helpers/harness.js';
import { storeKind } from './helpers/store.js';

const HOSTNAMES = 30;
const PUTS = 20;
const READERS = 3;

describe(`edge feed snapshots under bulk PUTs (${storeKind})`, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer();
  });
  after(async () => {
    await s?.close();
  });

  test('every feed shows the hostnames of one bulk PUT, never of two', async () => {
    const { cp } = s;
    const zone = (await cp.services.tenancy.getZone(s.zoneId))!;
    const ca = await makeCA();
    const server = await makeLeaf({ issuer: ca, cn: 'edge server' });
    const hostnames = Array.from({ length: HOSTNAMES }, (_, i) => `feed${i}.${s.zoneName}`);
    for (const hostname of hostnames) {
      await cp.edge.addHostname({ hostname, origin: { address: '127.0.0.1', port: 9, tls: false }, certificatePem: server.certPem, keyPem: server.keyPem });
    }
    const certs: string[] = [];
    for (let i = 0; i < 2; i++) {
      const leaf = await makeLeaf({ issuer: ca });
      certs.push((await cp.services.aop.uploadCertificate(zone, 'hostname', { certificate: leaf.certPem, private_key: leaf.keyPem })).id);
    }

    let writing = true;
    const writer = (async () => {
      try {
        for (let i = 0; i < PUTS; i++) {
          await cp.services.aop.putAssociations(zone, hostnames.map((hostname) => ({ hostname, cert_id: certs[i % 2], enabled: true })));
        }
      } finally {
        writing = false;
      }
    })();
    const seen = new Map<string, number>();
    const readers = Array.from({ length: READERS }, async () => {
      while (writing) {
        const feed = await cp.edge.feed(null);
        assert.equal(feed.full, true);
        assert.deepEqual(feed.hostnames.map((h) => h.hostname).sort(), [...hostnames].sort());
        const pinned = [...new Set(feed.hostnames.map((h) => h.origin_client_certificate?.id ?? 'none'))].sort().join(' + ');
        seen.set(pinned, (seen.get(pinned) ?? 0) + 1);
      }
    });
    await writer;
    await Promise.all(readers);

    const mixed = [...seen].filter(([k]) => k.includes(' + '));
    assert.deepEqual(mixed, [], `feeds mixing two PUTs (of ${[...seen.values()].reduce((a, b) => a + b, 0)})`);
    assert.ok([...seen.keys()].some((k) => certs.includes(k)), `feeds were read while the PUTs ran: ${JSON.stringify([...seen])}`);
  });
});

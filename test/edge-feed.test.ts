/**
 * The edge feed and acknowledgements over real HTTP: edge credentials, full snapshots and deltas from the change log,
 * sealed keys only, long polling, and "active" meaning "every live edge acknowledged it" (with the timer kept when no
 * edge is live, and deployment_timed_out when a live edge never acknowledges). Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as http from 'node:http';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import { assertError, assertOk, startServer, type TestServer } from './helpers/harness.js';

const DELAY = 2_000; // the default deploy delay (timer gate)

describe('edge feed', () => {
  let s: TestServer;
  let credential: string;
  let nodeId: string;
  let ca: Issued;
  let serverLeaf: Issued;

  before(async () => {
    s = await startServer({ env: { CERTPLANE_EDGE_GRACE_MS: '30000', CERTPLANE_DEPLOY_TIMEOUT_MS: '60000' } });
    ({ credential, node: { id: nodeId } } = await s.cp.edge.registerNode('edge-1') as any);
    ca = await makeCA({ org: 'Edge Test CA' });
    serverLeaf = await makeLeaf({ issuer: ca, cn: 'app.example.com', dnsNames: ['app.example.com'] });
    await s.cp.edge.addHostname({
      hostname: 'App.Example.com.',
      origin: { address: '127.0.0.1', port: 9443, tls: true, sni: 'origin.internal' },
      certificatePem: serverLeaf.certPem,
      keyPem: serverLeaf.keyPem,
    });
  });
  after(() => s.close());

  const feed = (after: number | null, cred = credential, wait = 0) =>
    s.request('GET', `/../../edge/v1/config?${after === null ? '' : `after=${after}&`}wait=${wait}`, { token: null, headers: { authorization: `Bearer ${cred}` }, noSchema: true });

  const ack = (version: number, failed: { hostname: string; reason: string }[] = []) =>
    s.request('POST', '/../../edge/v1/ack', {
      token: null,
      headers: { authorization: `Bearer ${credential}` },
      body: { version, failed },
      noSchema: true,
    });

  test('an unknown or revoked credential is refused', async () => {
    assertError(await feed(null, 'cpe_' + 'x'.repeat(43)), 401, 10101, 'Invalid or revoked edge credential');
    assertError(await feed(null, s.token), 401, 10101);
    const { node, credential: other } = await s.cp.edge.registerNode('doomed');
    assertOk(await feed(null, other));
    await s.cp.edge.revokeNode(node.id);
    assertError(await feed(null, other), 401, 10101);
  });

  test('a full snapshot carries every hostname with its origin and sealed keys only', async () => {
    const res = assertOk(await feed(null));
    assert.equal(res.full, true);
    assert.equal(res.version, await s.cp.store.read((r) => r.currentVersion()));
    assert.deepEqual(res.remove, []);
    assert.equal(res.hostnames.length, 1);
    const h = res.hostnames[0];
    assert.equal(h.hostname, 'app.example.com');
    assert.equal(h.zone_id, s.zoneId);
    assert.deepEqual(h.origin, { address: '127.0.0.1', port: 9443, tls: true, sni: 'origin.internal', ca_pem: null });
    assert.equal(h.server_certificate.record_id, 'edge-hostname:app.example.com');
    assert.equal(s.cp.vault.open(h.server_certificate.record_id, h.server_certificate.key_sealed), serverLeaf.keyPem);
    assert.deepEqual(h.access_cas, []);
    assert.equal(h.forward_client_certificate, false);
    assert.equal(h.origin_client_certificate, null);
    const text = JSON.stringify(res);
    assert.ok(!text.includes('PRIVATE KEY'), 'no key in clear in the feed');
  });

  test('deltas carry exactly the hostnames each change affects; AOP precedence is resolved for the edge', async () => {
    const z = `/zones/${s.zoneId}`;
    const v0 = assertOk(await feed(null)).version;
    assert.deepEqual(assertOk(await feed(v0)), { version: v0, full: false, hostnames: [], remove: [] });

    // Zone-level AOP: a zone certificate, active, with the zone setting on → the hostname's origin client cert.
    const zoneLeaf = await makeLeaf({ issuer: ca });
    const zc = assertOk(await s.request('POST', `${z}/origin_tls_client_auth`, { body: { certificate: zoneLeaf.certPem, private_key: zoneLeaf.keyPem } }));
    // This edge is live (it polled): the certificate turns active once it acknowledges.
    await ack(assertOk(await feed(null)).version);
    await s.settle(DELAY);
    assertOk(await s.request('PUT', `${z}/origin_tls_client_auth/settings`, { body: { enabled: true } }));
    let d = assertOk(await feed(v0));
    assert.equal(d.full, false);
    assert.deepEqual(d.hostnames.map((h: any) => h.hostname), ['app.example.com']);
    assert.equal(d.hostnames[0].origin_client_certificate.id, zc.id);
    assert.equal(s.cp.vault.open(zc.id, d.hostnames[0].origin_client_certificate.key_sealed), zoneLeaf.keyPem);

    // A hostname pin overrides the zone; enabled:false sends nothing even with zone AOP on; null falls back.
    const hostLeaf = await makeLeaf({ issuer: ca });
    const hc = assertOk(
      await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: hostLeaf.certPem, private_key: hostLeaf.keyPem } }),
    );
    const put = (enabled: boolean | null) =>
      s.request('PUT', `${z}/origin_tls_client_auth/hostnames`, { body: { config: [{ hostname: 'app.example.com', cert_id: hc.id, enabled }] } });
    const v1 = assertOk(await feed(null)).version;
    assertOk(await put(true));
    d = assertOk(await feed(v1));
    assert.equal(d.hostnames[0].origin_client_certificate.id, hc.id);
    assertOk(await put(false));
    assert.equal(assertOk(await feed(null)).hostnames[0].origin_client_certificate, null);
    assertOk(await put(null));
    assert.equal(assertOk(await feed(null)).hostnames[0].origin_client_certificate.id, zc.id);

    // Access: a CA associated with the hostname, and forwarding on.
    const accessCa = await makeCA();
    const v2 = assertOk(await feed(null)).version;
    const acc = assertOk(
      await s.request('POST', `/accounts/${s.accountId}/access/certificates`, { body: { name: 'visitors', certificate: accessCa.certPem, associated_hostnames: ['app.example.com'] } }),
      201,
    );
    assertOk(
      await s.request('PUT', `${z}/access/certificates/settings`, {
        body: { settings: [{ hostname: 'app.example.com', china_network: false, client_certificate_forwarding: true }] },
      }),
      202,
    );
    d = assertOk(await feed(v2));
    assert.deepEqual(d.hostnames[0].access_cas, [{ id: acc.id, pem: accessCa.certPem }]);
    assert.equal(d.hostnames[0].forward_client_certificate, true);

    // A removed hostname is named in `remove`.
    const v3 = assertOk(await feed(null)).version;
    await s.cp.edge.removeHostname('app.example.com');
    d = assertOk(await feed(v3));
    assert.deepEqual(d, { version: v3 + 1, full: false, hostnames: [], remove: ['app.example.com'] });
    await s.cp.edge.addHostname({
      hostname: 'app.example.com',
      origin: { address: '127.0.0.1', port: 9443, tls: true, sni: 'origin.internal' },
      certificatePem: serverLeaf.certPem,
      keyPem: serverLeaf.keyPem,
    });
  });

  test('after=<current> is an empty delta (never a snapshot loop), whatever the version, 0 included', async () => {
    const v = assertOk(await feed(null)).version;
    assert.deepEqual(assertOk(await feed(v)), { version: v, full: false, hostnames: [], remove: [] });
    assert.equal(assertOk(await feed(v + 1000)).full, true, 'a version this database never reached gets a full snapshot');
    const fresh = await startServer();
    try {
      const { credential: c } = await fresh.cp.edge.registerNode('fresh');
      const get = (q: string) =>
        fresh.request('GET', `/../../edge/v1/config?${q}`, { token: null, headers: { authorization: `Bearer ${c}` }, noSchema: true });
      assert.deepEqual(assertOk(await get('')), { version: 0, full: true, hostnames: [], remove: [] });
      assert.deepEqual(assertOk(await get('after=0&wait=0')), { version: 0, full: false, hostnames: [], remove: [] });
    } finally {
      await fresh.close();
    }
  });

  test('long polling returns as soon as something changes', async () => {
    const v = assertOk(await feed(null)).version;
    const waiting = feed(v, credential, 10);
    setTimeout(() => void s.request('PUT', `/zones/${s.zoneId}/origin_tls_client_auth/settings`, { body: { enabled: false } }), 200);
    const d = assertOk(await waiting);
    assert.equal(d.version, v + 1);
    assert.deepEqual(d.hostnames.map((h: any) => h.hostname), ['app.example.com']);
  });

  test('with a live edge, active means acknowledged; without one, the timer is kept', async () => {
    const z = `/zones/${s.zoneId}`;
    await feed(null); // the edge is seen now: it is live
    const leaf = await makeLeaf({ issuer: ca });
    const cert = assertOk(
      await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
    );
    await s.settle(DELAY * 3);
    const get = async () => assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates/${cert.id}`)).status;
    assert.equal(await get(), 'pending_deployment', 'not active before the live edge acknowledges');

    const version = assertOk(await feed(null)).version;
    const ack = await s.request('POST', '/../../edge/v1/ack', {
      token: null,
      headers: { authorization: `Bearer ${credential}` },
      body: { version, failed: [] },
      noSchema: true,
    });
    assert.deepEqual(assertOk(ack), { id: nodeId, acked_version: version });
    await s.cp.deployer.tick();
    assert.equal(await get(), 'active');

    // The edge stops heartbeating: after the grace period it leaves the live set and the timer decides again.
    const leaf2 = await makeLeaf({ issuer: ca });
    const cert2 = assertOk(
      await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: leaf2.certPem, private_key: leaf2.keyPem } }),
    );
    await s.settle(DELAY);
    assert.equal(assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates/${cert2.id}`)).status, 'pending_deployment');
    s.clock.advance(30_001);
    await s.cp.deployer.tick();
    assert.equal(assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates/${cert2.id}`)).status, 'active');
  });

  test('an edge reporting its data plane unhealthy is not live until it reports healthy again', async () => {
    const z = `/zones/${s.zoneId}`;
    const health = (body: unknown) =>
      s.request('POST', '/../../edge/v1/health', { token: null, headers: { authorization: `Bearer ${credential}` }, body, noSchema: true });
    const status = async (id: string) => assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates/${id}`)).status;
    await ack(assertOk(await feed(null)).version); // live and up to date

    assert.deepEqual(assertOk(await health({ healthy: false, reason: 'haproxy exited (SIGKILL)\n' })), {
      id: nodeId,
      healthy: false,
      reason: 'haproxy exited (SIGKILL) ',
    });
    const stored = (await s.cp.edge.listNodes()).find((n) => n.id === nodeId)!;
    assert.equal(stored.healthy, false);
    assert.equal(stored.healthReason, 'haproxy exited (SIGKILL) ');
    // Not serving: a new certificate does not wait for this edge (the timer decides, as with no live edge).
    const leaf = await makeLeaf({ issuer: ca });
    const cert = assertOk(
      await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
    );
    await s.settle(DELAY * 3);
    assert.equal(await status(cert.id), 'active', 'an unhealthy edge does not hold changes back');

    // Serving again: it is live again, and the next change waits for its acknowledgement.
    assert.deepEqual(assertOk(await health({ healthy: true, reason: 'ignored when healthy' })), { id: nodeId, healthy: true, reason: null });
    const leaf2 = await makeLeaf({ issuer: ca });
    const cert2 = assertOk(
      await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: leaf2.certPem, private_key: leaf2.keyPem } }),
    );
    await s.settle(DELAY * 3);
    assert.equal(await status(cert2.id), 'pending_deployment', 'a healthy live edge must acknowledge first');
    await ack(assertOk(await feed(null)).version);
    await s.cp.deployer.tick();
    assert.equal(await status(cert2.id), 'active');

    assertError(await health({ healthy: 'yes' }), 400, 1001);
    assertError(await health({ healthy: false, extra: 1 }), 400, 1001);
    assertError(await s.request('POST', '/../../edge/v1/health', { token: null, headers: { authorization: 'Bearer nope' }, body: { healthy: true }, noSchema: true }), 401, 10101);
  });

  test('a live edge that never acknowledges leads to deployment_timed_out; acknowledging a future version is refused', async () => {
    const z = `/zones/${s.zoneId}`;
    const leaf = await makeLeaf({ issuer: ca });
    const cert = assertOk(
      await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
    );
    await s.cp.deployer.tick();
    for (let t = 0; t < 7; t++) {
      await feed(null); // heartbeat, never an ack
      s.clock.advance(10_000);
      await s.cp.deployer.tick();
    }
    assert.equal(assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates/${cert.id}`)).status, 'deployment_timed_out');
    const res = await s.request('POST', '/../../edge/v1/ack', {
      token: null,
      headers: { authorization: `Bearer ${credential}` },
      body: { version: 1e9, failed: [] },
      noSchema: true,
    });
    assertError(res, 400, 1001, 'Invalid request: cannot acknowledge a future version');
  });

  test('deletions too: pending_deletion turns deleted only once the live edge acknowledged the removal', async () => {
    const z = `/zones/${s.zoneId}`;
    const leaf = await makeLeaf({ issuer: ca });
    const cert = assertOk(
      await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
    );
    const put = (enabled: boolean | null) =>
      s.request('PUT', `${z}/origin_tls_client_auth/hostnames`, { body: { config: [{ hostname: 'del.example.com', cert_id: cert.id, enabled }] } });
    assertOk(await put(true));
    await ack(assertOk(await feed(null)).version);
    await s.settle(0);
    assert.equal(assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/del.example.com`)).status, 'active');

    assertOk(await put(null));
    await feed(null); // seen, but not acknowledging
    await s.settle(DELAY * 3);
    assert.equal(assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/del.example.com`)).status, 'pending_deletion');
    await ack(assertOk(await feed(null)).version);
    await s.cp.deployer.tick();
    assert.equal(assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/del.example.com`)).status, 'deleted');
  });

  test('an association whose hostname a live edge failed to apply is not active: it waits, then times out', async () => {
    const z = `/zones/${s.zoneId}`;
    const leaf = await makeLeaf({ issuer: ca });
    const cert = assertOk(
      await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
    );
    assertOk(
      await s.request('PUT', `${z}/origin_tls_client_auth/hostnames`, {
        body: { config: [{ hostname: 'broken.example.com', cert_id: cert.id, enabled: true }, { hostname: 'fine.example.com', cert_id: cert.id, enabled: true }] },
      }),
    );
    const version = assertOk(await feed(null)).version;
    await ack(version, [{ hostname: 'broken.example.com', reason: 'cannot open its private key' }]);
    await s.settle(0);
    const status = async (h: string) => assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/${h}`)).status;
    assert.equal(await status('fine.example.com'), 'active');
    assert.equal(await status('broken.example.com'), 'pending_deployment');
    for (let t = 0; t < 7; t++) {
      await feed(null); // still live, still failing
      s.clock.advance(10_000);
      await s.cp.deployer.tick();
    }
    assert.equal(await status('broken.example.com'), 'deployment_timed_out');
    await ack(assertOk(await feed(null)).version); // the next acknowledgement reports no failure
  });

  test('failures reported with an acknowledgement are kept per edge', async () => {
    const version = assertOk(await feed(null)).version;
    await s.request('POST', '/../../edge/v1/ack', {
      token: null,
      headers: { authorization: `Bearer ${credential}` },
      body: { version, failed: [{ hostname: 'app.example.com', reason: 'certificate does not parse' }] },
      noSchema: true,
    });
    assert.deepEqual(await s.cp.edge.listFailures(nodeId), [
      { edgeId: nodeId, version, hostname: 'app.example.com', reason: 'certificate does not parse' },
    ]);
    await s.request('POST', '/../../edge/v1/ack', { token: null, headers: { authorization: `Bearer ${credential}` }, body: { version, failed: [] }, noSchema: true });
    assert.deepEqual(await s.cp.edge.listFailures(nodeId), []);
  });
});

describe('shutting down with edges waiting', () => {
  test('a waiting long poll is answered at once, with Connection: close, when the server closes', async () => {
    const srv = await startServer();
    const { credential } = await srv.cp.edge.registerNode('waiting edge');
    const origin = srv.baseUrl.replace(/\/client\/v4$/, '');
    const get = (query: string) =>
      new Promise<{ headers: http.IncomingHttpHeaders; body: any }>((resolve, reject) => {
        http
          .get(`${origin}/edge/v1/config?${query}`, { headers: { authorization: `Bearer ${credential}` }, agent: new http.Agent({ keepAlive: true }) }, (res) => {
            let b = '';
            res.setEncoding('utf8').on('data', (d: string) => (b += d)).on('end', () => resolve({ headers: res.headers, body: JSON.parse(b) }));
          })
          .on('error', reject);
      });
    const version = (await get('wait=0')).body.result.version;
    const poll = get(`after=${version}&wait=30`);
    await new Promise((r) => setTimeout(r, 200)); // the poll is waiting in the server
    await srv.close();
    const r = await poll;
    assert.equal(r.body.success, true);
    assert.equal(r.body.result.version, version);
    assert.equal(r.headers.connection, 'close', 'its keep-alive connection does not outlive the server');
  });
});

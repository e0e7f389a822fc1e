/**
 * Master-key rotation: with the new key current and the old one still known, `rotateSealedKeys` (what
 * `certplane keys rotate` runs) re-seals every stored private key; afterwards the old key alone no longer starts
 * certplane and the new key alone opens every key — and every certificate is still usable: an edge that knows only
 * the new key serves every hostname (its visitor-facing key) and presents every AOP certificate to the origin, each
 * hostname's pinned one and the zone's. Runs on SQLite and on PostgreSQL.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, test } from 'node:test';
import { loadConfig } from '../src/config.js';
import { createKeyVault, verificationToken } from '../src/crypto/vault.js';
import { rotateSealedKeys } from '../src/domain/keys.js';
import type { Zone } from '../src/domain/model.js';
import { startEdgeAgent } from '../src/edge/agent.js';
import type { ApplyResult } from '../src/edge/contract.js';
import { createNodeDataPlane } from '../src/edge/node/index.js';
import { createCertplane, StartupError, type Certplane } from '../src/main.js';
import { makeServerCert } from './edge/certs.js';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import { ManualClock } from './helpers/harness.js';
import { recordDatabaseFiles, recordMasterKey } from './helpers/scan-record.js';
import { databaseEnv } from './helpers/store.js';

const dir = mkdtempSync(join(tmpdir(), 'certplane-keys-'));
const cleanups: (() => Promise<unknown> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  recordDatabaseFiles(dir);
  rmSync(dir, { recursive: true, force: true });
});
const A = randomBytes(32);
const B = randomBytes(32);
recordMasterKey(A.toString('hex'), 'master key A of keys.test');
recordMasterKey(B.toString('hex'), 'master key B of keys.test');
const clock = new ManualClock(Date.now());

async function start(env: Record<string, string>): Promise<Certplane> {
  return createCertplane(loadConfig({ CERTPLANE_DATA_DIR: dir, ...(await databaseEnv(dir)), ...env }), { clock });
}

const sha256 = (pem: string) => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');

test('keys rotate re-seals every private key under the new master key; only the new key opens them, and an edge with it alone serves every certificate', async () => {
  const [aopCa, edgeCa] = await Promise.all([makeCA({ org: 'AOP CA' }), makeCA({ org: 'Edge CA' })]);
  // The origin demands a client certificate from the AOP CA and reports which one it got.
  const originLeaf = await makeServerCert(aopCa, ['origin.internal']);
  const presented: string[] = [];
  const origin = https.createServer({ cert: originLeaf.certPem, key: originLeaf.keyPem, ca: aopCa.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    presented.push(createHash('sha256').update((req.socket as TLSSocket).getPeerCertificate().raw).digest('hex'));
    res.end('ok');
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => origin.close(r)));
  const originPort = (origin.address() as AddressInfo).port;

  const uploaded = new Map<string, string>(); // certificate id → private key PEM
  /** Edge hostname → the AOP certificate the origin must see from it. */
  const served = new Map<string, Issued>();
  const serverCert = await makeServerCert(edgeCa, ['h0.example.com', 'h1.example.com', 'h2.example.com', 'zone.example.com', 'fresh.example.com']);
  async function serve(cp: Certplane, zone: Zone, hostname: string, leaf: Issued, kind: 'hostname' | 'zone') {
    const cert = await cp.services.aop.uploadCertificate(zone, kind, { certificate: leaf.certPem, private_key: leaf.keyPem });
    uploaded.set(cert.id, leaf.keyPem);
    await cp.edge.addHostname({
      hostname,
      origin: { address: '127.0.0.1', port: originPort, tls: true, sni: 'origin.internal', caPem: aopCa.certPem },
      certificatePem: serverCert.certPem,
      keyPem: serverCert.keyPem,
    });
    if (kind === 'hostname') await cp.services.aop.putAssociations(zone, [{ hostname, cert_id: cert.id, enabled: true }]);
    served.set(hostname, leaf);
  }

  let cp = await start({ CERTPLANE_MASTER_KEY: A.toString('hex') });
  const zone = (await cp.services.tenancy.getZone(cp.bootstrap!.zoneId))!;
  for (const h of ['h0.example.com', 'h1.example.com', 'h2.example.com']) await serve(cp, zone, h, await makeLeaf({ issuer: aopCa, cn: h }), 'hostname');
  // zone.example.com has no pin: zone-level AOP presents the zone's active certificate.
  await serve(cp, zone, 'zone.example.com', await makeLeaf({ issuer: aopCa, cn: 'zone certificate' }), 'zone');
  await cp.services.aop.setZoneSetting(zone, true);
  await cp.deployer.tick();
  clock.advance(60_000);
  await cp.deployer.tick();
  await cp.close();

  // Step 1 of a rotation: B seals, A still opens (every node restarted this way, one at a time).
  cp = await start({ CERTPLANE_MASTER_KEY: B.toString('base64'), CERTPLANE_PREVIOUS_MASTER_KEYS: ` ${A.toString('hex')} ` });
  await serve(cp, zone, 'fresh.example.com', await makeLeaf({ issuer: aopCa, cn: 'fresh' }), 'hostname');

  // Step 2: re-seal: every certificate and edge hostname examined, those sealed with A re-sealed.
  const report = await rotateSealedKeys(cp.store, cp.vault, verificationToken(cp.vault), 2);
  assert.deepEqual(report, { examined: 10, resealed: 8 });
  assert.deepEqual(await rotateSealedKeys(cp.store, cp.vault, verificationToken(cp.vault)), { examined: 10, resealed: 0 });

  const onlyB = createKeyVault(B);
  const stored = await cp.store.read((r) => r.aop.listCertificatesAfter('', 100));
  assert.equal(stored.length, 5);
  for (const c of stored) {
    assert.equal(onlyB.keyIdOf(c.privateKeySealed), onlyB.keyId, 'sealed with the new key');
    assert.equal(onlyB.open(c.id, c.privateKeySealed), uploaded.get(c.id), 'opens to the uploaded key');
  }
  const hostnames = await cp.edge.listHostnames();
  assert.deepEqual(hostnames.map((h) => h.hostname).sort(), [...served.keys()].sort());
  for (const h of hostnames) {
    assert.equal(onlyB.keyIdOf(h.serverKeySealed), onlyB.keyId);
    assert.equal(onlyB.open(`edge-hostname:${h.hostname}`, h.serverKeySealed), serverCert.keyPem);
  }
  await cp.close();

  // Step 3: the old key alone is refused; the new key alone starts.
  await assert.rejects(start({ CERTPLANE_MASTER_KEY: A.toString('hex') }), (e: unknown) => e instanceof StartupError);
  cp = await start({ CERTPLANE_MASTER_KEY: B.toString('hex') });
  cleanups.push(() => cp.close());
  assert.equal(cp.bootstrap, null);

  // An edge that knows only the new key gets everything from the feed, opens every key, and serves every hostname
  // with the right client certificate towards the origin.
  const controlPlane = await cp.app.listen({ host: '127.0.0.1', port: 0 });
  const { credential } = await cp.edge.registerNode('edge after rotation');
  const edge = createNodeDataPlane();
  const edgePort = (await edge.start({ host: '127.0.0.1', port: 0 })).port;
  cleanups.push(() => edge.stop());
  const applied: ApplyResult[] = [];
  const agent = startEdgeAgent({ controlPlane, credential, dataPlane: edge, vault: onlyB, waitSeconds: 1, onApplied: (r) => applied.push(r) });
  cleanups.push(() => agent.stop());
  await agent.synced(await cp.store.read((r) => r.currentVersion()));
  assert.deepEqual(applied.flatMap((r) => r.failed), [], 'every hostname applied, every key opened');

  for (const [hostname, leaf] of served) {
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: edgePort, servername: hostname, path: '/', headers: { host: hostname }, ca: edgeCa.certPem, agent: false },
        (res) => res.resume().on('end', () => resolve(res.statusCode!)),
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200, hostname);
    assert.equal(presented.at(-1), sha256(leaf.certPem), `${hostname} presents its AOP certificate to the origin`);
  }
  assert.equal(presented.length, served.size);
});

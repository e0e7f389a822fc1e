/**
 * Master-key rotation: with the new key current and the old one still known, `rotateSealedKeys` (what
 * `certplane keys rotate` runs) re-seals every stored private key; afterwards the old key alone no longer starts
 * certplane and the new key alone opens every key. Runs on SQLite and on PostgreSQL.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadConfig } from '../src/config.js';
import { createKeyVault, verificationToken } from '../src/crypto/vault.js';
import { rotateSealedKeys } from '../src/domain/keys.js';
import { createCertplane, StartupError, type Certplane } from '../src/main.js';
import { makeCA, makeLeaf } from './helpers/certs.js';
import { databaseEnv } from './helpers/store.js';

const dir = mkdtempSync(join(tmpdir(), 'certplane-keys-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = randomBytes(32);
const B = randomBytes(32);

async function start(env: Record<string, string>): Promise<Certplane> {
  return createCertplane(loadConfig({ CERTPLANE_DATA_DIR: dir, ...(await databaseEnv(dir)), ...env }));
}

test('keys rotate re-seals every private key under the new master key, and only the new key opens them', async () => {
  const ca = await makeCA();
  const uploaded = new Map<string, string>(); // certificate id → private key PEM

  let cp = await start({ CERTPLANE_MASTER_KEY: A.toString('hex') });
  const zone = (await cp.services.tenancy.getZone(cp.bootstrap!.zoneId))!;
  for (const kind of ['hostname', 'hostname', 'hostname', 'zone'] as const) {
    const leaf = await makeLeaf({ issuer: ca });
    const cert = await cp.services.aop.uploadCertificate(zone, kind, { certificate: leaf.certPem, private_key: leaf.keyPem });
    uploaded.set(cert.id, leaf.keyPem);
  }
  const serverLeaf = await makeLeaf({ issuer: ca, cn: 'app.example.com', dnsNames: ['app.example.com'] });
  await cp.edge.addHostname({
    hostname: 'app.example.com',
    origin: { address: '127.0.0.1', port: 9443, tls: true },
    certificatePem: serverLeaf.certPem,
    keyPem: serverLeaf.keyPem,
  });
  await cp.close();

  // Step 1 of a rotation: B seals, A still opens (every node restarted this way, one at a time).
  cp = await start({ CERTPLANE_MASTER_KEY: B.toString('base64'), CERTPLANE_PREVIOUS_MASTER_KEYS: ` ${A.toString('hex')} ` });
  const leaf = await makeLeaf({ issuer: ca });
  const fresh = await cp.services.aop.uploadCertificate(zone, 'hostname', { certificate: leaf.certPem, private_key: leaf.keyPem });
  uploaded.set(fresh.id, leaf.keyPem);

  // Step 2: re-seal.
  const report = await rotateSealedKeys(cp.store, cp.vault, verificationToken(cp.vault), 2);
  assert.deepEqual(report, { examined: 6, resealed: 5 });
  assert.deepEqual(await rotateSealedKeys(cp.store, cp.vault, verificationToken(cp.vault)), { examined: 6, resealed: 0 });

  const onlyB = createKeyVault(B);
  const stored = await cp.store.read((r) => r.aop.listCertificatesAfter('', 100));
  assert.equal(stored.length, 5);
  for (const c of stored) {
    assert.equal(onlyB.keyIdOf(c.privateKeySealed), onlyB.keyId, 'sealed with the new key');
    assert.equal(onlyB.open(c.id, c.privateKeySealed), uploaded.get(c.id), 'opens to the uploaded key');
  }
  const [h] = await cp.edge.listHostnames();
  assert.equal(onlyB.keyIdOf(h.serverKeySealed), onlyB.keyId);
  assert.equal(onlyB.open('edge-hostname:app.example.com', h.serverKeySealed), serverLeaf.keyPem);
  await cp.close();

  // Step 3: the old key alone is refused; the new key alone starts.
  await assert.rejects(start({ CERTPLANE_MASTER_KEY: A.toString('hex') }), (e: unknown) => e instanceof StartupError);
  cp = await start({ CERTPLANE_MASTER_KEY: B.toString('hex') });
  assert.equal(cp.bootstrap, null);
  await cp.close();
});

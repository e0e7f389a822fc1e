/**
 * `certplane copy-to-postgres`: an installation written on SQLite through the API, copied into an empty PostgreSQL
 * database, answers every read identically from a node on PostgreSQL (same ids, statuses, credentials, sealed keys).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createKeyVault } from '../src/crypto/vault.js';
import { openPostgresStore } from '../src/storage/postgres/store.js';
import { makeCA, makeLeaf } from './helpers/certs.js';
import { requirePostgresOrSkip, testDatabaseUrl } from './helpers/pg.js';
import { apiRequest, CLI_PATH, pollUntil, startProcess, tempDataDir } from './helpers/process.js';

const skip = requirePostgresOrSkip();
const TOKEN = `Copy_test_${randomBytes(15).toString('hex')}`;
const KEY = randomBytes(32);

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

describe('copy a SQLite installation into PostgreSQL', { skip }, () => {
  const sqliteDir = tempDataDir();
  const pgDir = tempDataDir();
  after(() => {
    rmSync(sqliteDir, { recursive: true, force: true });
    rmSync(pgDir, { recursive: true, force: true });
  });

  let url: string;
  let zoneId: string;
  let accountId: string;
  const reads: string[] = [];
  const before_ = new Map<string, unknown>();
  const keys = new Map<string, string>();

  before(async () => {
    url = await testDatabaseUrl();
  });

  test('write on SQLite, copy, read the same from PostgreSQL', async () => {
    const env = {
      CERTPLANE_DATABASE_URL: '', // SQLite, whatever this run's default store is
      CERTPLANE_MASTER_KEY: KEY.toString('hex'),
      CERTPLANE_BOOTSTRAP_TOKEN: TOKEN,
      CERTPLANE_DEPLOY_DELAY_MS: '50',
      CERTPLANE_DEPLOYER_INTERVAL_MS: '20',
    };
    const src = await startProcess({ dir: sqliteDir, env });
    zoneId = src.banner!.zoneId;
    accountId = src.banner!.accountId;
    const api = (method: string, path: string, body?: unknown) => apiRequest(src.baseUrl, method, path, { token: TOKEN, body });
    const z = (p: string) => `/zones/${zoneId}${p}`;
    const ca = await makeCA();
    const hostLeaf = await makeLeaf({ issuer: ca, keyType: 'rsa2048' });
    const zoneLeaf = await makeLeaf({ issuer: ca });
    const host = (await api('POST', z('/origin_tls_client_auth/hostnames/certificates'), { certificate: hostLeaf.certPem, private_key: hostLeaf.keyPem })).body.result;
    const zc = (await api('POST', z('/origin_tls_client_auth'), { certificate: zoneLeaf.certPem, private_key: zoneLeaf.keyPem })).body.result;
    keys.set(host.id, hostLeaf.keyPem);
    keys.set(zc.id, zoneLeaf.keyPem);
    assert.equal((await api('PUT', z('/origin_tls_client_auth/hostnames'), { config: [{ hostname: 'app.example.com', cert_id: host.id, enabled: true }] })).status, 200);
    assert.equal((await api('PUT', z('/origin_tls_client_auth/settings'), { enabled: true })).status, 200);
    const acc = (await api('POST', `/accounts/${accountId}/access/certificates`, { name: 'acc', certificate: (await makeCA()).certPem, associated_hostnames: ['admin.example.com'] })).body.result;
    const zac = (await api('POST', z('/access/certificates'), { name: 'zone', certificate: (await makeCA()).certPem })).body.result;
    assert.equal((await api('PUT', z('/access/certificates/settings'), { settings: [{ hostname: 'admin.example.com', china_network: false, client_certificate_forwarding: true }] })).status, 202);
    await pollUntil('all active', () => api('GET', z('/origin_tls_client_auth/hostnames/app.example.com')), (r) => r.body.result?.status === 'active' && r.body.result?.cert_status === 'active');
    await pollUntil('zone cert active', () => api('GET', z(`/origin_tls_client_auth/${zc.id}`)), (r) => r.body.result?.status === 'active');

    reads.push(
      '/zones',
      `/zones/${zoneId}`,
      z('/origin_tls_client_auth'),
      z(`/origin_tls_client_auth/${zc.id}`),
      z('/origin_tls_client_auth/settings'),
      z('/origin_tls_client_auth/hostnames/certificates'),
      z(`/origin_tls_client_auth/hostnames/certificates/${host.id}`),
      z('/origin_tls_client_auth/hostnames?status=all'),
      z('/origin_tls_client_auth/hostnames/app.example.com'),
      `/accounts/${accountId}/access/certificates`,
      `/accounts/${accountId}/access/certificates/${acc.id}`,
      z('/access/certificates'),
      z(`/access/certificates/${zac.id}`),
      z('/access/certificates/settings'),
    );
    for (const p of reads) {
      const r = await api('GET', p);
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      before_.set(p, r.body);
    }
    await src.stop();

    const copied = await cli(['copy-to-postgres', '--from', join(sqliteDir, 'certplane.db'), '--to', url]);
    assert.equal(copied.code, 0, copied.stderr);
    const report = JSON.parse(copied.stdout);
    assert.deepEqual({ ...report, config_version: typeof report.config_version }, {
      accounts: 1,
      zones: 1,
      users: 1,
      tokens: 1,
      aop_certificates: 2,
      associations: 1,
      access_certificates: 2,
      access_settings: 1,
      edge_hostnames: 0,
      edge_nodes: 0,
      config_version: 'number',
    });

    // The sealed keys came across untouched: the same master key opens every one, to the uploaded key.
    const store = await openPostgresStore({ connectionString: url });
    try {
      const vault = createKeyVault(KEY);
      for (const c of await store.read((r) => r.aop.listCertificatesAfter('', 100))) {
        assert.equal(vault.open(c.id, c.privateKeySealed), keys.get(c.id));
      }
    } finally {
      await store.close();
    }

    const dst = await startProcess({ dir: pgDir, env: { ...env, CERTPLANE_DATABASE_URL: url } });
    try {
      assert.equal(dst.banner, null, 'the copied installation is not bootstrapped again');
      for (const p of reads) {
        const r = await apiRequest(dst.baseUrl, 'GET', p, { token: TOKEN });
        assert.deepEqual(r.body, before_.get(p), p);
      }
    } finally {
      await dst.stop();
    }

    const again = await cli(['copy-to-postgres', '--from', join(sqliteDir, 'certplane.db'), '--to', url]);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'certplane: the target database is not empty (it has accounts); copy into an empty database\n');
  });
});

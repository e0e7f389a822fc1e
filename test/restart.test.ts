/**
 * Durability across restarts of a real certplane process on one data directory: everything written through the API
 * reads back identically after SIGTERM + start; private keys never reach the SQLite files (or the logs) in plaintext;
 * the master key file is created 0600; a different master key is refused with a clear message and a non-zero exit;
 * a deployment in flight at shutdown completes after the restart.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import {
  apiRequest,
  pollUntil,
  runUntilExit,
  startProcess,
  tempDataDir,
  type BannerCredentials,
  type JsonResponse,
  type ServerProcess,
} from './helpers/process.js';
import { onPostgres, storedText } from './helpers/store.js';

const FAST = { CERTPLANE_DEPLOY_DELAY_MS: '200', CERTPLANE_DELETE_DELAY_MS: '200', CERTPLANE_DEPLOYER_INTERVAL_MS: '50' };

let dir: string;
let creds: BannerCredentials;
let running: ServerProcess | undefined;
let hostLeaf: Issued;
let zoneLeaf: Issued;
let accessRoot: Issued;
let ids: { hostnameCert: string; zoneCert: string; accessAccount: string; accessZone: string };
/** GET path → answer, taken before the first stop. */
let snapshot: Map<string, { status: number; body: unknown }>;
let masterKeyText: string;

async function start(env: Record<string, string> = FAST): Promise<ServerProcess> {
  assert.equal(running, undefined, 'one server at a time');
  running = await startProcess({ dir, env });
  return running;
}

async function stop(): Promise<void> {
  const p = running;
  running = undefined;
  if (!p) return;
  const { code, signal } = await p.stop('SIGTERM');
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, `SIGTERM is a clean shutdown\nstderr: ${p.stderr()}`);
  assert.equal(p.stderr(), '', 'nothing on stderr');
}

const api = <T = any>(method: string, path: string, body?: unknown): Promise<JsonResponse<T>> =>
  apiRequest<T>(running!.baseUrl, method, path, { token: creds.token, body });

function ok<T = any>(res: JsonResponse, status = 200): T {
  assert.equal(res.status, status, res.text);
  assert.equal(res.body.success, true, res.text);
  assert.deepEqual(res.body.errors, []);
  return res.body.result as T;
}

/** The reads that must answer identically after a restart. */
function readPaths(): string[] {
  const z = `/zones/${creds.zoneId}`;
  const a = `/accounts/${creds.accountId}`;
  return [
    `${z}/origin_tls_client_auth/hostnames/certificates`,
    `${z}/origin_tls_client_auth/hostnames/certificates/${ids.hostnameCert}`,
    `${z}/origin_tls_client_auth/hostnames/app.example.com`,
    `${z}/origin_tls_client_auth/hostnames?status=all`,
    `${z}/origin_tls_client_auth/settings`,
    `${z}/origin_tls_client_auth`,
    `${z}/origin_tls_client_auth/${ids.zoneCert}`,
    `${a}/access/certificates`,
    `${a}/access/certificates/${ids.accessAccount}`,
    `${a}/access/certificates/settings`,
    `${z}/access/certificates`,
    `${z}/access/certificates/${ids.accessZone}`,
    `${z}/access/certificates/settings`,
    `/zones?name=example.com`,
    `/user/tokens/verify`,
  ];
}

async function takeSnapshot(): Promise<Map<string, { status: number; body: unknown }>> {
  const out = new Map<string, { status: number; body: unknown }>();
  for (const p of readPaths()) {
    const res = await api('GET', p);
    assert.equal(res.status, 200, `${p}: ${res.text}`);
    out.set(p, { status: res.status, body: res.body });
  }
  return out;
}

/** Everything the database holds: the SQLite file and its WAL as raw bytes, or a PostgreSQL data dump. */
async function databaseBytes(): Promise<{ files: string[]; bytes: Buffer }> {
  if (onPostgres) return { files: ['the PostgreSQL database'], bytes: Buffer.from(await storedText(dir), 'latin1') };
  const files = ['certplane.db', 'certplane.db-wal'].map((f) => join(dir, f)).filter((f) => existsSync(f));
  assert.ok(files.includes(join(dir, 'certplane.db')), 'the database file exists');
  return { files, bytes: Buffer.from(await storedText(dir), 'latin1') };
}

/** Probes for a PEM: a whole base64 line from its body and a 32-byte slice of its DER, from the middle. */
function probes(pem: string): { line: string; der: Buffer } {
  const lines = pem.split('\n').filter((l) => l && !l.startsWith('-----'));
  assert.ok(lines.length >= 3, 'a PEM with a multi-line body');
  const line = lines[Math.floor(lines.length / 2)];
  const der = Buffer.from(lines.join(''), 'base64');
  const mid = Math.floor(der.length / 2);
  return { line, der: der.subarray(mid - 16, mid + 16) };
}

async function assertNoPlaintextKeys(where: string): Promise<void> {
  const { files, bytes } = await databaseBytes();
  // Positive control: the (public) certificates are stored as PEM, so the same search finds them.
  const certProbe = probes(hostLeaf.certPem);
  assert.ok(bytes.includes(Buffer.from(certProbe.line, 'latin1')), `${where}: the search finds the certificate PEM in ${files.join(', ')}`);
  assert.equal(bytes.includes(Buffer.from('PRIVATE KEY', 'latin1')), false, `${where}: "PRIVATE KEY" in ${files.join(', ')}`);
  for (const [name, leaf] of [
    ['hostname certificate key', hostLeaf],
    ['zone certificate key', zoneLeaf],
  ] as const) {
    const p = probes(leaf.keyPem);
    assert.equal(bytes.includes(Buffer.from(p.line, 'latin1')), false, `${where}: a base64 line of the ${name} in ${files.join(', ')}`);
    assert.equal(bytes.includes(p.der), false, `${where}: DER bytes of the ${name} in ${files.join(', ')}`);
  }
}

before(async () => {
  dir = tempDataDir();
  const ca = await makeCA({ keyType: 'p256', org: 'Restart Test CA' });
  [hostLeaf, zoneLeaf, accessRoot] = await Promise.all([
    makeLeaf({ keyType: 'rsa2048', issuer: ca, cn: 'app.example.com' }),
    makeLeaf({ keyType: 'p384', issuer: ca, cn: 'zone client' }),
    makeCA({ keyType: 'p256', org: 'Restart Access Root' }),
  ]);
});

after(async () => {
  if (running) await running.stop('SIGKILL');
  running = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('restart on the same data directory', () => {
  test('first start: bootstrap banner, master key file created with mode 0600', async () => {
    assert.equal(existsSync(join(dir, 'master.key')), false);
    const p = await start();
    assert.ok(p.banner, 'a new installation prints its credentials');
    creds = p.banner;
    assert.equal(creds.zoneName, 'example.com');
    const st = statSync(join(dir, 'master.key'));
    assert.ok(st.isFile());
    assert.equal((st.mode & 0o777).toString(8), '600');
    masterKeyText = readFileSync(join(dir, 'master.key'), 'utf8');
    assert.match(masterKeyText, /^[0-9a-f]{64}\n$/);
  });

  test('write everything through the API and wait until it is active', async () => {
    const z = `/zones/${creds.zoneId}`;
    const hostnameCert = ok(
      await api('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { certificate: hostLeaf.certPem, private_key: hostLeaf.keyPem }),
    ).id;
    const zoneCert = ok(await api('POST', `${z}/origin_tls_client_auth`, { certificate: zoneLeaf.certPem, private_key: zoneLeaf.keyPem })).id;
    assert.deepEqual(ok(await api('PUT', `${z}/origin_tls_client_auth/settings`, { enabled: true })), { enabled: true });
    const accessAccount = ok(
      await api('POST', `/accounts/${creds.accountId}/access/certificates`, {
        name: 'restart account root',
        certificate: accessRoot.certPem,
        associated_hostnames: ['admin.example.com'],
      }),
      201,
    ).id;
    const accessZone = ok(
      await api('POST', `${z}/access/certificates`, {
        name: 'restart zone root',
        certificate: (await makeCA({ keyType: 'p256', org: 'Restart Zone Root' })).certPem,
        associated_hostnames: ['vpn.example.com'],
      }),
      201,
    ).id;
    ids = { hostnameCert, zoneCert, accessAccount, accessZone };

    await pollUntil(
      'hostname certificate active',
      async () => ok(await api('GET', `${z}/origin_tls_client_auth/hostnames/certificates/${hostnameCert}`)).status,
      (s) => s === 'active',
    );
    await pollUntil(
      'zone certificate active',
      async () => ok(await api('GET', `${z}/origin_tls_client_auth/${zoneCert}`)).status,
      (s) => s === 'active',
    );
    const put = ok(
      await api('PUT', `${z}/origin_tls_client_auth/hostnames`, { config: [{ hostname: 'app.example.com', cert_id: hostnameCert, enabled: true }] }),
    );
    assert.equal(put[0].status, 'pending_deployment');
    await pollUntil(
      'association active',
      async () => ok(await api('GET', `${z}/origin_tls_client_auth/hostnames/app.example.com`)).status,
      (s) => s === 'active',
    );
    assert.deepEqual(
      ok(
        await api('PUT', `/accounts/${creds.accountId}/access/certificates/settings`, {
          settings: [{ hostname: 'admin.example.com', china_network: false, client_certificate_forwarding: true }],
        }),
        202,
      ),
      [{ china_network: false, client_certificate_forwarding: true, hostname: 'admin.example.com' }],
    );
    assert.deepEqual(
      ok(
        await api('PUT', `${z}/access/certificates/settings`, {
          settings: [{ hostname: 'vpn.example.com', china_network: false, client_certificate_forwarding: true }],
        }),
        202,
      ),
      [{ china_network: false, client_certificate_forwarding: true, hostname: 'vpn.example.com' }],
    );

    snapshot = await takeSnapshot();
    // Spot checks that the snapshot holds what was written.
    const assoc = snapshot.get(`${z}/origin_tls_client_auth/hostnames/app.example.com`)!.body as any;
    assert.equal(assoc.result.cert_id, hostnameCert);
    assert.equal(assoc.result.status, 'active');
    assert.equal(assoc.result.cert_status, 'active');
    assert.deepEqual((snapshot.get(`${z}/origin_tls_client_auth/settings`)!.body as any).result, { enabled: true });
    assert.deepEqual(
      (snapshot.get(`${z}/origin_tls_client_auth`)!.body as any).result.map((c: any) => [c.id, c.status]),
      [[zoneCert, 'active']],
    );
    assert.deepEqual((snapshot.get(`/accounts/${creds.accountId}/access/certificates/${accessAccount}`)!.body as any).result.associated_hostnames, [
      'admin.example.com',
    ]);
  });

  test('while running: the database holds no plaintext private key', async () => {
    await assertNoPlaintextKeys('running');
  });

  test('SIGTERM stops it cleanly; the files still hold no plaintext key; the logs never showed one', async () => {
    const p = running!;
    await stop();
    await assertNoPlaintextKeys('stopped');
    assert.equal(p.stdout().includes('PRIVATE KEY'), false);
    assert.equal(p.stderr().includes('PRIVATE KEY'), false);
  });

  test('second start: no banner, same credentials work, every read answers identically', async () => {
    const p = await start();
    assert.equal(p.banner, null);
    assert.equal(p.stdout().includes('a new installation was created'), false);
    assert.equal(p.stdout().includes(creds.token), false, 'the token is never printed again');
    const again = await takeSnapshot();
    for (const [path, before] of snapshot) assert.deepEqual(again.get(path), before, path);

    // The global key authenticates too (stored as a hash).
    const viaKey = await apiRequest(p.baseUrl, 'GET', `/zones/${creds.zoneId}/origin_tls_client_auth/hostnames/certificates/${ids.hostnameCert}`, {
      headers: { 'x-auth-email': creds.email, 'x-auth-key': creds.apiKey },
    });
    assert.deepEqual(viaKey.body, snapshot.get(`/zones/${creds.zoneId}/origin_tls_client_auth/hostnames/certificates/${ids.hostnameCert}`)!.body);
    // Still the same master key file.
    assert.equal(readFileSync(join(dir, 'master.key'), 'utf8'), masterKeyText);
    await stop();
  });

  test('a deployment in flight at shutdown completes after the restart', async () => {
    // A long deploy delay keeps the new association pending while this process runs.
    await start({ ...FAST, CERTPLANE_DEPLOY_DELAY_MS: '600000' });
    const put = ok(
      await api('PUT', `/zones/${creds.zoneId}/origin_tls_client_auth/hostnames`, {
        config: [{ hostname: 'late.example.com', cert_id: ids.hostnameCert, enabled: true }],
      }),
    );
    assert.equal(put[0].status, 'pending_deployment');
    await stop();

    await start();
    const late = await pollUntil(
      'association deployed after restart',
      async () => ok(await api('GET', `/zones/${creds.zoneId}/origin_tls_client_auth/hostnames/late.example.com`)),
      (a) => a.status === 'active',
    );
    assert.equal(late.cert_id, ids.hostnameCert);
    assert.equal(late.enabled, true);
    assert.equal(late.created_at, put[0].created_at);
    await stop();
  });

  test('a different CERTPLANE_MASTER_KEY is refused: clear message, exit code 1, no banner, nothing served', async () => {
    const other = 'ab'.repeat(32);
    assert.notEqual(other, masterKeyText.trim());
    const r = await runUntilExit({ dir, env: { ...FAST, CERTPLANE_MASTER_KEY: other } });
    assert.deepEqual({ code: r.code, signal: r.signal }, { code: 1, signal: null }, r.stderr);
    assert.equal(
      r.stderr,
      'certplane: The master key does not match the one this database was created with. Set CERTPLANE_MASTER_KEY ' +
        `(or CERTPLANE_MASTER_KEY_FILE, now ${join(dir, 'master.key')}) to the original key; certplane will not start ` +
        'with a different key because it could not decrypt any stored private key.\n',
    );
    assert.equal(r.stdout, '', 'no banner, no "listening" line');
    assert.equal(readFileSync(join(dir, 'master.key'), 'utf8'), masterKeyText, 'the key file is untouched');
  });

  test('a malformed CERTPLANE_MASTER_KEY is refused with its format', async () => {
    const r = await runUntilExit({ dir, env: { ...FAST, CERTPLANE_MASTER_KEY: 'not-a-key' } });
    assert.deepEqual({ code: r.code, signal: r.signal }, { code: 1, signal: null }, r.stderr);
    assert.equal(r.stderr, 'certplane: CERTPLANE_MASTER_KEY must be 32 bytes, as 64 hex characters or base64\n');
    assert.equal(r.stdout, '');
  });

  test('the original key given in CERTPLANE_MASTER_KEY starts it again, with everything intact', async () => {
    const p = await start({ ...FAST, CERTPLANE_MASTER_KEY: masterKeyText.trim() });
    assert.equal(p.banner, null);
    const again = await takeSnapshot();
    for (const [path, before] of snapshot) {
      if (path.endsWith('/hostnames?status=all')) continue; // late.example.com was added since
      assert.deepEqual(again.get(path), before, path);
    }
    const list = again.get(`/zones/${creds.zoneId}/origin_tls_client_auth/hostnames?status=all`)!.body as any;
    assert.deepEqual(
      list.result.map((a: any) => [a.hostname, a.status]),
      [
        ['app.example.com', 'active'],
        ['late.example.com', 'active'],
      ],
    );
    await stop();
    await assertNoPlaintextKeys('after all restarts');
  });
});

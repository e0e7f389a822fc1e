/**
 * The `certplane` command as an operator runs it: compiled CLI in child processes against a data directory
 * (CERTPLANE_DATA_DIR), administration commands, `serve`, the first-start banner, CERTPLANE_BOOTSTRAP_TOKEN, and
 * refusal to start with a different master key. Every child process is stopped in `after`, even on failure.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  apiRequest,
  childEnv,
  CLI_PATH,
  runUntilExit,
  startProcess,
  tempDataDir,
  type ServerProcess,
  type StartProcessOptions,
} from './helpers/process.js';
import { describeDatabase, loadConfig } from '../src/config.js';
import { databaseEnv } from './helpers/store.js';

const dirs: string[] = [];
const servers: ServerProcess[] = [];
const children = new Set<ChildProcess>();

function newDir(): string {
  const d = tempDataDir();
  dirs.push(d);
  return d;
}

async function serve(opts: StartProcessOptions): Promise<ServerProcess> {
  const p = await startProcess(opts);
  servers.push(p);
  return p;
}

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/src/cli/index.js ...args` against a data directory and waits for it to exit. */
async function cli(dir: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: await childEnv(dir, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(killer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a command that must succeed and print JSON only. */
async function cliJson<T = any>(dir: string, args: string[], env?: Record<string, string>): Promise<T> {
  const r = await cli(dir, args, env);
  assert.equal(r.code, 0, `certplane ${args.join(' ')} failed: ${r.stderr}`);
  assert.equal(r.stderr, '');
  return JSON.parse(r.stdout) as T;
}

const settingsPath = (zoneId: string) => `/zones/${zoneId}/origin_tls_client_auth/settings`;
const hexKey = () => randomBytes(32).toString('hex');
const MASTER_KEY_MISMATCH = 'The master key does not match the one this database was created with.';

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(servers.map((p) => p.stop('SIGKILL')));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('an installation managed with the CLI', () => {
  let dir: string;
  let bootstrap: NonNullable<ServerProcess['banner']>;

  before(() => {
    dir = newDir();
  });

  test('the first start prints the credentials once, with a curl line; the second start does not', async () => {
    const first = await serve({ dir });
    assert.ok(first.banner, `no banner on the first start: ${first.stdout()}`);
    bootstrap = first.banner;
    const out = first.stdout();
    assert.equal(bootstrap.zoneName, 'example.com');
    assert.equal(bootstrap.email, 'admin@example.com');
    assert.ok(out.includes('These credentials are shown ONCE'));
    assert.ok(
      out.includes(
        `  export CLOUDFLARE_API_TOKEN=${bootstrap.token} ZONE_ID=${bootstrap.zoneId} ACCOUNT_ID=${bootstrap.accountId}\n`,
      ),
      out,
    );
    assert.ok(
      out.includes(
        `  curl ${first.origin}/client/v4/zones/$ZONE_ID/origin_tls_client_auth/settings -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN"\n`,
      ),
      out,
    );
    // The banner is printed once per start: the token appears exactly twice (its line and the export line).
    assert.equal(out.split(bootstrap.token).length - 1, 2);
    assert.equal(out.split('a new installation was created').length - 1, 1);

    // What the curl line does, and the global key.
    const r = await apiRequest(first.baseUrl, 'GET', settingsPath(bootstrap.zoneId), { token: bootstrap.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { success: true, errors: [], messages: [], result: { enabled: false } });
    const k = await apiRequest(first.baseUrl, 'GET', settingsPath(bootstrap.zoneId), {
      headers: { 'X-Auth-Email': bootstrap.email, 'X-Auth-Key': bootstrap.apiKey },
    });
    assert.equal(k.status, 200, k.text);
    assert.deepEqual(await first.stop(), { code: 0, signal: null });

    const second = await serve({ dir });
    assert.equal(second.banner, null);
    const out2 = second.stdout();
    assert.ok(out2.includes(`certplane listening on ${second.origin}/client/v4`), out2);
    assert.equal(out2.includes(bootstrap.token), false);
    assert.equal(out2.includes(bootstrap.apiKey), false);
    assert.equal(out2.includes('curl'), false);
    // The credentials survive the restart.
    const again = await apiRequest(second.baseUrl, 'GET', settingsPath(bootstrap.zoneId), { token: bootstrap.token });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(await second.stop(), { code: 0, signal: null });
  });

  test('account, zone, user and token administration; the tokens authenticate over HTTP (the revoked one does not)', async () => {
    assert.ok(bootstrap, 'needs the first test');
    const account = await cliJson(dir, ['account', 'create', 'Acme Corp']);
    assert.match(account.id, /^[0-9a-f]{32}$/);
    assert.equal(account.name, 'Acme Corp');

    const zone = await cliJson(dir, ['zone', 'create', 'Acme.Example.', '--account', account.id]);
    assert.match(zone.id, /^[0-9a-f]{32}$/);
    assert.equal(zone.name, 'acme.example');
    assert.equal(zone.account_id, account.id);

    const all = await cliJson<{ id: string; name: string }[]>(dir, ['zone', 'list']);
    assert.deepEqual(all.map((z) => [z.name, z.id]), [
      ['acme.example', zone.id],
      ['example.com', bootstrap.zoneId],
    ]);
    const mine = await cliJson<{ id: string; name: string }[]>(dir, ['zone', 'list', '--account', account.id]);
    assert.deepEqual(mine.map((z) => z.name), ['acme.example']);

    const user = await cliJson(dir, ['user', 'create', 'Ops@Acme.Example', '--account', account.id]);
    assert.equal(user.email, 'ops@acme.example');
    assert.match(user.api_key, /^[0-9a-f]{37}$/);

    const ro = await cliJson(dir, ['token', 'create', '--name', 'read only', '--permission', 'SSL and Certificates Read', '--zone', zone.id]);
    assert.match(ro.id, /^[0-9a-f]{32}$/);
    assert.match(ro.token, /^[A-Za-z0-9_-]{40}$/);
    assert.deepEqual(
      { name: ro.name, policies: ro.policies, expires_on: ro.expires_on, not_before: ro.not_before },
      { name: 'read only', policies: [{ permissions: ['ssl:read'], scopes: [{ type: 'zone', id: zone.id }] }], expires_on: null, not_before: null },
    );
    const doomed = await cliJson(dir, [
      'token', 'create', '--name', 'doomed',
      '--permission', 'SSL and Certificates Write', 'Access: Mutual TLS Certificates Write',
      '--account', account.id,
    ]);
    assert.deepEqual(doomed.policies, [
      { permissions: ['ssl:write', 'access-certificate:write'], scopes: [{ type: 'account', id: account.id }] },
    ]);

    const listRun = await cli(dir, ['token', 'list']);
    assert.equal(listRun.code, 0, listRun.stderr);
    for (const secret of [ro.token, doomed.token, bootstrap.token]) assert.equal(listRun.stdout.includes(secret), false);
    const listed = JSON.parse(listRun.stdout) as Record<string, unknown>[];
    assert.deepEqual(
      listed.map((t) => [t.id, t.name, t.status]).sort(),
      [
        [ro.id, 'read only', 'active'],
        [doomed.id, 'doomed', 'active'],
        [listed.find((t) => t.name === 'bootstrap token (all permissions)')!.id, 'bootstrap token (all permissions)', 'active'],
      ].sort(),
    );
    for (const t of listed) assert.deepEqual(Object.keys(t).sort(), ['expires_on', 'id', 'name', 'policies', 'status']);

    const revoked = await cliJson(dir, ['token', 'revoke', doomed.id]);
    assert.deepEqual(revoked, { id: doomed.id, status: 'disabled' });
    const after = await cliJson<{ id: string; status: string }[]>(dir, ['token', 'list']);
    assert.equal(after.find((t) => t.id === doomed.id)!.status, 'disabled');
    assert.equal(after.find((t) => t.id === ro.id)!.status, 'active');

    const p = await serve({ dir });
    assert.equal(p.banner, null);
    const get = (token: string, zoneId: string) => apiRequest(p.baseUrl, 'GET', settingsPath(zoneId), { token });
    const okRes = await get(ro.token, zone.id);
    assert.equal(okRes.status, 200, okRes.text);
    assert.deepEqual(okRes.body.result, { enabled: false });
    // Read only, and only its zone.
    const put = await apiRequest(p.baseUrl, 'PUT', settingsPath(zone.id), { token: ro.token, body: { enabled: true } });
    assert.equal(put.status, 403);
    assert.deepEqual(put.body.errors, [{ code: 10000, message: 'Authentication error' }]);
    const elsewhere = await get(ro.token, bootstrap.zoneId);
    assert.equal(elsewhere.status, 403);
    assert.deepEqual(elsewhere.body.errors, [{ code: 10000, message: 'Authentication error' }]);
    // The revoked token.
    const dead = await get(doomed.token, zone.id);
    assert.equal(dead.status, 401);
    assert.deepEqual(dead.body.errors, [{ code: 9109, message: 'Invalid access token' }]);
    const verify = await apiRequest(p.baseUrl, 'GET', '/user/tokens/verify', { token: ro.token });
    assert.equal(verify.status, 200);
    assert.deepEqual(verify.body.result, { id: ro.id, status: 'active' });
    // The user's global key: its account's zone, not the bootstrap zone.
    const keyHeaders = { 'X-Auth-Email': 'ops@acme.example', 'X-Auth-Key': user.api_key };
    const own = await apiRequest(p.baseUrl, 'GET', settingsPath(zone.id), { headers: keyHeaders });
    assert.equal(own.status, 200, own.text);
    const notMine = await apiRequest(p.baseUrl, 'GET', settingsPath(bootstrap.zoneId), { headers: keyHeaders });
    assert.equal(notMine.status, 403);

    // Administration while the server runs: a new token works at once, a revocation takes effect at once.
    const live = await cliJson(dir, ['token', 'create', '--name', 'live', '--permission', 'SSL and Certificates Write', '--all']);
    const livePut = await apiRequest(p.baseUrl, 'PUT', settingsPath(zone.id), { token: live.token, body: { enabled: true } });
    assert.equal(livePut.status, 200, livePut.text);
    assert.deepEqual(livePut.body.result, { enabled: true });
    await cliJson(dir, ['token', 'revoke', live.id]);
    const liveDead = await get(live.token, zone.id);
    assert.equal(liveDead.status, 401);
    assert.deepEqual(await p.stop(), { code: 0, signal: null });
  });

  test('an unknown permission group, or a token without a scope → non-zero exit and a clear message; nothing created', async () => {
    const before = await cliJson<unknown[]>(dir, ['token', 'list']);
    // These fail without writing anything, so they can run side by side.
    const [unknown, mixed, noScope, badZone, noPermission, badAccount, revokeUnknown] = await Promise.all([
      cli(dir, ['token', 'create', '--name', 'x', '--permission', 'SSL Admin', '--all']),
      cli(dir, ['token', 'create', '--name', 'x', '--permission', 'SSL and Certificates Read', 'ssl:read', '--all']),
      cli(dir, ['token', 'create', '--name', 'x', '--permission', 'SSL and Certificates Read']),
      cli(dir, ['token', 'create', '--name', 'x', '--permission', 'SSL and Certificates Read', '--zone', 'f'.repeat(32)]),
      cli(dir, ['token', 'create', '--name', 'x', '--all']),
      cli(dir, ['zone', 'create', 'other.example', '--account', 'f'.repeat(32)]),
      cli(dir, ['token', 'revoke', 'f'.repeat(32)]),
    ]);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stdout, '');
    assert.equal(
      unknown.stderr,
      'certplane: validation: unknown permission group "SSL Admin"; known: SSL and Certificates Read, SSL and Certificates Write, ' +
        'Access: Mutual TLS Certificates Read, Access: Mutual TLS Certificates Write\n',
    );
    // One bad group among good ones is refused too.
    assert.equal(mixed.code, 1);
    assert.match(mixed.stderr, /^certplane: validation: unknown permission group "ssl:read"; known: /);

    assert.equal(noScope.code, 1);
    assert.equal(noScope.stderr, 'certplane: give --zone, --account or --all\n');

    assert.equal(badZone.code, 1);
    assert.equal(badZone.stderr, `certplane: zone_not_found: ${'f'.repeat(32)}\n`);

    assert.equal(noPermission.code, 1);
    assert.match(noPermission.stderr, /required option '--permission <group\.\.\.>' not specified/);

    assert.deepEqual(await cliJson<unknown[]>(dir, ['token', 'list']), before);

    assert.equal(badAccount.code, 1);
    assert.equal(badAccount.stderr, `certplane: account_not_found: ${'f'.repeat(32)}\n`);
    assert.equal(revokeUnknown.code, 1);
    assert.equal(revokeUnknown.stderr, `certplane: token_not_found: ${'f'.repeat(32)}\n`);
  });

  test('a different CERTPLANE_MASTER_KEY than the data dir was created with → refuses to start, clearly', async () => {
    // This installation's key is the generated master.key file; any other key is refused, by serve and by admin commands.
    const wrong = await runUntilExit({ dir, env: { CERTPLANE_MASTER_KEY: hexKey() } });
    assert.equal(wrong.code, 1);
    assert.ok(wrong.stderr.startsWith(`certplane: ${MASTER_KEY_MISMATCH}`), wrong.stderr);
    assert.ok(wrong.stderr.includes('CERTPLANE_MASTER_KEY'));
    assert.equal(wrong.stdout.includes('listening'), false);
    const admin = await cli(dir, ['zone', 'list'], { CERTPLANE_MASTER_KEY: hexKey() });
    assert.equal(admin.code, 1);
    assert.ok(admin.stderr.startsWith(`certplane: ${MASTER_KEY_MISMATCH}`), admin.stderr);
    assert.equal(admin.stdout, '');
    // The right key (the file) still works afterwards.
    assert.equal((await cliJson<unknown[]>(dir, ['zone', 'list'])).length, 2);
  });
});

describe('first start options', () => {
  test('CERTPLANE_BOOTSTRAP_TOKEN (and _API_KEY) make those exact credentials work', async () => {
    const dir = newDir();
    const token = 'My_Bootstrap-Token_0123456789abcdefghijk';
    assert.equal(token.length, 40);
    const apiKey = randomBytes(19).toString('hex').slice(0, 37);
    const p = await serve({ dir, env: { CERTPLANE_BOOTSTRAP_TOKEN: token, CERTPLANE_BOOTSTRAP_API_KEY: apiKey } });
    assert.ok(p.banner);
    assert.equal(p.banner.token, token);
    assert.equal(p.banner.apiKey, apiKey);
    const v = await apiRequest(p.baseUrl, 'GET', '/user/tokens/verify', { token });
    assert.equal(v.status, 200, v.text);
    assert.equal(v.body.result.status, 'active');
    const r = await apiRequest(p.baseUrl, 'GET', settingsPath(p.banner.zoneId), { token });
    assert.equal(r.status, 200, r.text);
    const k = await apiRequest(p.baseUrl, 'GET', settingsPath(p.banner.zoneId), {
      headers: { 'X-Auth-Email': 'admin@example.com', 'X-Auth-Key': apiKey },
    });
    assert.equal(k.status, 200, k.text);
    await p.stop();

    // On a later start the variable changes nothing: no banner, the new value is not a token, the old one still is.
    const other = 'Another_Bootstrap_Token_0123456789abcdef';
    const p2 = await serve({ dir, env: { CERTPLANE_BOOTSTRAP_TOKEN: other } });
    assert.equal(p2.banner, null);
    assert.equal((await apiRequest(p2.baseUrl, 'GET', '/user/tokens/verify', { token: other })).status, 401);
    assert.equal((await apiRequest(p2.baseUrl, 'GET', '/user/tokens/verify', { token })).status, 200);
    await p2.stop();
  });

  test('a malformed CERTPLANE_BOOTSTRAP_TOKEN fails the first start and leaves nothing half-created', async () => {
    const dir = newDir();
    const bad = await runUntilExit({ dir, env: { CERTPLANE_BOOTSTRAP_TOKEN: 'too-short' } });
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'certplane: validation: an API token is 40 characters of A-Z, a-z, 0-9, "-" and "_"\n');
    assert.equal(bad.stdout.includes('a new installation was created'), false);
    // A start with a good token then bootstraps normally (the failed one left no account or zone behind).
    const token = 'Second_try_token_0123456789_abcdefghijkl';
    assert.equal(token.length, 40);
    const p = await serve({ dir, env: { CERTPLANE_BOOTSTRAP_TOKEN: token } });
    assert.ok(p.banner, p.stdout());
    assert.equal(p.banner.token, token);
    await p.stop();
    const accounts = await cliJson<{ name: string }[]>(dir, ['account', 'list']);
    assert.deepEqual(accounts.map((a) => a.name), ['Default account']);
  });

  test('the first admin command on an empty data dir bootstraps and prints the banner, with the configured port', async () => {
    const dir = newDir();
    const r = await cli(dir, ['account', 'list'], { CERTPLANE_PORT: '9123' });
    assert.equal(r.code, 0, r.stderr);
    // The banner goes to stderr so that an administration command's stdout stays pure JSON.
    assert.ok(r.stderr.includes('a new installation was created'), r.stderr);
    assert.ok(r.stderr.includes('  curl http://127.0.0.1:9123/client/v4/zones/$ZONE_ID/origin_tls_client_auth/settings'), r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { name: string }[]).map((a) => a.name), ['Default account']);
    // The next command prints no banner.
    assert.deepEqual((await cliJson<{ name: string }[]>(dir, ['account', 'list'])).map((a) => a.name), ['Default account']);
  });

  test('CERTPLANE_MASTER_KEY: the same key (hex or base64) starts, another key or a malformed one does not', async () => {
    const dir = newDir();
    const key = randomBytes(32);
    const first = await serve({ dir, env: { CERTPLANE_MASTER_KEY: key.toString('hex') } });
    assert.ok(first.banner);
    await first.stop();

    const wrong = await runUntilExit({ dir, env: { CERTPLANE_MASTER_KEY: hexKey() } });
    assert.equal(wrong.code, 1);
    assert.ok(wrong.stderr.startsWith(`certplane: ${MASTER_KEY_MISMATCH}`), wrong.stderr);
    // Without the variable there is no key at all for this database (the SQLite file or the PostgreSQL database):
    // refused with one clear line, nothing served, and no useless key file left behind.
    const none = await runUntilExit({ dir });
    assert.equal(none.code, 1);
    const database = describeDatabase(loadConfig({ CERTPLANE_DATA_DIR: dir, ...(await databaseEnv(dir)) }));
    assert.equal(
      none.stderr,
      `certplane: The database ${database} exists but its master key does not: set CERTPLANE_MASTER_KEY ` +
        `or restore the key file ${join(dir, 'master.key')} (CERTPLANE_MASTER_KEY_FILE).\n`,
    );
    assert.equal(none.stdout, '');
    assert.equal(existsSync(join(dir, 'master.key')), false);

    const malformed = await runUntilExit({ dir, env: { CERTPLANE_MASTER_KEY: 'not-a-key' } });
    assert.equal(malformed.code, 1);
    assert.equal(malformed.stderr, 'certplane: CERTPLANE_MASTER_KEY must be 32 bytes, as 64 hex characters or base64\n');

    const same = await serve({ dir, env: { CERTPLANE_MASTER_KEY: key.toString('base64') } });
    assert.equal(same.banner, null);
    const r = await apiRequest(same.baseUrl, 'GET', '/zones', { token: first.banner.token });
    assert.equal(r.status, 200, r.text);
    await same.stop();
  });
});

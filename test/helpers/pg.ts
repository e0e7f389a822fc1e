/**
 * Throw-away PostgreSQL clusters for tests: `initdb` into a temp dir, `pg_ctl start` on a free loopback port, stop
 * and delete afterwards. Needs only the server binaries (no system-wide server, no network).
 *
 * Running as root: initdb and postgres refuse to run as root, so when `process.getuid() === 0` every server command
 * runs as an unprivileged user: $CERTPLANE_PG_USER, else `postgres` (created by the distribution's server package),
 * else `nobody`. Privileges are dropped with `setpriv` (util-linux, no PAM, execs in place), else `runuser -u`, else
 * `su -s /bin/sh`; the cluster's temp dir is chowned to that user, and is created under os.tmpdir() only if that
 * directory is world-traversable (else /tmp), so the user can reach it.
 *
 * Every cluster is also stopped when this process exits, and a small detached watchdog stops it and deletes its
 * directory if the process is killed (SIGKILL, Ctrl-C), so no stray postmaster survives a test run.
 *
 * Usable from a plain .mjs script through dist/test/helpers/pg.js:
 *   const c = await startCluster(); process.env.CERTPLANE_TEST_PG_URL = c.url; ...; await c.stop();
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { freePort } from './net.js';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';

export interface PgCluster {
  /** Superuser URL of the cluster's `postgres` database: postgresql://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  dataDir: string;
  /** The cluster's temp dir (data dir, socket, server log). */
  dir: string;
  /** Starts the server again (same dir and port) after `stop({ keepData: true })`. */
  start(): Promise<void>;
  /**
   * `pg_ctl -m fast stop`, then deletes the cluster's directory, unless `keepData` (to `start()` it again: a
   * restart). Idempotent.
   */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

const isExecutable = (p: string) => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};
const hasServerBinaries = (dir: string) => isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'pg_ctl'));

/** Directory holding initdb + pg_ctl: $CERTPLANE_PG_BIN, `pg_config --bindir`, newest /usr/lib/postgresql/N/bin, PATH. */
export function findPgBin(): string | null {
  const env = process.env.CERTPLANE_PG_BIN;
  if (env) return hasServerBinaries(env) ? env : null;
  const cfg = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  if (cfg.status === 0) {
    const dir = cfg.stdout.trim();
    if (dir && hasServerBinaries(dir)) return dir;
  }
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const dir = join('/usr/lib/postgresql', v, 'bin');
      if (hasServerBinaries(dir)) return dir;
    }
  } catch {
    // no Debian-style install
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && hasServerBinaries(dir)) return dir;
  }
  return null;
}

export const pgAvailable: boolean = findPgBin() !== null || !!process.env.CERTPLANE_TEST_PG_URL;

const SKIP_MESSAGE =
  'PostgreSQL server binaries not found: PostgreSQL suites SKIPPED; install postgresql or set CERTPLANE_PG_BIN';
let warned = false;

/**
 * False when PostgreSQL can be used. Otherwise: throws when CERTPLANE_REQUIRE_POSTGRES=1 (CI must not pass by
 * skipping), else warns loudly on stderr, calls `t.skip()` if given a test context, and returns the reason, for
 * node:test's `skip` option: `test('x', { skip: requirePostgresOrSkip() }, ...)`.
 */
export function requirePostgresOrSkip(t?: { skip(message?: string): void }): string | false {
  if (pgAvailable) return false;
  if (process.env.CERTPLANE_REQUIRE_POSTGRES === '1') {
    throw new Error(
      'PostgreSQL server binaries not found and CERTPLANE_REQUIRE_POSTGRES=1: install postgresql, set CERTPLANE_PG_BIN or CERTPLANE_TEST_PG_URL',
    );
  }
  if (!warned) {
    warned = true;
    const bar = '!'.repeat(SKIP_MESSAGE.length);
    process.stderr.write(`\n${bar}\n${SKIP_MESSAGE}\n${bar}\n\n`);
  }
  t?.skip(SKIP_MESSAGE);
  return SKIP_MESSAGE;
}

// ---- running server commands (dropping root) ----

interface RunAs {
  name: string;
  uid: number;
  gid: number;
  wrap(cmd: string, args: string[]): [string, string[]];
}

function onPath(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin'])) {
    if (dir && isExecutable(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

let runAsCache: RunAs | null | undefined;
function runAs(): RunAs | null {
  if (runAsCache !== undefined) return runAsCache;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return (runAsCache = null);
  const candidates = [process.env.CERTPLANE_PG_USER, 'postgres', 'nobody'].filter((n): n is string => !!n);
  for (const name of candidates) {
    const u = spawnSync('id', ['-u', name], { encoding: 'utf8' });
    const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
    if (u.status !== 0 || g.status !== 0) continue;
    const uid = Number(u.stdout.trim());
    const gid = Number(g.stdout.trim());
    if (!Number.isInteger(uid) || uid === 0) continue;
    const setpriv = onPath('setpriv');
    const runuser = onPath('runuser');
    const su = onPath('su');
    let wrap: RunAs['wrap'];
    if (setpriv) {
      wrap = (cmd, args) => [setpriv, [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', cmd, ...args]];
    } else if (runuser) {
      wrap = (cmd, args) => [runuser, ['-u', name, '--', cmd, ...args]];
    } else if (su) {
      wrap = (cmd, args) => [su, ['-s', '/bin/sh', name, '-c', [cmd, ...args].map(shellQuote).join(' ')]];
    } else {
      throw new Error('test/helpers/pg: running as root, but none of setpriv, runuser, su is available to drop privileges');
    }
    return (runAsCache = { name, uid, gid, wrap });
  }
  throw new Error(
    `test/helpers/pg: running as root and no unprivileged user (${candidates.join(', ')}) exists to run PostgreSQL as; set CERTPLANE_PG_USER`,
  );
}

/** Environment for server commands: without PG* variables that could point them somewhere else. */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return env;
}

function command(bin: string, tool: string, args: string[]): [string, string[]] {
  const full = join(bin, tool);
  const as = runAs();
  return as ? as.wrap(full, args) : [full, args];
}

function run(bin: string, tool: string, args: string[], cwd: string, timeoutMs = 60_000): Promise<{ code: number | null; output: string }> {
  const [cmd, argv] = command(bin, tool, args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd, env: serverEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function runSync(bin: string, tool: string, args: string[], cwd: string): void {
  const [cmd, argv] = command(bin, tool, args);
  spawnSync(cmd, argv, { cwd, env: serverEnv(), stdio: 'ignore', timeout: 15_000 });
}


function baseTempDir(): string {
  const base = tmpdir();
  if (!runAs()) return base;
  try {
    // The unprivileged user must be able to traverse to its directory.
    if ((statSync(base).mode & 0o001) !== 0) return base;
  } catch {
    // fall through
  }
  return '/tmp';
}

const tail = (path: string) => {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no server log)';
  }
};

// ---- clusters ----

interface Live {
  bin: string;
  dir: string;
  dataDir: string;
  running: boolean;
  removed: boolean;
}
const live = new Set<Live>();
let exitHookInstalled = false;

/** Synchronous last-chance cleanup when the process exits with clusters still up. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) {
      if (c.running) runSync(c.bin, 'pg_ctl', ['-D', c.dataDir, '-m', 'immediate', '-w', 'stop'], c.dir);
      if (!c.removed) rmSync(c.dir, { recursive: true, force: true });
    }
  });
}

/** A detached shell that outlives us only to stop the cluster and delete its directory if we die without cleaning up. */
function startWatchdog(bin: string, dir: string, dataDir: string): void {
  const [cmd, argv] = command(bin, 'pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
  const stopCmd = [cmd, ...argv].map(shellQuote).join(' ');
  const script =
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
    `if [ -d ${shellQuote(dataDir)} ]; then ${stopCmd} >/dev/null 2>&1; rm -rf ${shellQuote(dir)}; fi`;
  try {
    const child = spawn('/bin/sh', ['-c', script], { detached: true, stdio: 'ignore', cwd: '/' });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // best effort: the exit hook still covers normal exits
  }
}

/** initdb + start a throw-away cluster on a free loopback port (trust auth, durability off: tests only). */
export async function startCluster(): Promise<PgCluster> {
  const bin = findPgBin();
  if (!bin) throw new Error(SKIP_MESSAGE);
  const as = runAs();
  const dir = mkdtempSync(join(baseTempDir(), 'certplane-pg-'));
  if (as) {
    chownSync(dir, as.uid, as.gid);
    chmodSync(dir, 0o700);
  }
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const state: Live = { bin, dir, dataDir, running: false, removed: false };
  live.add(state);
  installExitHook();

  try {
    const init = await run(bin, 'initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync'], dir);
    if (init.code !== 0) throw new Error(`initdb failed (exit ${init.code}):\n${init.output}`);
    startWatchdog(bin, dir, dataDir);
  } catch (err) {
    live.delete(state);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  let port = 0;
  const pgCtlStart = async () => {
    const opts = [
      '-c listen_addresses=127.0.0.1',
      `-p ${port}`,
      `-k ${shellQuote(dir)}`,
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
      '-c max_connections=200',
    ].join(' ');
    const r = await run(bin, 'pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', opts, 'start'], dir, 90_000);
    if (r.code !== 0) throw new Error(`pg_ctl start failed (exit ${r.code}):\n${r.output}\n--- server log ---\n${tail(logFile)}`);
    state.running = true;
  };

  // A port found free may be taken before the server binds it: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await pgCtlStart();
      break;
    } catch (err) {
      if (attempt >= 3) {
        live.delete(state);
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    dir,
    async start() {
      if (state.removed) throw new Error('this cluster was stopped without keepData: its directory is gone');
      if (!state.running) await pgCtlStart();
    },
    async stop(opts: { keepData?: boolean } = {}) {
      if (state.running) {
        const r = await run(bin, 'pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop'], dir, 90_000);
        if (r.code !== 0) throw new Error(`pg_ctl stop failed (exit ${r.code}):\n${r.output}`);
        state.running = false;
      }
      if (!opts.keepData && !state.removed) {
        rmSync(dir, { recursive: true, force: true });
        state.removed = true;
        live.delete(state);
      }
    },
  };
}

let sharedUrl: Promise<string> | undefined;

/**
 * Superuser URL of the shared test cluster: $CERTPLANE_TEST_PG_URL (a cluster started by the test runner), else a
 * cluster started once per process, on first use, and stopped when the process exits.
 */
export function testClusterUrl(): Promise<string> {
  const env = process.env.CERTPLANE_TEST_PG_URL;
  if (env) return Promise.resolve(env);
  sharedUrl ??= startCluster().then((c) => c.url);
  return sharedUrl;
}

/**
 * URL of a new, empty database (CREATE DATABASE certplane_<random>) on the shared test cluster, or on the cluster
 * whose superuser URL is `adminUrl`; `createOptions` is appended to CREATE DATABASE (e.g. a template or a locale).
 */
export async function testDatabaseUrl(opts: { adminUrl?: string; createOptions?: string } = {}): Promise<string> {
  const admin = opts.adminUrl ?? (await testClusterUrl());
  const name = `certplane_${randomBytes(8).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}${opts.createOptions ? ` ${opts.createOptions}` : ''}`);
  } finally {
    await client.end();
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}

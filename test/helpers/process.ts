/**
 * Runs certplane as a real child process (`node dist/src/cli/index.js serve --port N`) on 127.0.0.1, the way an
 * operator does, for end-to-end tests (official SDK, curl, restarts). Every process started here must be stopped
 * by the test (`stop()` in an `after` hook); `stop()` is idempotent and falls back to SIGKILL after a deadline.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkResponse } from './openapi.js';
import { fetchJson, freePort } from './net.js';
import { databaseEnv } from './store.js';
import { recordDatabaseFiles, recordMasterKey, scanning } from './scan-record.js';

/** dist/test/helpers/process.js → dist/src/cli/index.js */
export const CLI_PATH = fileURLToPath(new URL('../../src/cli/index.js', import.meta.url));

/** Credentials printed in the first-start banner. */
export interface BannerCredentials {
  accountId: string;
  zoneName: string;
  zoneId: string;
  email: string;
  apiKey: string;
  token: string;
}

export interface ServerProcess {
  child: ChildProcess;
  dir: string;
  port: number;
  /** http://127.0.0.1:PORT */
  origin: string;
  /** http://127.0.0.1:PORT/client/v4 */
  baseUrl: string;
  /** Parsed from the banner; null when this start printed none (existing installation). */
  banner: BannerCredentials | null;
  stdout(): string;
  stderr(): string;
  /** Sends `signal` (default SIGTERM) and waits for exit (SIGKILL after a deadline). Idempotent. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartProcessOptions {
  /** Data directory (kept by the caller); a fresh temp dir when omitted. */
  dir?: string;
  /** Extra environment (CERTPLANE_*). */
  env?: Record<string, string>;
  /** How long to wait for "listening" (default 20 s). */
  timeoutMs?: number;
  /** Extra arguments to `serve` (e.g. `--edge`). */
  args?: string[];
}

export { freePort };

const dataDirs = new Set<string>();

/**
 * A fresh data directory for a server process, removed when this test process exits (a test may restart a server
 * on it, so it outlives each server; the whole-run secrets scan has copied its database files by then).
 */
export function tempDataDir(): string {
  if (dataDirs.size === 0) process.once('exit', () => dataDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const dir = mkdtempSync(join(tmpdir(), 'certplane-e2e-'));
  dataDirs.add(dir);
  return dir;
}

/** The child's environment: ours minus any CERTPLANE_* / CLOUDFLARE_* settings, plus the test's. */
export async function childEnv(dir: string, extra: Record<string, string> = {}): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('CERTPLANE_') && !k.startsWith('CLOUDFLARE_')) env[k] = v;
  }
  recordMasterKey(extra.CERTPLANE_MASTER_KEY, 'the master key given to a child process');
  for (const k of (extra.CERTPLANE_PREVIOUS_MASTER_KEYS ?? '').split(',')) recordMasterKey(k, 'a previous master key given to a child process');
  return {
    ...env,
    CERTPLANE_DATA_DIR: dir,
    // In a scanned run (scripts/run-tests.mjs) servers log everything, for the whole-run secrets scan.
    CERTPLANE_LOG_LEVEL: scanning ? 'trace' : 'warn',
    // Suites make thousands of requests with one token from one IP: rate limits off unless a test sets them.
    CERTPLANE_RATE_LIMIT: '0',
    CERTPLANE_IP_RATE_LIMIT: '0',
    ...(await databaseEnv(dir)),
    ...extra,
  };
}

export function parseBanner(stdout: string): BannerCredentials | null {
  if (!stdout.includes('a new installation was created')) return null;
  const field = (re: RegExp): string => {
    const m = re.exec(stdout);
    assert.ok(m, `bootstrap banner lacks ${re}: ${stdout}`);
    return m[1];
  };
  const zone = /^ {2}zone {9}(\S+) {2}\(zone id ([0-9a-f]{32})\)$/m.exec(stdout);
  assert.ok(zone, `bootstrap banner lacks the zone line: ${stdout}`);
  return {
    accountId: field(/^ {2}account id {3}([0-9a-f]{32})$/m),
    zoneName: zone[1],
    zoneId: zone[2],
    email: field(/^ {2}user email {3}(\S+)$/m),
    apiKey: field(/^ {2}global key {3}([0-9a-f]{37})$/m),
    token: field(/^ {2}API token {4}([A-Za-z0-9_-]{40}) {2}\(all permissions\)$/m),
  };
}

/** Spawns `certplane serve` on a free port, collecting its output. */
async function spawnServe(opts: StartProcessOptions) {
  const dir = opts.dir ?? tempDataDir();
  const port = await freePort();
  const child = spawn(process.execPath, [CLI_PATH, 'serve', '--port', String(port), ...(opts.args ?? [])], {
    env: await childEnv(dir, opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { out: '', err: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output.out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output.err += d));
  return { dir, port, child, output };
}

/** Starts `certplane serve` and resolves once it prints "certplane listening on ...". */
export async function startProcess(opts: StartProcessOptions = {}): Promise<ServerProcess> {
  const { dir, port, child, output } = await spawnServe(opts);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );

  let stopping: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  const stop = (signal: NodeJS.Signals = 'SIGTERM') => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      try {
        return await exited;
      } finally {
        clearTimeout(killer);
        recordDatabaseFiles(dir);
      }
    })();
    return stopping;
  };

  const timeoutMs = opts.timeoutMs ?? 20_000;
  const listening = /^certplane listening on (http:\/\/127\.0\.0\.1:(\d+))\/client\/v4 /m;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`certplane did not start within ${timeoutMs} ms\nstdout: ${output.out}\nstderr: ${output.err}`)), timeoutMs);
      const check = () => {
        if (listening.test(output.out)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', check);
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`certplane exited (code ${code}, signal ${signal}) before listening\nstdout: ${output.out}\nstderr: ${output.err}`));
      });
      check();
    });
  } catch (e) {
    await stop('SIGKILL');
    throw e;
  }
  const m = listening.exec(output.out)!;
  assert.equal(Number(m[2]), port, 'certplane listens on the port it was given');
  const origin = m[1];
  return {
    child,
    dir,
    port,
    origin,
    baseUrl: `${origin}/client/v4`,
    banner: parseBanner(output.out),
    stdout: () => output.out,
    stderr: () => output.err,
    stop,
  };
}

/** Runs `certplane serve` expecting it to exit by itself (a failed start); returns its exit status and output. */
export async function runUntilExit(
  opts: StartProcessOptions = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const { child, output } = await spawnServe(opts);
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  // 'close' (not 'exit') so that all output has been read.
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (c, s) => resolve({ code: c, signal: s })),
  );
  clearTimeout(timer);
  return { code, signal, stdout: output.out, stderr: output.err };
}

/**
 * A `fetch` that checks every response it sees against Cloudflare's schema (test/helpers/openapi.ts) and never
 * accepts a 500. Problems are collected in `problems` (throwing inside an SDK's fetch would turn them into
 * connection errors); tests assert `problems` is empty. `log` records every exchange.
 */
export interface CheckingFetch {
  fetch: typeof fetch;
  problems: string[];
  log: { method: string; url: string; status: number; body: any }[];
}

export function checkingFetch(): CheckingFetch {
  const problems: string[] = [];
  const log: CheckingFetch['log'] = [];
  const wrapped = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    const res = await fetch(req);
    const url = new URL(req.url);
    const text = await res.clone().text();
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      problems.push(`${req.method} ${url.pathname}: non-JSON answer (${res.status}): ${text.slice(0, 200)}`);
      return res;
    }
    log.push({ method: req.method, url: url.pathname + url.search, status: res.status, body });
    if (res.status >= 500) problems.push(`${req.method} ${url.pathname}: ${res.status} ${text}`);
    try {
      checkResponse(req.method, url.pathname, res.status, body);
    } catch (e) {
      problems.push((e as Error).message);
    }
    return res;
  }) as typeof fetch;
  return { fetch: wrapped, problems, log };
}

/** Polls `read` until `done` holds (bounded deadline); returns the last value. Not a timed assertion. */
export async function pollUntil<T>(
  what: string,
  read: () => Promise<T>,
  done: (v: T) => boolean,
  deadlineMs = 15_000,
): Promise<T> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > until) assert.fail(`${what}: not reached within ${deadlineMs} ms; last value ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface JsonResponse<T = any> {
  status: number;
  body: T;
  text: string;
}

/**
 * One JSON request to a running server with a bearer token (or the headers given), checked against Cloudflare's
 * schema like every response in the suite; a 500 fails at once.
 */
export async function apiRequest<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  opts: { token?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<JsonResponse<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let payload: string | undefined;
  if (opts.body !== undefined) {
    payload = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetchJson(`${baseUrl}${path}`, method, headers, payload);
  const { text, body } = res;
  assert.ok(res.status < 500, `${method} ${path} answered ${res.status}: ${text}`);
  checkResponse(method, new URL(`${baseUrl}${path}`).pathname, res.status, body);
  return { status: res.status, body, text };
}

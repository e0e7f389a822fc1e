/**
 * Test harness: a real certplane (real SQLite file in a temp dir, real HTTP on loopback) with a manual clock,
 * plus a small client that checks EVERY response against Cloudflare's OpenAPI schema for its operation.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type CertplaneConfig } from '../../src/config.js';
import { createCertplane, type Certplane } from '../../src/main.js';
import type { Clock } from '../../src/domain/ports.js';
import { ALL_PERMISSIONS } from '../../src/domain/tenancy.js';
import type { Permission, Scope } from '../../src/domain/model.js';
import { checkResponse } from './openapi.js';
import { fetchJson } from './net.js';
import { databaseEnv } from './store.js';
import { recordCredential, recordDatabaseFiles, recordMasterKey, scannedLogger } from './scan-record.js';

export class ManualClock implements Clock {
  private t: number;
  constructor(start = Date.parse('2026-01-01T00:00:00.000Z')) {
    this.t = start;
  }
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  body?: unknown;
  /** Raw body text (sent as is). */
  raw?: string;
  token?: string | null;
  headers?: Record<string, string>;
  /** Skip the OpenAPI response check (only for routes outside the Cloudflare schema). */
  noSchema?: boolean;
}

export interface TestServer {
  cp: Certplane;
  baseUrl: string;
  clock: ManualClock;
  config: CertplaneConfig;
  dir: string;
  /** The bootstrap credentials. */
  token: string;
  apiKey: string;
  email: string;
  zoneId: string;
  zoneName: string;
  accountId: string;
  request<T = any>(method: string, path: string, opts?: RequestOptions): Promise<ApiResponse<T>>;
  /** Runs deployer ticks after moving the clock, so lifecycles complete deterministically. */
  settle(ms?: number): Promise<void>;
  /** Creates a token with the given permissions and scopes; returns its secret. */
  makeToken(permissions: Permission[], scopes: Scope[], extra?: { expiresOn?: Date; notBefore?: Date }): Promise<string>;
  close(): Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Keep the data directory (for restart tests). */
  dir?: string;
}

export async function startServer(opts: StartOptions = {}): Promise<TestServer> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'certplane-test-'));
  const config = loadConfig({
    CERTPLANE_DATA_DIR: dir,
    CERTPLANE_BOOTSTRAP_ZONE: 'example.com',
    // Suites make thousands of requests with one token from one IP: rate limits off unless a test sets them.
    CERTPLANE_RATE_LIMIT: '0',
    CERTPLANE_IP_RATE_LIMIT: '0',
    ...(await databaseEnv(dir)),
    ...opts.env,
  });
  const clock = new ManualClock();
  const cp = await createCertplane(config, { clock, logger: scannedLogger('in-process certplane log') });
  const address = await cp.app.listen({ host: '127.0.0.1', port: 0 });
  const b = cp.bootstrap;
  assert.ok(b, 'a fresh test server bootstraps');
  const baseUrl = `${address}/client/v4`;
  recordMasterKey(config.masterKey, 'the master key of an in-process server');
  recordCredential(b.token, 'the bootstrap API token of an in-process server');
  recordCredential(b.apiKey, 'the bootstrap global API key of an in-process server');

  const server: TestServer = {
    cp,
    baseUrl,
    clock,
    config,
    dir,
    token: b.token,
    apiKey: b.apiKey,
    email: b.email,
    zoneId: b.zoneId,
    zoneName: b.zoneName,
    accountId: b.accountId,
    async request(method, path, o = {}) {
      const headers: Record<string, string> = { ...o.headers };
      const token = o.token === undefined ? b.token : o.token;
      if (token !== null && !('authorization' in lower(headers)) && !('x-auth-key' in lower(headers))) {
        headers.authorization = `Bearer ${token}`;
      }
      let payload: string | undefined;
      if (o.raw !== undefined) payload = o.raw;
      else if (o.body !== undefined) {
        payload = JSON.stringify(o.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetchJson(`${baseUrl}${path}`, method, headers, payload);
      const { text, body } = res;
      assert.notEqual(res.status, 500, `${method} ${path} answered 500: ${text}`);
      if (!o.noSchema) checkResponse(method, path, res.status, body);
      return { status: res.status, headers: res.headers, body, text };
    },
    async settle(ms = config.domain.lifecycle.deployDelayMs) {
      await cp.deployer.tick(); // initializing → pending_deployment
      clock.advance(ms);
      await cp.deployer.tick();
    },
    async makeToken(permissions, scopes, extra = {}) {
      const { secret } = await cp.services.tenancy.createToken({
        name: 'test token',
        policies: [{ permissions, scopes }],
        expiresOn: extra.expiresOn ?? null,
        notBefore: extra.notBefore ?? null,
      });
      recordCredential(secret, 'an API token made by the harness');
      return secret;
    },
    async close() {
      await cp.close();
      recordDatabaseFiles(dir);
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

const lower = (h: Record<string, string>) => Object.fromEntries(Object.keys(h).map((k) => [k.toLowerCase(), true]));

export { ALL_PERMISSIONS };

/** Asserts a Cloudflare failure envelope with exactly these codes and HTTP status. */
export function assertError(res: ApiResponse, status: number, code: number, message?: string | RegExp): void {
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${res.text}`);
  assert.equal(res.body.success, false);
  assert.equal(res.body.result, null);
  assert.deepEqual(res.body.messages, []);
  assert.equal(res.body.errors.length, 1, res.text);
  assert.equal(res.body.errors[0].code, code, res.text);
  if (typeof message === 'string') assert.equal(res.body.errors[0].message, message);
  else if (message) assert.match(res.body.errors[0].message, message);
}

/** Asserts a success envelope and returns its result. */
export function assertOk<T = any>(res: ApiResponse, status = 200): T {
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${res.text}`);
  assert.equal(res.body.success, true, res.text);
  assert.deepEqual(res.body.errors, []);
  return res.body.result as T;
}

/** Runs `fn` against a fresh server (with `env`), closing it afterwards whatever happens. */
export async function withServer(env: Record<string, string>, fn: (s: TestServer) => Promise<void>): Promise<void> {
  const s = await startServer({ env });
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

/** The `result_info` a paginated answer must carry, computed independently of the server's code. */
export const expectedResultInfo = (page: number, perPage: number, count: number, total: number) => ({
  page,
  per_page: perPage,
  count,
  total_count: total,
  total_pages: Math.ceil(total / perPage),
});

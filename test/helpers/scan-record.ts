/**
 * Recording for the whole-run secrets scan. scripts/run-tests.mjs sets CERTPLANE_TEST_SCAN_DIR and loads this module
 * into every test process (`node --import … --test`); without the variable every function here does nothing.
 *
 * What a test process records (test/helpers/secret-scan.ts reads it, test/secrets-whole-run.test.ts judges it):
 *  - secrets/<pid>.jsonl — what must never come back: every private key the test helpers generate
 *    (test/helpers/certs.ts, test/edge/certs.ts) or any request body carries, every credential the harness
 *    creates or a request authenticated with (a bearer token, an edge credential, a global API key), and the master
 *    key of every server the helpers start (its environment, or its key file).
 *  - records/<pid>.jsonl — what is scanned: the body of every response received through `fetch` (the harness, the
 *    SDK, direct calls) or `node:http(s)` (visitors, the in-process edge agent's feed), every log line of the
 *    in-process servers (the harness gives them a trace-level logger writing here), and the whole stdout/stderr of
 *    every child process a test starts (certplane serve, the CLI, HAProxy, PostgreSQL tools).
 *  - db/ — copies of the SQLite files of every server the helpers stop, taken before the test deletes them.
 *  - proc/<pid>.start, proc/<pid>.done — so the final scan knows every test process has flushed.
 *
 * Child processes and HTTP responses are observed through node:diagnostics_channel ('child_process',
 * 'http.client.response.finish') by wrapping the stream's `emit`, which sees each chunk the test itself reads
 * without attaching a listener (a listener would switch the stream to flowing mode and change what the test sees).
 * Records are buffered and written synchronously (at 4 MB and when the process exits).
 */
import type { ChildProcess } from 'node:child_process';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { subscribe } from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseMasterKey } from '../../src/crypto/vault.js';

export const SCAN_DIR_ENV = 'CERTPLANE_TEST_SCAN_DIR';
const scanDir = process.env[SCAN_DIR_ENV] || null;
/** True in a run of scripts/run-tests.mjs: what this process sees is recorded for the whole-run scan. */
export const scanning = scanDir !== null;

/** The kinds of secret the scan looks for. */
export type SecretKind = 'private key' | 'credential';

export interface SecretRecord {
  kind: SecretKind;
  /** What it is, for the report (never the value). */
  label: string;
  /** The PKCS#8 PEM of a private key, or the credential itself. */
  value: string;
  src: string;
}

export interface ScanRecord {
  k: 'response' | 'log';
  /** The test file of the process that recorded it. */
  src: string;
  /** Which exchange or which output. */
  where: string;
  text: string;
  /** Child output: the command line, so the scan can tell the commands that print a credential once. */
  command?: string[];
  stream?: 'stdout' | 'stderr';
}

const src = relative(process.cwd(), process.argv[1] ?? 'unknown');

class Sink {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly file: string) {}
  add(obj: unknown): void {
    const line = JSON.stringify(obj) + '\n';
    this.parts.push(line);
    this.size += line.length;
    if (this.size > 4 << 20) this.flush();
  }
  flush(): void {
    if (this.parts.length === 0) return;
    appendFileSync(this.file, this.parts.join(''));
    this.parts = [];
    this.size = 0;
  }
}

let secrets: Sink | null = null;
let records: Sink | null = null;
let dbCopies = 0;

if (scanDir) {
  for (const d of ['secrets', 'records', 'db', 'proc']) mkdirSync(join(scanDir, d), { recursive: true });
  secrets = new Sink(join(scanDir, 'secrets', `${process.pid}.jsonl`));
  records = new Sink(join(scanDir, 'records', `${process.pid}.jsonl`));
}

/** A private key that must never appear in a response, a log line or a database file. */
export function recordPrivateKey(key: KeyObject | string, label: string): void {
  if (!secrets) return;
  let value: string;
  try {
    value = (typeof key === 'string' ? createPrivateKey(key) : key).export({ type: 'pkcs8', format: 'pem' }) as string;
  } catch {
    return; // truncated, corrupted or encrypted: a copy of a key recorded when it was generated, or no key at all
  }
  secrets.add({ kind: 'private key', label, value, src } satisfies SecretRecord);
}

/** A credential (API token, global API key, edge credential) that must never appear in a response or a log line. */
export function recordCredential(value: string, label: string): void {
  if (!secrets || value.length < 16) return;
  secrets.add({ kind: 'credential', label, value, src } satisfies SecretRecord);
}

/** A master key (hex or base64, as configured): looked for in every encoding certplane accepts. */
export function recordMasterKey(text: string | undefined, label: string): void {
  if (!secrets || !text?.trim()) return;
  let key: Buffer;
  try {
    key = parseMasterKey(text);
  } catch {
    return; // a malformed key a test gives on purpose opens nothing
  }
  const b64 = key.toString('base64').replace(/=+$/, '');
  for (const form of new Set([key.toString('hex'), key.toString('hex').toUpperCase(), b64, key.toString('base64url')])) {
    recordCredential(form, label);
  }
}

export function recordResponse(where: string, text: string): void {
  records?.add({ k: 'response', src, where, text } satisfies ScanRecord);
}

export function recordLog(where: string, text: string, extra: Pick<ScanRecord, 'command' | 'stream'> = {}): void {
  if (text) records?.add({ k: 'log', src, where, text, ...extra } satisfies ScanRecord);
}

/**
 * A logger for an in-process certplane (`createCertplane(config, { logger })`): every line, at trace level, recorded
 * for the scan. Undefined (no logger, as before) outside a scanned run.
 */
export function scannedLogger(where: string): Record<string, unknown> | undefined {
  if (!records) return undefined;
  return { level: 'trace', stream: { write: (line: string) => recordLog(where, line) } };
}

/**
 * Copies the SQLite files of a data directory into the scan directory, before the test deletes them, and records the
 * master key file it holds.
 */
export function recordDatabaseFiles(dataDir: string): void {
  if (!scanDir) return;
  try {
    recordMasterKey(readFileSync(join(dataDir, 'master.key'), 'utf8'), 'the master key file of a data directory');
  } catch {
    // no key file (the key came from the environment)
  }
  for (const name of ['certplane.db', 'certplane.db-wal']) {
    const file = join(dataDir, name);
    if (!existsSync(file)) continue;
    dbCopies++;
    try {
      copyFileSync(file, join(scanDir, 'db', `${process.pid}-${dbCopies}-${name}`));
    } catch {
      // a file removed meanwhile: nothing to scan
    }
  }
}

// ---- private keys and credentials seen on the way out ------------------------------------------------------------

const PEM_KEY_RE = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----/g;

/** Every PEM private key in a request body (JSON string values, or the raw text when it is not JSON). */
function recordKeysIn(body: string, where: string): void {
  if (!body.includes('PRIVATE KEY-----')) return;
  const strings: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') strings.push(v);
    else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  try {
    walk(JSON.parse(body));
  } catch {
    strings.push(body.replace(/\\n/g, '\n'));
  }
  for (const s of strings) for (const m of s.matchAll(PEM_KEY_RE)) recordPrivateKey(m[0], `a private key sent in ${where}`);
}

/** The credential a request used, once it worked (an answer below 400): deliberately wrong ones are not secrets. */
function recordCredentialsUsed(status: number, header: (name: string) => string | undefined, where: string): void {
  if (status >= 400) return;
  const bearer = /^Bearer\s+(\S+)$/i.exec(header('authorization') ?? '');
  if (bearer) recordCredential(bearer[1], `the bearer credential of ${where}`);
  const key = header('x-auth-key');
  if (key) recordCredential(key.trim(), `the global API key of ${where}`);
}

const toBuffer = (chunk: unknown): Buffer => (typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk as Uint8Array));

/** Calls `onChunk` with every chunk emitted as 'data' and `onEnd` at 'end' or 'close', without adding a listener. */
function observe(stream: NodeJS.EventEmitter, onChunk: (b: Buffer) => void, onEnd?: () => void): void {
  const emit = stream.emit;
  let ended = false;
  stream.emit = function (this: NodeJS.EventEmitter, event: string | symbol, ...args: unknown[]) {
    if (event === 'data') onChunk(toBuffer(args[0]));
    else if ((event === 'end' || event === 'close') && !ended) {
      ended = true;
      onEnd?.();
    }
    return emit.call(this, event, ...args);
  } as typeof stream.emit;
}

function installHooks(): void {
  // fetch: the harness, checkingFetch, apiRequest, the official SDK and direct calls all end here.
  const original = globalThis.fetch;
  globalThis.fetch = async function recordingFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const isRequest = input instanceof Request;
    const method = init?.method ?? (isRequest ? input.method : 'GET');
    const url = new URL(isRequest ? input.url : String(input));
    const where = `${method} ${url.pathname}${url.search}`;
    const body = typeof init?.body === 'string' ? Promise.resolve(init.body) : isRequest && input.body ? input.clone().text() : null;
    body?.then((t) => recordKeysIn(t, `the request ${where}`), () => undefined);
    const res = await original(input, init);
    const headers = new Headers(isRequest ? input.headers : undefined);
    if (init?.headers) new Headers(init.headers).forEach((v, k) => headers.set(k, v));
    recordCredentialsUsed(res.status, (n) => headers.get(n) ?? undefined, where);
    res.clone().text().then((text) => recordResponse(`${where} → ${res.status}`, text), () => undefined);
    return res;
  };

  // node:http(s) clients: visitors of the edges, the in-process edge agent's feed, origins behind in-process edges.
  subscribe('http.client.response.finish', (message) => {
    const { request, response } = message as { request: ClientRequest; response: IncomingMessage };
    const where = `${request.method} ${request.protocol}//${request.host}${request.path}`;
    const header = (n: string) => {
      const v = request.getHeader(n);
      return v === undefined ? undefined : String(v);
    };
    recordCredentialsUsed(response.statusCode ?? 0, header, where);
    const chunks: Buffer[] = [];
    observe(response, (b) => chunks.push(b), () => recordResponse(`${where} → ${response.statusCode}`, Buffer.concat(chunks).toString('utf8')));
  });

  // Child processes: their whole output, once they close (or when this process exits first).
  const running = new Set<() => void>();
  subscribe('child_process', (message) => {
    const child = (message as { process: ChildProcess }).process;
    child.once('spawn', () => {
      // The command line names the output in reports: a credential given as an argument is not repeated there.
      const command = (child.spawnargs.length ? child.spawnargs : [child.spawnfile]).map((a, i, all) =>
        all[i - 1] === '--credential' ? '<credential>' : a.replace(/^(--credential=).*/, '$1<credential>'),
      );
      const out: Record<'stdout' | 'stderr', Buffer[]> = { stdout: [], stderr: [] };
      for (const name of ['stdout', 'stderr'] as const) {
        const stream = child[name];
        if (stream) observe(stream, (b) => out[name].push(b));
      }
      const write = () => {
        running.delete(write);
        for (const name of ['stdout', 'stderr'] as const) {
          recordLog(`${name} of ${command.join(' ').slice(0, 300)}`, Buffer.concat(out[name]).toString('utf8'), { command, stream: name });
        }
      };
      running.add(write);
      child.once('close', write);
    });
  });

  writeFileSync(join(scanDir!, 'proc', `${process.pid}.start`), src);
  process.on('exit', () => {
    for (const write of [...running]) write();
    secrets!.flush();
    records!.flush();
    writeFileSync(join(scanDir!, 'proc', `${process.pid}.done`), src);
  });
}

// Installed once per process, in test processes only (the runner sets the variable for them alone).
const INSTALLED = Symbol.for('certplane.scan-record.installed');
if (scanDir && !(globalThis as Record<symbol, unknown>)[INSTALLED]) {
  (globalThis as Record<symbol, unknown>)[INSTALLED] = true;
  installHooks();
}

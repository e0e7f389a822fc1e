/**
 * The whole-run secrets scanner: looks for every recorded secret (test/helpers/scan-record.ts) in every recorded
 * response and log line, and in database files, and reports where it found which kind of secret, never the secret.
 *
 * What it looks for:
 *  - a private key: its secret numbers (the JWK members d, p, q, dp, dq, qi: what a PEM, a DER or a JWK of the key
 *    carries besides the public key, which a certificate legitimately shows) in base64 at each of the three byte
 *    alignments a DER can put them at, base64url, and hex (lower and upper case). Each encoding is cut into
 *    16-character windows (every 4th position), so a key split over PEM lines, truncated, or escaped in JSON is still
 *    found (a truncated copy of a key in a test's request is found as that key). Also any PEM private-key block at
 *    all ("-----BEGIN … PRIVATE KEY-----").
 *  - a credential (API token, global API key, edge credential): the exact string.
 *
 * Where a credential legitimately appears (and so is not reported there, though private keys still are):
 *  - the first-start banner certplane prints (its exact format, src/cli/index.ts printBootstrap);
 *  - the stdout of the CLI commands that print a secret once: `token create`, `user create`, `edge register`.
 * Credentials printed there are added to what is looked for everywhere else.
 *
 * The text is searched once, whatever the number of secrets: every 16-character window of every run of base64/hex
 * characters is looked up in one map of windows.
 */
import { createPrivateKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ScanRecord, SecretRecord } from './scan-record.js';

const W = 16;
const RUN_RE = /[A-Za-z0-9+/_-]{16,}/g;
const PEM_PRIVATE_KEY_RE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

interface Needle {
  kind: 'private key' | 'credential';
  label: string;
  /** Credentials: the whole value, checked where its first window matched. */
  exact?: string;
}

export interface Finding {
  /** The recording or database file. */
  file: string;
  /** The test file that recorded it (empty for database files). */
  src: string;
  where: string;
  kind: string;
  label: string;
}

export interface ScanFigures {
  files: number;
  bytes: number;
  responses: number;
  logRecords: number;
  logLines: number;
  databaseFiles: number;
  databaseBytes: number;
  privateKeys: number;
  credentials: number;
  windows: number;
}

const distinct = (s: string) => new Set(s).size;

/** Every secret of a run, as one map from 16-character window to what it belongs to. */
export class SecretIndex {
  private readonly windows = new Map<string, Needle[]>();
  private readonly seenKeys = new Set<string>();
  private readonly seenCredentials = new Set<string>();

  get privateKeys(): number {
    return this.seenKeys.size;
  }
  get credentials(): number {
    return this.seenCredentials.size;
  }
  get size(): number {
    return this.windows.size;
  }

  private add(window: string, needle: Needle): void {
    const list = this.windows.get(window);
    if (!list) this.windows.set(window, [needle]);
    else if (!list.some((n) => n.label === needle.label && n.exact === needle.exact)) list.push(needle);
  }

  /** Windows of `s` at every 4th position (low-entropy ones, like a run of "A", are not distinctive). */
  private addWindows(s: string, needle: Needle): void {
    for (let i = 0; i + W <= s.length; i += 4) {
      const w = s.slice(i, i + W);
      if (distinct(w) >= 6) this.add(w, needle);
    }
    if (s.length >= W && (s.length - W) % 4 !== 0) {
      const w = s.slice(s.length - W);
      if (distinct(w) >= 6) this.add(w, needle);
    }
  }

  addPrivateKey(pem: string, label: string): void {
    const needle: Needle = { kind: 'private key', label };
    let parts: Buffer[] | null = null;
    try {
      const jwk = createPrivateKey(pem).export({ format: 'jwk' }) as Record<string, string | undefined>;
      parts = ['d', 'p', 'q', 'dp', 'dq', 'qi'].flatMap((k) => (jwk[k] ? [Buffer.from(jwk[k]!, 'base64url')] : []));
    } catch {
      parts = null;
    }
    // A key Node cannot read (a test's truncated or corrupted copy of one) is not looked for itself: its lines may
    // be the public modulus a certificate shows, and its secret part is found as the part of the key it came from.
    if (!parts || parts.length === 0) return;
    const id = parts[0].toString('hex');
    if (this.seenKeys.has(id)) return;
    this.seenKeys.add(id);
    for (const v of parts) {
      for (let a = 0; a < 3; a++) {
        const whole = Math.floor((v.length - a) / 3) * 3;
        if (whole < 12) continue;
        const b64 = v.subarray(a, a + whole).toString('base64');
        this.addWindows(b64, needle);
        if (/[+/]/.test(b64)) this.addWindows(b64.replace(/\+/g, '-').replace(/\//g, '_'), needle);
      }
      const hex = v.toString('hex');
      this.addWindows(hex, needle);
      this.addWindows(hex.toUpperCase(), needle);
    }
  }

  addCredential(value: string, label: string): void {
    if (value.length < W || this.seenCredentials.has(value)) return;
    this.seenCredentials.add(value);
    this.add(value.slice(0, W), { kind: 'credential', label, exact: value });
  }

  /** The secrets `text` contains (credentials only when `credentials`). */
  find(text: string, opts: { credentials: boolean }): Needle[] {
    const found = new Set<Needle>();
    for (const m of text.matchAll(RUN_RE)) {
      const run = m[0];
      for (let i = 0; i + W <= run.length; i++) {
        const hits = this.windows.get(run.slice(i, i + W));
        if (!hits) continue;
        for (const n of hits) {
          if (n.kind === 'credential' && (!opts.credentials || !run.startsWith(n.exact!, i))) continue;
          found.add(n);
        }
      }
    }
    return [...found];
  }

  /** `s` with every run that holds a secret replaced, for reports. */
  redact(s: string): string {
    return s.replace(RUN_RE, (run) => (this.find(run, { credentials: true }).length ? '[redacted]' : run));
  }
}

// ---- where credentials legitimately appear ---------------------------------------------------------------------

/** The first-start banner, exactly as src/cli/index.ts prints it (global key = group 1, token = group 2). */
const BANNER_RE = new RegExp(
  [
    'certplane: a new installation was created\\. These credentials are shown ONCE; store them now\\.',
    '  account id   [0-9a-f]{32}',
    '  zone         \\S+  \\(zone id [0-9a-f]{32}\\)',
    '  user email   \\S+',
    '  global key   ([0-9a-f]{37})',
    '  API token    ([A-Za-z0-9_-]{40})  \\(all permissions\\)',
    '',
    'Try it:',
    '  export CLOUDFLARE_API_TOKEN=\\2 ZONE_ID=[0-9a-f]{32} ACCOUNT_ID=[0-9a-f]{32}',
    '  curl \\S+ -H "Authorization: Bearer \\$CLOUDFLARE_API_TOKEN"',
    '',
  ].join('\n'),
  'g',
);

/** CLI commands whose stdout shows a secret once (JSON), and the fields that hold it. */
const SHOWS_SECRET: { command: [string, string]; field: string }[] = [
  { command: ['token', 'create'], field: 'token' },
  { command: ['user', 'create'], field: 'api_key' },
  { command: ['edge', 'register'], field: 'credential' },
];

function showsSecret(r: ScanRecord): string | null {
  if (r.stream !== 'stdout' || !r.command || !r.command.some((a) => /[/\\]src[/\\]cli[/\\]index\.js$/.test(a))) return null;
  const args = r.command;
  const hit = SHOWS_SECRET.find((s) => args.some((a, i) => a === s.command[0] && args[i + 1] === s.command[1]));
  return hit ? hit.field : null;
}

/**
 * The text of a record in which credentials must not appear (banners and secret-showing CLI output removed), and
 * the credentials those channels showed.
 */
export function credentialView(r: ScanRecord): { text: string; shown: { value: string; label: string }[] } {
  const shown: { value: string; label: string }[] = [];
  if (r.k !== 'log') return { text: r.text, shown };
  const field = showsSecret(r);
  if (field) {
    try {
      const v = (JSON.parse(r.text) as Record<string, unknown>)[field];
      if (typeof v === 'string') shown.push({ value: v, label: `the ${field} printed by \`certplane ${r.command!.slice(2, 4).join(' ')}\`` });
    } catch {
      // not JSON: nothing shown, and the whole output is scanned for credentials
      return { text: r.text, shown };
    }
    return { text: '', shown };
  }
  const text = r.text.replace(BANNER_RE, (_m, key: string, token: string) => {
    shown.push({ value: key, label: 'a global API key printed in a first-start banner' });
    shown.push({ value: token, label: 'an API token printed in a first-start banner' });
    return '';
  });
  return { text, shown };
}

// ---- reading a scan directory ------------------------------------------------------------------------------------

function jsonl<T>(file: string): T[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as T);
}

const filesIn = (dir: string, exclude: Set<string>) =>
  existsSync(dir) ? readdirSync(dir).filter((f) => !exclude.has(f)).sort().map((f) => join(dir, f)) : [];

export interface ScanInput {
  /** The scan directory (secrets/, records/, db/). */
  dir: string;
  /** File names (in records/ and secrets/) to leave out, e.g. the scanning process's own. */
  exclude?: string[];
  /** More log files to scan (e.g. the PostgreSQL server log). */
  logFiles?: string[];
  /** More database files or dumps to scan. */
  databaseFiles?: string[];
}

export interface ScanReport {
  findings: Finding[];
  figures: ScanFigures;
}

export function scanDirectory(input: ScanInput): ScanReport {
  const exclude = new Set(input.exclude ?? []);
  const index = new SecretIndex();
  const figures: ScanFigures = {
    files: 0,
    bytes: 0,
    responses: 0,
    logRecords: 0,
    logLines: 0,
    databaseFiles: 0,
    databaseBytes: 0,
    privateKeys: 0,
    credentials: 0,
    windows: 0,
  };
  for (const file of filesIn(join(input.dir, 'secrets'), exclude)) {
    for (const s of jsonl<SecretRecord>(file)) {
      if (s.kind === 'private key') index.addPrivateKey(s.value, s.label);
      else index.addCredential(s.value, s.label);
    }
  }

  const recordFiles = filesIn(join(input.dir, 'records'), exclude);
  const records: { file: string; r: ScanRecord }[] = [];
  for (const file of recordFiles) for (const r of jsonl<ScanRecord>(file)) records.push({ file, r });
  // First the credentials the legitimate channels showed, so that they are looked for everywhere else.
  const views = records.map(({ file, r }) => {
    const view = credentialView(r);
    for (const c of view.shown) index.addCredential(c.value, c.label);
    return { file, r, credentialText: view.text };
  });
  for (const extra of input.logFiles ?? []) {
    if (!existsSync(extra)) continue;
    const r: ScanRecord = { k: 'log', src: '', where: 'server log', text: readFileSync(extra, 'utf8') };
    views.push({ file: extra, r, credentialText: r.text });
    recordFiles.push(extra);
  }

  const findings: Finding[] = [];
  const report = (file: string, src: string, where: string, kind: string, label: string) =>
    findings.push({ file, src, where: index.redact(where), kind, label: index.redact(label) });

  for (const { file, r, credentialText } of views) {
    if (r.k === 'response') figures.responses++;
    else {
      figures.logRecords++;
      figures.logLines += r.text.split('\n').filter((l) => l.trim() !== '').length;
    }
    const what = r.k === 'response' ? 'response' : 'log';
    if (PEM_PRIVATE_KEY_RE.test(r.text)) report(file, r.src, r.where, `a PEM private-key block in a ${what}`, '-----BEGIN … PRIVATE KEY-----');
    for (const n of index.find(r.text, { credentials: false })) report(file, r.src, r.where, `private-key material in a ${what}`, n.label);
    for (const n of index.find(credentialText, { credentials: true })) {
      if (n.kind === 'credential') report(file, r.src, r.where, `a credential in a ${what}`, n.label);
    }
  }

  const dbFiles = [...filesIn(join(input.dir, 'db'), exclude), ...(input.databaseFiles ?? []).filter((f) => existsSync(f))];
  for (const file of dbFiles) {
    const bytes = readFileSync(file);
    figures.databaseFiles++;
    figures.databaseBytes += bytes.length;
    const text = bytes.toString('latin1');
    if (PEM_PRIVATE_KEY_RE.test(text)) report(file, '', 'database', 'a PEM private-key block in a database file', '-----BEGIN … PRIVATE KEY-----');
    for (const n of index.find(text, { credentials: true })) report(file, '', 'database', `${n.kind === 'credential' ? 'a credential' : 'private-key material'} in a database file`, n.label);
  }

  figures.files = recordFiles.length + dbFiles.length;
  figures.bytes = [...recordFiles, ...dbFiles].reduce((sum, f) => sum + statSync(f).size, 0);
  figures.privateKeys = index.privateKeys;
  figures.credentials = index.credentials;
  figures.windows = index.size;
  return { findings, figures };
}

/** One line per finding: file, test file, where, kind of secret and whose; never the secret. */
export function formatFinding(f: Finding): string {
  return `${f.file}${f.src ? ` (recorded by ${f.src})` : ''}: ${f.where}: ${f.kind}: ${f.label}`;
}

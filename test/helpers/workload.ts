/**
 * A concurrent write workload against running certplane processes that remembers every answer, and checks
 * afterwards that the database holds exactly what those answers allow. Used by the crash test (the server is
 * SIGKILLed while writes are in flight) and the soak (PostgreSQL restarts under several nodes).
 *
 * Every piece of state the workload writes is a *register*: a bulk group of hostnames, one hostname certificate, one
 * Access CA, the zone's AOP setting, the account's Access hostname settings. Each write attempt on a register ends
 * `acked` (a 2xx answer: it must have happened, with the content the answer showed), `refused` (a 4xx answer: it must
 * not have happened) or `unknown` (no answer: the process died, or a 503 while the database was down; it may or may
 * not have happened). After a verification the state read back becomes the register's new base.
 *
 * What the state of a register may be after a batch of attempts: the value of an attempt that was acked or unknown,
 * unless an acked attempt was *sent after it was answered* (that one committed later, so it must win); or the base,
 * unless any attempt was acked. Anything else is a violation: an acknowledged write lost, a refused one applied, or,
 * for a bulk PUT (every PUT of a group names all of its hostnames), rows from two PUTs at once: a PUT half applied.
 * A bulk PUT's pattern (which of the bulk certificates and which `enabled` flag each hostname gets) is drawn at
 * random per PUT, so the rows tell which PUT they came from.
 */
import assert from 'node:assert/strict';
import { makeCA, makeLeaf, type Issued } from './certs.js';
import { checkResponse } from './openapi.js';
import { apiRequest } from './process.js';
import type { Store } from '../../src/domain/ports.js';
import { seededRng, type Rng } from './random.js';

// ---- seeded randomness ----

export { seededRng, type Rng };

/** The seed from `envName` if set (to replay a run), else a fresh one. */
export function seedFrom(envName: string): number {
  const raw = process.env[envName];
  if (raw !== undefined && raw !== '') {
    if (!/^\d+$/.test(raw)) throw new Error(`${envName} must be a whole number`);
    return Number(raw) >>> 0;
  }
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- registers ----

export type Outcome = 'acked' | 'refused' | 'unknown';

/** A state of a register: `value` is compared always; `detail` (exact acknowledged content) when known. */
export interface State {
  value: string;
  /** Canonical content (ids, timestamps, PEM) the answer showed; undefined = not known. */
  detail?: string;
  /** Lifecycle status of each element (one per hostname of a group, one for a certificate); undefined = not known. */
  statuses?: string[];
}

export interface Attempt extends State {
  what: string;
  sentAt: number;
  /** Infinity while unanswered (unknown). */
  answeredAt: number;
  outcome: Outcome;
}

/** Where each lifecycle status may move by itself (the deployer), without a new write. */
const SUCCESSORS: Record<string, string[]> = {
  initializing: ['initializing', 'pending_deployment', 'active', 'deployment_timed_out'],
  pending_deployment: ['pending_deployment', 'active', 'deployment_timed_out'],
  active: ['active'],
  deployment_timed_out: ['deployment_timed_out'],
  pending_deletion: ['pending_deletion', 'deleted', 'deletion_timed_out'],
  deleted: ['deleted'],
  deletion_timed_out: ['deletion_timed_out'],
};
/** How long after an upload a delete is first tried (the servers run with deploy delays of a few hundred ms). */
const DEPLOY_WAIT_MS = 300;
const DEPLOY_CHAIN = new Set(['initializing', 'pending_deployment', 'active', 'deployment_timed_out']);

function reachable(from: string[] | undefined, to: string[] | undefined): boolean {
  if (!from || !to) return true;
  if (from.length !== to.length) return false;
  return from.every((f, i) => f === '' || to[i] === '' || (SUCCESSORS[f] ?? [f]).includes(to[i]));
}

export class Register {
  attempts: Attempt[] = [];
  constructor(
    readonly name: string,
    public base: State,
  ) {}

  /** The latest state this process knows for sure (base, or the last acked attempt): what clients act on. */
  known(): State {
    for (let i = this.attempts.length - 1; i >= 0; i--) if (this.attempts[i].outcome === 'acked') return this.attempts[i];
    return this.base;
  }

  begin(what: string, value: string, extra: Partial<State> = {}): Attempt {
    const a: Attempt = { what, value, ...extra, sentAt: performance.now(), answeredAt: Infinity, outcome: 'unknown' };
    this.attempts.push(a);
    return a;
  }

  /**
   * Which states the register may be in now (see the module comment), each with what produced it. An unknown
   * attempt that was answered (a 503) committed, if at all, before its answer: a later acked attempt wins over it too.
   */
  candidates(): Candidate[] {
    const acked = this.attempts.filter((a) => a.outcome === 'acked');
    const lastAckedSend = Math.max(-Infinity, ...acked.map((a) => a.sentAt));
    const out: Candidate[] = [];
    // Most specific first: an acked attempt explains the state with its exact content.
    for (const a of acked) if (!(lastAckedSend > a.answeredAt)) out.push(a);
    for (const a of this.attempts) if (a.outcome === 'unknown' && !(lastAckedSend > a.answeredAt)) out.push(a);
    if (acked.length === 0) out.push({ ...this.base, what: 'the state before', outcome: 'base' });
    return out;
  }

  /** The candidate that explains `observed`, or a description of the violation. */
  judge(observed: State): { match: Candidate } | { problem: string } {
    const candidates = this.candidates();
    const match = candidates.find((c) => matches(c, observed));
    if (match) return { match };
    const show = (s: State) => `${s.value.length > 60 ? `${s.value.slice(0, 60)}…` : s.value}${s.statuses ? ` [${[...new Set(s.statuses)].join(',')}]` : ''}`;
    // A bulk group's value has two characters per hostname: say how much of each candidate the rows carry.
    const agree = (c: State) => {
      if (!this.name.startsWith('bulk group') || c.value.length !== observed.value.length) return '';
      let same = 0;
      for (let i = 0; i < c.value.length; i += 2) if (c.value.slice(i, i + 2) === observed.value.slice(i, i + 2)) same++;
      return `, carried by ${same} of ${c.value.length / 2} hostnames`;
    };
    return {
      problem:
        `${this.name}: holds ${show(observed)}${observed.detail ? ` (${observed.detail.slice(0, 100)})` : ''}, which no write explains; ` +
        `allowed: ${candidates.map((c) => `${c.what} (${c.outcome}) = ${show(c)}${c.detail ? ` (${c.detail.slice(0, 100)})` : ''}${agree(c)}`).join('; ') || 'nothing'}` +
        `; attempts since the last check: ${this.attempts.map((a) => a.outcome).join(', ')}`,
    };
  }
}

export type Candidate = State & { what: string; outcome: Outcome | 'base' };

function matches(c: State, o: State): boolean {
  return c.value === o.value && (c.detail === undefined || c.detail === o.detail) && reachable(c.statuses, o.statuses);
}

// ---- the workload ----

export interface WorkloadOptions {
  token: string;
  zoneId: string;
  zoneName: string;
  accountId: string;
  seed: number;
  /** Base URL (http://host:port/client/v4) for the next request: one server, or nodes in turn. */
  target: () => string;
  /** Bulk hostname groups, hostnames per group (one PUT names them all), clients PUTting them. */
  groups?: number;
  groupSize?: number;
  bulkClients?: number;
  /** Hostname certificates the bulk PUTs choose from (uploaded by `init`). */
  bulkCerts?: number;
  /** Clients uploading and deleting hostname certificates. */
  certClients?: number;
  /** Clients creating, updating and deleting Access CAs. */
  accessClients?: number;
  /** Hostnames of the Access settings PUTs. */
  settingsHostnames?: number;
  /** Clients that only read (the soak). */
  readers?: number;
  /** Pause between two requests of one client, ms (0 = none). */
  pauseMs?: number;
  /** The limits the server enforces (checked on the state read back). */
  limits?: { hostnameCertificatesPerZone: number; associationsPerCertificate: number; accessCertificatesPerAccount: number };
  /**
   * A 503 with the "temporarily unavailable" envelope is an expected answer (the database is down): counted
   * separately, its write's outcome unknown. Otherwise every 5xx is a violation.
   */
  tolerate503?: boolean;
  /** Told about every answer (or its absence: status 0), with when the request was sent (performance.now()). */
  onAnswer?: (a: { method: string; path: string; status: number; sentAt: number }) => void;
}

export interface Figures {
  requests: number;
  reads: number;
  writes: number;
  acked: number;
  refused: number;
  /** Writes without an answer, or answered 503: they may or may not have happened. */
  unknown: number;
  /** Acked writes checked against the state read back (present with their content, or overwritten by a later one). */
  verified: number;
  /** Of those, the ones whose exact acknowledged content is what the database holds now. */
  verifiedExact: number;
  /** Unknown writes that turned out to have happened. */
  unknownApplied: number;
  byStatus: Record<string, number>;
  /** The most seen at once by a verification: how close the workload came to each limit. */
  peak: { hostnameCertificates: number; associationsPerCertificate: number; accessCertificates: number };
}

/** Thrown instead of sending once `stop` was called: a client that was preparing a request (a certificate) quits. */
class Stopped extends Error {}

const UNAVAILABLE = { code: 10001, message: 'Service temporarily unavailable, please retry' };

interface Answer {
  status: number;
  body: any;
}

const stableCert = (c: any) => JSON.stringify([c.id, c.certificate, c.expires_on, c.issuer, c.serial_number, c.signature, c.uploaded_on]);
const stableAccess = (c: any) => JSON.stringify([c.id, c.fingerprint, c.expires_on, c.created_at, c.updated_at]);
const pemKey = (pem: string) => pem.replace(/\s+/g, '');
const accessValue = (name: string, hostnames: string[]) => `${name}|${hostnames.join(',')}`;

interface CertEntry {
  register: Register;
  leaf: Issued;
  id?: string;
  bulk: boolean;
  /** Not before this moment (performance.now()) is a delete worth trying: until then it is still deploying. */
  readyAt: number;
}

interface AccessEntry {
  register: Register;
  n: number;
  ca: Issued;
  id?: string;
}

export class Workload {
  readonly opts: Required<Omit<WorkloadOptions, 'limits' | 'onAnswer'>> &
    Pick<WorkloadOptions, 'onAnswer'> & { limits: NonNullable<WorkloadOptions['limits']> };
  /** Violations found so far (a test asserts this is empty). */
  readonly problems: string[] = [];
  readonly figures: Figures = {
    requests: 0,
    reads: 0,
    writes: 0,
    acked: 0,
    refused: 0,
    unknown: 0,
    verified: 0,
    verifiedExact: 0,
    unknownApplied: 0,
    byStatus: {},
    peak: { hostnameCertificates: 0, associationsPerCertificate: 0, accessCertificates: 0 },
  };
  /** Set by the caller just before it kills the server: connection errors are expected from then on. */
  expectDisconnects = false;

  private readonly hostnames: string[][];
  private readonly settingsHosts: string[];
  private bulkIds: string[] = [];
  private readonly groupRegs: Register[];
  private readonly certs = new Map<string, CertEntry>(); // by PEM without whitespace
  private readonly access = new Map<number, AccessEntry>();
  private nextAccess = 0;
  private readonly aopSetting = new Register('zone AOP setting', { value: 'false' });
  private readonly accessSettings = new Register('Access hostname settings', { value: '' });
  /** Ids some client is deleting or updating now (never two clients on one). */
  private readonly claimed = new Set<string>();
  private churnCA?: Issued;
  private stopping = false;
  private loops: Promise<void>[] = [];
  private inFlight = 0;
  private clientSeq = 0;

  constructor(options: WorkloadOptions) {
    this.opts = {
      groups: 3,
      groupSize: 60,
      bulkClients: 3,
      bulkCerts: 4,
      certClients: 2,
      accessClients: 2,
      settingsHostnames: 12,
      readers: 0,
      pauseMs: 0,
      tolerate503: false,
      limits: { hostnameCertificatesPerZone: 10, associationsPerCertificate: 100, accessCertificatesPerAccount: 50 },
      ...options,
    } as Workload['opts'];
    const { groups, groupSize, zoneName } = this.opts;
    this.hostnames = Array.from({ length: groups }, (_, g) => Array.from({ length: groupSize }, (_, i) => `g${g}-h${i}.${zoneName}`));
    this.groupRegs = this.hostnames.map((_, g) => new Register(`bulk group ${g}`, { value: 'absent' }));
    this.settingsHosts = Array.from({ length: this.opts.settingsHostnames }, (_, i) => `set${i}.${zoneName}`);
  }

  /** Writes in flight right now (sent, not answered). */
  get writesInFlight(): number {
    return this.inFlight;
  }

  // ---- requests ----

  private problem(msg: string): void {
    if (this.problems.length < 200) this.problems.push(msg);
  }

  private count(key: string): void {
    this.figures.byStatus[key] = (this.figures.byStatus[key] ?? 0) + 1;
  }

  /**
   * One request. Resolves with the answer, or null when there was none (connection lost). Every answer is checked
   * against Cloudflare's schema; a 5xx other than an expected 503 is a violation.
   */
  private async send(method: string, path: string, body?: unknown): Promise<Answer | null> {
    if (this.stopping) throw new Stopped();
    const write = method !== 'GET';
    this.figures.requests++;
    if (write) {
      this.figures.writes++;
      this.inFlight++;
    } else this.figures.reads++;
    const base = this.opts.target();
    const sentAt = performance.now();
    let status = 0;
    try {
      let res: Response;
      try {
        res = await fetch(`${base}${path}`, {
          method,
          headers: { authorization: `Bearer ${this.opts.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(60_000),
        });
      } catch (err) {
        this.count('no answer');
        if (!this.expectDisconnects) this.problem(`${method} ${path}: no answer (${(err as Error).message}; cause ${String((err as any)?.cause?.code ?? (err as any)?.cause)})`);
        return null;
      }
      status = res.status;
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        status = 0;
        this.count('no answer');
        if (!this.expectDisconnects) this.problem(`${method} ${path}: answer cut off (${(err as Error).message})`);
        return null;
      }
      let json: any;
      try {
        json = JSON.parse(text);
      } catch {
        this.count(String(res.status));
        this.problem(`${method} ${path}: non-JSON answer ${res.status}: ${text.slice(0, 200)}`);
        return null;
      }
      this.count(res.status < 300 ? String(res.status) : `${res.status}/${json?.errors?.[0]?.code}`);
      try {
        checkResponse(method, new URL(`${base}${path}`).pathname, res.status, json);
      } catch (err) {
        this.problem((err as Error).message);
      }
      if (res.status >= 500) {
        const expected =
          this.opts.tolerate503 && res.status === 503 && json.errors?.length === 1 && json.errors[0].code === UNAVAILABLE.code && json.errors[0].message === UNAVAILABLE.message;
        if (!expected) this.problem(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
      }
      return { status: res.status, body: json };
    } finally {
      if (write) this.inFlight--;
      this.opts.onAnswer?.({ method, path, status, sentAt });
    }
  }

  /** Sends a write for `register` and records its outcome; returns the answer when it was a success. */
  private async attempt(
    register: Register,
    what: string,
    value: string,
    method: string,
    path: string,
    body: unknown,
    okStatus: number,
    extra: Partial<State> = {},
  ): Promise<{ attempt: Attempt; result?: any; answer: Answer | null }> {
    if (this.stopping) throw new Stopped();
    const a = register.begin(what, value, extra);
    const answer = await this.send(method, path, body);
    if (answer === null) {
      this.figures.unknown++;
      return { attempt: a, answer };
    }
    a.answeredAt = performance.now();
    if (answer.status >= 500) {
      // The database was unavailable: the write may have committed before the connection broke.
      this.figures.unknown++;
      return { attempt: a, answer };
    }
    if (answer.status >= 200 && answer.status < 300) {
      if (answer.status !== okStatus || answer.body.success !== true) this.problem(`${what}: answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
      a.outcome = 'acked';
      this.figures.acked++;
      return { attempt: a, result: answer.body.result, answer };
    }
    a.outcome = 'refused';
    this.figures.refused++;
    return { attempt: a, answer };
  }

  private z(p: string): string {
    return `/zones/${this.opts.zoneId}${p}`;
  }
  private acct(p: string): string {
    return `/accounts/${this.opts.accountId}${p}`;
  }

  // ---- set-up ----

  /** Uploads the bulk certificates and reads the starting state (on a running server, before `start`). */
  async init(): Promise<void> {
    this.churnCA = await makeCA({ org: 'Workload churn CA' });
    const bulkCA = await makeCA({ org: 'Workload bulk CA' });
    for (let i = 0; i < this.opts.bulkCerts; i++) {
      const entry = this.newCert(await makeLeaf({ issuer: bulkCA, cn: `bulk ${i}` }), true);
      const { result } = await this.upload(entry);
      assert.ok(result, `bulk certificate ${i} uploaded: ${this.problems.join('\n')}`);
      this.bulkIds.push(result.id);
    }
    const settings = await this.get(this.z('/origin_tls_client_auth/settings'));
    this.aopSetting.base = { value: String(settings.enabled) };
    this.accessSettings.base = { value: this.accessSettingsValue(await this.get(this.acct('/access/certificates/settings'))) };
  }

  private newCert(leaf: Issued, bulk: boolean): CertEntry {
    const entry: CertEntry = { register: new Register(`hostname certificate ${leaf.subjectCN}`, { value: 'absent' }), leaf, bulk, readyAt: 0 };
    this.certs.set(pemKey(leaf.certPem), entry);
    return entry;
  }

  private async upload(entry: CertEntry) {
    const r = await this.attempt(
      entry.register,
      `upload of ${entry.register.name}`,
      'live',
      'POST',
      this.z('/origin_tls_client_auth/hostnames/certificates'),
      { certificate: entry.leaf.certPem, private_key: entry.leaf.keyPem },
      200,
    );
    if (r.result) {
      entry.id = r.result.id;
      entry.readyAt = performance.now() + DEPLOY_WAIT_MS;
      r.attempt.detail = stableCert(r.result);
      r.attempt.statuses = [r.result.status];
      if (pemKey(r.result.certificate) !== pemKey(entry.leaf.certPem)) this.problem(`${entry.register.name}: the upload answered another PEM`);
    }
    return r;
  }

  // ---- clients ----

  /** Starts every client loop; `stop` ends them. */
  start(): void {
    this.stopping = false;
    const { bulkClients, certClients, accessClients, readers } = this.opts;
    const loops: ((rng: Rng) => Promise<void>)[] = [
      ...Array.from({ length: bulkClients }, () => (rng: Rng) => this.bulkPut(rng)),
      ...Array.from({ length: certClients }, () => (rng: Rng) => this.certStep(rng)),
      ...Array.from({ length: accessClients }, () => (rng: Rng) => this.accessStep(rng)),
      (rng: Rng) => this.aopSettingPut(rng),
      (rng: Rng) => this.accessSettingsPut(rng),
      ...Array.from({ length: readers }, () => (rng: Rng) => this.read(rng)),
    ];
    this.loops = loops.map((step) => this.loop(step));
  }

  /** Every client stops sending; resolves when the last answer (or failure) is in. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    this.loops = [];
  }

  /** One client: its own random stream (derived from the seed), one request at a time until `stop`. */
  private async loop(step: (rng: Rng) => Promise<void>): Promise<void> {
    const rng = seededRng(this.opts.seed + 7919 * ++this.clientSeq);
    while (!this.stopping) {
      try {
        await step(rng);
      } catch (err) {
        if (err instanceof Stopped) return;
        this.problem(`client failed: ${(err as Error).stack ?? String(err)}`);
        return;
      }
      if (this.opts.pauseMs > 0 && !this.stopping) await sleep(rng() * this.opts.pauseMs);
    }
  }

  private async bulkPut(rng: Rng): Promise<void> {
    const g = Math.floor(rng() * this.hostnames.length);
    const reg = this.groupRegs[g];
    const config = this.hostnames[g].map((hostname) => {
      const c = Math.floor(rng() * this.bulkIds.length);
      return { hostname, cert_id: this.bulkIds[c], enabled: rng() < 0.5 };
    });
    const value = config.map((e) => `${this.bulkIds.indexOf(e.cert_id)}${e.enabled ? 'e' : 'd'}`).join('');
    const { attempt, result } = await this.attempt(reg, `PUT of ${reg.name}`, value, 'PUT', this.z('/origin_tls_client_auth/hostnames'), { config }, 200);
    if (!result) return;
    const echoed = result.map((e: any) => `${e.hostname} ${e.cert_id} ${e.enabled}`);
    const sent = config.map((e) => `${e.hostname} ${e.cert_id} ${e.enabled}`);
    if (JSON.stringify(echoed) !== JSON.stringify(sent)) this.problem(`PUT of ${reg.name}: the answer does not echo the request`);
    attempt.detail = result.map((e: any) => `${e.created_at}/${e.updated_at}`).join(' ');
    attempt.statuses = result.map((e: any) => e.status);
  }

  private async certStep(rng: Rng): Promise<void> {
    const deletable = [...this.certs.values()].filter(
      (e) => !e.bulk && e.id !== undefined && !this.claimed.has(e.id) && e.register.known().value === 'live' && e.readyAt <= performance.now(),
    );
    if (deletable.length > 0 && rng() < 0.3) {
      const entry = pick(rng, deletable);
      const id = entry.id!;
      this.claimed.add(id);
      try {
        const known = entry.register.known();
        const r = await this.attempt(
          entry.register,
          `delete of ${entry.register.name}`,
          'deleting',
          'DELETE',
          this.z(`/origin_tls_client_auth/hostnames/certificates/${id}`),
          undefined,
          200,
          // Deleting changes nothing but the status: the content must stay what the upload answered.
          { detail: known.detail },
        );
        if (r.result) {
          r.attempt.detail = stableCert(r.result);
          r.attempt.statuses = [r.result.status];
        } else if (r.answer && r.answer.status === 400 && r.answer.body.errors?.[0]?.code === 1434) {
          // Still deploying: try again later.
          entry.readyAt = performance.now() + DEPLOY_WAIT_MS;
        }
      } finally {
        this.claimed.delete(id);
      }
      return;
    }
    const entry = this.newCert(await makeLeaf({ issuer: this.churnCA!, cn: `churn ${this.certs.size}` }), false);
    await this.upload(entry);
  }

  private async accessStep(rng: Rng): Promise<void> {
    const mine = [...this.access.values()].filter((e) => e.id !== undefined && !this.claimed.has(e.id));
    const created = mine.filter((e) => e.register.known().value === accessValue(`ca-${e.n}`, [`ca${e.n}.${this.opts.zoneName}`]));
    const updated = mine.filter((e) => e.register.known().value === accessValue(`ca-${e.n}-b`, []));
    const r = rng();
    if (r < 0.25 && created.length > 0) {
      const e = pick(rng, created);
      const id = e.id!;
      this.claimed.add(id);
      try {
        const value = accessValue(`ca-${e.n}-b`, []);
        const res = await this.attempt(e.register, `update of ${e.register.name}`, value, 'PUT', this.acct(`/access/certificates/${id}`), { name: `ca-${e.n}-b`, associated_hostnames: [] }, 200);
        if (res.result) {
          res.attempt.detail = stableAccess(res.result);
          if (accessValue(res.result.name, res.result.associated_hostnames) !== value) this.problem(`update of ${e.register.name}: answered ${JSON.stringify(res.result)}`);
        }
      } finally {
        this.claimed.delete(id);
      }
      return;
    }
    if (r < 0.5 && updated.length > 0) {
      const e = pick(rng, updated);
      const id = e.id!;
      this.claimed.add(id);
      try {
        const res = await this.attempt(e.register, `delete of ${e.register.name}`, 'absent', 'DELETE', this.acct(`/access/certificates/${id}`), undefined, 200);
        if (res.result && res.result.id !== id) this.problem(`delete of ${e.register.name}: answered ${JSON.stringify(res.result)}`);
      } finally {
        this.claimed.delete(id);
      }
      return;
    }
    const n = this.nextAccess++;
    const e: AccessEntry = { n, ca: await makeCA({ org: `Workload Access CA ${n}` }), register: new Register(`Access CA ca-${n}`, { value: 'absent' }) };
    this.access.set(n, e);
    const hostnames = [`ca${n}.${this.opts.zoneName}`];
    const res = await this.attempt(e.register, `creation of ${e.register.name}`, accessValue(`ca-${n}`, hostnames), 'POST', this.acct('/access/certificates'), { name: `ca-${n}`, certificate: e.ca.certPem, associated_hostnames: hostnames }, 201);
    if (res.result) {
      e.id = res.result.id;
      res.attempt.detail = stableAccess(res.result);
      if (accessValue(res.result.name, res.result.associated_hostnames) !== res.attempt.value) this.problem(`creation of ${e.register.name}: answered ${JSON.stringify(res.result)}`);
    }
  }

  private async aopSettingPut(rng: Rng): Promise<void> {
    const enabled = rng() < 0.5;
    const res = await this.attempt(this.aopSetting, 'PUT of the zone AOP setting', String(enabled), 'PUT', this.z('/origin_tls_client_auth/settings'), { enabled }, 200);
    if (res.result && res.result.enabled !== enabled) this.problem(`zone AOP setting: answered ${JSON.stringify(res.result)}`);
  }

  private accessSettingsValue(list: any[]): string {
    return list
      .filter((s) => s.client_certificate_forwarding || s.china_network)
      .map((s) => `${s.hostname}${s.china_network ? '+china' : ''}`)
      .sort()
      .join(',');
  }

  private async accessSettingsPut(rng: Rng): Promise<void> {
    const settings = this.settingsHosts.map((hostname) => ({ hostname, china_network: false, client_certificate_forwarding: rng() < 0.5 }));
    const value = this.accessSettingsValue(settings);
    const res = await this.attempt(this.accessSettings, 'PUT of the Access hostname settings', value, 'PUT', this.acct('/access/certificates/settings'), { settings }, 202);
    // 409 while the previous update deploys (as Cloudflare does): give it time.
    if (!res.result && res.answer?.status === 409) await sleep(30);
  }

  private async read(rng: Rng): Promise<void> {
    const ids = [...this.certs.values()].filter((e) => e.id).map((e) => e.id!);
    const g = Math.floor(rng() * this.hostnames.length);
    const paths = [
      () => this.z('/origin_tls_client_auth/hostnames?status=all&per_page=100'),
      () => this.z(`/origin_tls_client_auth/hostnames/${pick(rng, this.hostnames[g])}`),
      () => this.z('/origin_tls_client_auth/hostnames/certificates'),
      () => this.z(`/origin_tls_client_auth/hostnames/certificates/${pick(rng, ids)}`),
      () => this.z('/origin_tls_client_auth/settings'),
      () => this.acct('/access/certificates?per_page=100'),
      () => this.acct('/access/certificates/settings'),
    ];
    await this.send('GET', pick(rng, paths)());
  }

  // ---- verification ----

  private async get(path: string): Promise<any> {
    const res = await apiRequest(this.opts.target(), 'GET', path, { token: this.opts.token });
    assert.equal(res.status, 200, `GET ${path}: ${res.text}`);
    return res.body.result;
  }

  /** Compares what a register holds with what its attempts allow; then that state becomes its base. */
  private settle(reg: Register, observed: State): void {
    const verdict = reg.judge(observed);
    if ('problem' in verdict) this.problem(verdict.problem);
    else {
      this.figures.verified += reg.attempts.filter((a) => a.outcome === 'acked').length;
      if (verdict.match.outcome === 'acked' && verdict.match.detail !== undefined) this.figures.verifiedExact++;
      if (verdict.match.outcome === 'unknown') this.figures.unknownApplied++;
    }
    reg.base = observed;
    reg.attempts = [];
  }

  /**
   * Reads everything back from a running server and checks it against every answer given since the last
   * verification, and the invariants (limits, one association per hostname). Violations go to `problems`.
   */
  async verify(): Promise<void> {
    const { limits } = this.opts;
    const [assocs, certList, accessList, aop, settings] = await Promise.all([
      this.get(this.z('/origin_tls_client_auth/hostnames?status=all&per_page=1000')),
      this.get(this.z('/origin_tls_client_auth/hostnames/certificates')),
      this.get(this.acct('/access/certificates?per_page=1000')),
      this.get(this.z('/origin_tls_client_auth/settings')),
      this.get(this.acct('/access/certificates/settings')),
    ]);

    // Associations: one per hostname, only hostnames of the groups, limits per certificate, each group from one PUT.
    const byHost = new Map<string, any>();
    const perCert = new Map<string, number>();
    for (const a of assocs) {
      if (byHost.has(a.hostname)) this.problem(`two associations for ${a.hostname}`);
      byHost.set(a.hostname, a);
      if (a.enabled !== null && a.status !== 'pending_deletion' && a.status !== 'deleted') perCert.set(a.cert_id, (perCert.get(a.cert_id) ?? 0) + 1);
    }
    const peak = this.figures.peak;
    peak.associationsPerCertificate = Math.max(peak.associationsPerCertificate, ...perCert.values());
    peak.hostnameCertificates = Math.max(peak.hostnameCertificates, certList.length);
    peak.accessCertificates = Math.max(peak.accessCertificates, accessList.length);
    for (const [cert, n] of perCert) if (n > limits.associationsPerCertificate) this.problem(`certificate ${cert} has ${n} live associations (limit ${limits.associationsPerCertificate})`);
    const known = new Set(this.hostnames.flat());
    for (const h of byHost.keys()) if (!known.has(h)) this.problem(`an association for ${h}, which no write named`);
    this.hostnames.forEach((hosts, g) => {
      const rows = hosts.map((h) => byHost.get(h));
      if (rows.every((r) => r === undefined)) return this.settle(this.groupRegs[g], { value: 'absent' });
      this.settle(this.groupRegs[g], {
        value: rows.map((r) => (r === undefined ? '__' : `${this.bulkIds.indexOf(r.cert_id)}${r.enabled === true ? 'e' : r.enabled === false ? 'd' : 'v'}`)).join(''),
        detail: rows.map((r) => (r === undefined ? '' : `${r.created_at}/${r.updated_at}`)).join(' '),
        statuses: rows.map((r) => r?.status ?? ''),
      });
    });

    // Hostname certificates: the list (everything not deleted) holds only certificates we uploaded, within the limit.
    if (certList.length > limits.hostnameCertificatesPerZone) this.problem(`${certList.length} hostname certificates in the zone (limit ${limits.hostnameCertificatesPerZone})`);
    const listed = new Map<string, any>();
    for (const c of certList) {
      const entry = this.certs.get(pemKey(c.certificate));
      if (!entry) this.problem(`hostname certificate ${c.id} was never uploaded by this workload`);
      else listed.set(pemKey(c.certificate), c);
    }
    for (const [key, entry] of this.certs) {
      let c: any = listed.get(key);
      if (entry.id !== undefined && c === undefined) {
        // Not in the list: deleted (a tombstone, readable by id) or never there.
        const res = await apiRequest(this.opts.target(), 'GET', this.z(`/origin_tls_client_auth/hostnames/certificates/${entry.id}`), { token: this.opts.token });
        if (res.status === 200) c = res.body.result;
        else if (res.status !== 404) this.problem(`GET certificate ${entry.id}: ${res.status} ${res.text}`);
      }
      if (c !== undefined && entry.id !== undefined && c.id !== entry.id) this.problem(`${entry.register.name}: id ${c.id}, answered ${entry.id}`);
      if (c !== undefined) entry.id = c.id; // an upload without an answer that happened: known from now on
      entry.readyAt = c?.status === 'active' ? 0 : performance.now() + DEPLOY_WAIT_MS;
      this.settle(
        entry.register,
        c === undefined
          ? { value: 'absent' }
          : { value: DEPLOY_CHAIN.has(c.status) ? 'live' : 'deleting', detail: stableCert(c), statuses: [c.status] },
      );
    }

    // Access CAs: only ours, within the limit, each as its last write left it.
    if (accessList.length > limits.accessCertificatesPerAccount) this.problem(`${accessList.length} Access CAs in the account (limit ${limits.accessCertificatesPerAccount})`);
    const byN = new Map<number, any>();
    for (const c of accessList) {
      const m = /^ca-(\d+)(-b)?$/.exec(c.name);
      const e = m ? this.access.get(Number(m[1])) : undefined;
      if (!e) {
        this.problem(`Access CA ${c.id} (${c.name}) was never created by this workload`);
        continue;
      }
      if (byN.has(e.n)) this.problem(`two Access CAs for ${e.register.name}`);
      byN.set(e.n, c);
    }
    for (const [n, e] of this.access) {
      const c = byN.get(n);
      if (c !== undefined && e.id !== undefined && c.id !== e.id) this.problem(`${e.register.name}: id ${c.id}, answered ${e.id}`);
      if (c !== undefined) e.id = c.id;
      this.settle(e.register, c === undefined ? { value: 'absent' } : { value: accessValue(c.name, c.associated_hostnames), detail: stableAccess(c) });
    }

    this.settle(this.aopSetting, { value: String(aop.enabled) });
    this.settle(this.accessSettings, { value: this.accessSettingsValue(settings) });
  }

  /** Polls until nothing the workload wrote is still deploying or being deleted (the deployer finished). */
  async waitQuiet(deadlineMs = 60_000): Promise<void> {
    const until = Date.now() + deadlineMs;
    for (;;) {
      const [assocs, certs] = await Promise.all([
        this.get(this.z('/origin_tls_client_auth/hostnames?status=all&per_page=1000')),
        this.get(this.z('/origin_tls_client_auth/hostnames/certificates')),
      ]);
      const busy = [...assocs, ...certs].filter((x: any) => ['initializing', 'pending_deployment', 'pending_deletion'].includes(x.status));
      if (busy.length === 0) return;
      if (Date.now() > until) {
        this.problem(`still deploying after ${deadlineMs} ms: ${busy.map((x: any) => `${x.hostname ?? x.id} ${x.status}`).slice(0, 5).join(', ')}`);
        return;
      }
      await sleep(100);
    }
  }

  /**
   * The lifecycle audit trail, read from the database: every transition of everything the workload wrote happened
   * once (no two events with the same from, to and version), along an edge of the lifecycle, in order.
   * Call after `waitQuiet`, with the servers stopped or running.
   */
  async checkLifecycle(store: Store): Promise<number> {
    let events = 0;
    const check = (subject: string, list: { fromStatus: string; toStatus: string; version: number }[], pattern: RegExp) => {
      events += list.length;
      const seen = new Set<string>();
      for (const e of list) {
        const key = `${e.fromStatus}>${e.toStatus}@${e.version}`;
        if (seen.has(key)) this.problem(`${subject}: transition ${key} recorded twice`);
        seen.add(key);
      }
      const path = list.map((e) => `${e.fromStatus}>${e.toStatus}`).join(' ');
      if (!pattern.test(path)) this.problem(`${subject}: lifecycle path "${path}"`);
      for (let i = 1; i < list.length; i++) {
        if (list[i].version < list[i - 1].version) this.problem(`${subject}: transitions out of version order: ${path}`);
      }
    };
    await store.read(async (r) => {
      for (const e of this.certs.values()) {
        if (e.id === undefined) continue;
        const status = e.register.base.statuses?.[0];
        const want =
          status === 'active'
            ? /^initializing>pending_deployment pending_deployment>active$/
            : status === 'deleted'
              ? /^initializing>pending_deployment pending_deployment>active pending_deletion>deleted$/
              : /^$/;
        check(`${e.register.name} (${status})`, await r.events.listForSubject('aop_certificate', e.id), want);
      }
      for (const h of this.hostnames.flat()) {
        check(`association ${h}`, await r.events.listForSubject('association', `${this.opts.zoneId}/${h}`), /^(pending_deployment>active)?( pending_deployment>active)*$/);
      }
      check('Access settings rollouts', await r.events.listForSubject('access_settings', `account/${this.opts.accountId}`), /^(pending_deployment>active)?( pending_deployment>active)*$/);
    });
    return events;
  }
}

/** `{ '200': 12, '400/1413': 3 }` → "200: 12, 400/1413: 3", sorted. */
export function formatCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ');
}

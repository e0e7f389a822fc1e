/**
 * The HAProxy data plane: the production edge. certplane renders HAProxy's configuration (config.ts), runs HAProxy in
 * master-worker mode under its supervision (process.ts), and applies every later change through the Runtime API in a
 * safe order, verifying each change and probing it over loopback before the version is reported live. Every change is
 * also written to the files, so a restart (or HAProxy dying and being restarted by this class) serves the same.
 *
 * Order of a runtime change (per hostname, and across hostnames: everything that tightens access before anything that
 * loosens it):
 *   1. upload what the change needs, unused yet: certificates, CA files (always under a new content-addressed name:
 *      never a CA file updated in place), origin servers in free slots;
 *   2. tighten: removed hostnames first (their map entry gets a unique trust domain so no other hostname can be
 *      served on their connections, then their crt-list line goes, their authenticated connections are closed, then
 *      the map entries go); hostnames whose Access CAs change get a unique trust domain too, their new crt-list line
 *      is added before the old is deleted, connections authenticated under the old CA set are closed, and only then
 *      does their final trust domain go in the map;
 *   3. loosen / add: new hostnames (line, then map), origin and forwarding changes (one map entry each);
 *   4. clean up what nothing uses any more (old lines' certificates, CA files, origin servers);
 *   5. write the files, verify (`show ssl crt-list`, `show ssl cert`, `show map`) and probe over loopback.
 * A change that cannot be made at runtime (switching between the direct and hop shapes, running out of slots, or a
 * snapshot that changes many hostnames at once) is written to the files and applied with a hitless reload.
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { createCa } from '../../pki/issue.js';
import type { ApplyResult, DataPlane, EdgeDelta, EdgeSnapshot, HostnameConfig } from '../contract.js';
import type { EdgeLogger } from '../node/data-plane.js';
import { ChangeQueue, checkKeyPair, collectHostname, normalizeHostname, prepareHostname, sameConfig, type PreparedHostname } from '../validate.js';
import {
  crtListLine,
  crtListText,
  ERRORS,
  errorBody,
  errorFileText,
  hopBackend,
  hopMapText,
  hostsMapText,
  layoutOf,
  mapValue,
  originBackend,
  renderConfig,
  type EdgeEntry,
  type Layout,
  type Mode,
  type OriginProfile,
} from './config.js';
import { detectHaproxy, freePort, startHaproxy, type HaproxyBinary, type SupervisedHaproxy } from './process.js';
import { RuntimeClient } from './runtime.js';
import { sessionIsolationSelfTest, type IsolationReport } from './selftest.js';

export interface HaproxyHealth {
  healthy: boolean;
  reason?: string;
}

export interface HaproxyDataPlaneOptions {
  /** The haproxy binary (default: CERTPLANE_HAPROXY, else `haproxy` on PATH). */
  binary?: string;
  /**
   * Private working directory for the configuration, certificates and sockets (mode 0700). Default: a new directory
   * on /dev/shm (memory, so private keys never reach a disk), else the system temp directory. Removed on stop()
   * unless it was given here.
   */
  dir?: string;
  /** HAProxy threads (nbthread); default: HAProxy's own (one per CPU). */
  threads?: number;
  logger?: EdgeLogger;
  /** Called whenever HAProxy stops or starts serving (it is restarted automatically when it dies). */
  onHealth?: (health: HaproxyHealth) => void;
  /** A snapshot changing more hostnames than this is applied with a reload instead of runtime calls (default 200). */
  reloadThreshold?: number;
  /** How many changed hostnames are probed over loopback after a change (default 32). */
  maxProbes?: number;
}

/** What start() found out about the HAProxy it drives. */
export interface HaproxyInfo {
  binary: HaproxyBinary;
  isolation: IsolationReport;
}

interface Applied {
  prepared: PreparedHostname;
  entry: EdgeEntry;
  profileKey: string;
  /** This hostname's lines in the crt-list and the hosts map (kept: the files are rewritten after every change). */
  lines: { crt: string; map: string };
}

/** A validated hostname on its way in, with its origin address resolved ('' = resolve when needed). */
interface Next {
  prepared: PreparedHostname;
  origin: { address: string };
}

interface ProfileState {
  profile: OriginProfile;
  /** Store names (certificates, CA files) the server line uses. */
  files: string[];
  users: number;
}

const sha = (s: string | Buffer, n = 16): string => createHash('sha256').update(s).digest('hex').slice(0, n);

/** The visitor certificate chain and key as one PEM file (what the crt-list line names); computed, not kept. */
/** The hostname's Access CAs as one PEM file (what `ca-file` names); null without Access CAs. Computed, not kept. */
const caFileOf = (p: PreparedHostname): string | null => (p.caPems.length ? p.caPems.map((c) => c.trim() + '\n').join('') : null);

const certFileOf = (a: { prepared: PreparedHostname }): string =>
  `${a.prepared.config.serverCertificate.certPem.trim()}\n${a.prepared.config.serverCertificate.keyPem.trim()}\n`;

function atomicWrite(file: string, text: string, mode = 0o600): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, file);
}

function defaultDir(): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return mkdtempSync(join(base, 'certplane-haproxy-'));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class HaproxyDataPlane implements DataPlane {
  private readonly log: EdgeLogger;
  private readonly reloadThreshold: number;
  private readonly maxProbes: number;
  private info: HaproxyInfo | null = null;
  private layout!: Layout;
  private ownsDir = false;
  private runtime!: RuntimeClient;
  private proc: SupervisedHaproxy | null = null;
  private listen = { host: '127.0.0.1', port: 0 };
  private placeholder = '';
  private mode: Mode = 'direct';
  private originSlots = 16;
  private hopSlots = 0;
  private applied = new Map<string, Applied>();
  /** Hop slots used by applied hostnames. */
  private usedHop = new Set<number>();
  private profiles = new Map<string, ProfileState>();
  /** Origin slots whose server could not be deleted yet (connections still open): retried later. */
  private draining = new Set<number>();
  /** Store names (certificates and CA files) loaded in HAProxy. */
  private store = new Set<string>();
  private currentVersion = 0;
  private readonly changes = new ChangeQueue();
  private stopped = false;
  private started = false;
  private healthy = false;
  private restarting: Promise<void> | null = null;

  constructor(private readonly opts: HaproxyDataPlaneOptions = {}) {
    this.log = opts.logger ?? {};
    this.reloadThreshold = opts.reloadThreshold ?? 200;
    this.maxProbes = opts.maxProbes ?? 32;
  }

  get version(): number {
    return this.currentVersion;
  }

  /** The HAProxy version and the self-test's verdict (after start()). */
  get haproxy(): HaproxyInfo | null {
    return this.info;
  }

  get directory(): string {
    return this.layout.dir;
  }

  /** HAProxy's master and current worker process ids (null while it is not running). */
  get pids(): { master: number; worker: number } | null {
    return this.proc?.child.pid ? { master: this.proc.child.pid, worker: this.proc.workerPid } : null;
  }

  // --- lifecycle ------------------------------------------------------------------------------------------------

  async start(opts: { host: string; port: number }): Promise<{ port: number }> {
    if (this.started) throw new Error('data plane already started');
    if (this.stopped) throw new Error('data plane stopped');
    this.started = true;
    const binary = await detectHaproxy(this.opts.binary);
    const isolation = await sessionIsolationSelfTest(binary);
    this.info = { binary, isolation };
    this.log.info?.('haproxy edge', { version: binary.version, isolation: isolation.decision, detail: isolation.detail });

    this.ownsDir = !this.opts.dir;
    const dir = this.opts.dir ?? defaultDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    this.layout = layoutOf(dir);
    for (const d of [this.layout.certsDir, this.layout.casDir, this.layout.errorsDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
    for (const e of Object.values(ERRORS)) {
      atomicWrite(join(this.layout.errorsDir, e.file), e.file.endsWith('.http') ? errorFileText(e) : errorBody(e), 0o644);
    }
    // A TLS bind needs a certificate before any hostname exists: a self-signed one for a name no visitor uses.
    const ph = await createCa('CN=certplane-placeholder.invalid', 10 * 365 * 24 * 3600_000);
    this.placeholder = join(this.layout.certsDir, 'placeholder.pem');
    atomicWrite(this.placeholder, ph.certPem + ph.keyPem);
    this.runtime = new RuntimeClient(this.layout.adminSocket);

    this.listen = { host: opts.host, port: opts.port || (await freePort(opts.host)) };
    this.writeAll();
    await this.spawn();
    return { port: this.listen.port };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.changes.idle();
    await this.restarting?.catch(() => undefined);
    if (!this.ownsDir) this.flushFiles();
    if (this.writeTimer) clearTimeout(this.writeTimer);
    await this.proc?.stop();
    this.proc = null;
    if (this.ownsDir && this.layout) rmSync(this.layout.dir, { recursive: true, force: true });
  }

  private async spawn(): Promise<void> {
    this.flushFiles(); // a restarted HAProxy serves what was applied
    this.proc = await startHaproxy({
      bin: this.info!.binary.path,
      cfgFile: this.layout.cfgFile,
      masterSocket: this.layout.masterSocket,
      adminSocket: this.layout.adminSocket,
      onExit: (reason) => this.onDied(reason),
      log: (line) => this.log.debug?.('haproxy', { line }),
    });
    await this.waitServing();
    this.setHealth({ healthy: true });
  }

  private setHealth(h: HaproxyHealth): void {
    if (h.healthy === this.healthy) return;
    this.healthy = h.healthy;
    (h.healthy ? this.log.info : this.log.error)?.(h.healthy ? 'haproxy serving' : 'haproxy not serving', { reason: h.reason });
    this.opts.onHealth?.(h);
  }

  /** HAProxy died: report it, restart it from the files (with backoff) until it serves again. */
  private onDied(reason: string): void {
    this.proc = null;
    if (this.stopped) return;
    this.setHealth({ healthy: false, reason });
    this.restarting ??= (async () => {
      let backoff = 100;
      while (!this.stopped) {
        try {
          await this.spawn();
          if (this.stopped) await this.proc?.stop(); // stop() ran meanwhile
          break;
        } catch (e) {
          this.setHealth({ healthy: false, reason: (e as Error).message });
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 5_000);
        }
      }
      this.restarting = null;
    })();
  }

  /** Resolves once the visitor port accepts connections. */
  private async waitServing(timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(this.listen.port, this.probeHost(), () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > until) throw new Error(`haproxy does not accept connections on port ${this.listen.port}`);
      await sleep(20);
    }
  }

  private probeHost(): string {
    const h = this.listen.host;
    return h === '0.0.0.0' || h === '' ? '127.0.0.1' : h === '::' ? '::1' : h;
  }

  private async ready(): Promise<void> {
    if (this.restarting) await this.restarting;
    if (!this.proc) throw new Error('haproxy is not running');
  }

  // --- configuration --------------------------------------------------------------------------------------------

  apply(snapshot: EdgeSnapshot): Promise<ApplyResult> {
    return this.serialize(async () => {
      if (!snapshot || !Number.isFinite(snapshot.version)) throw new Error('snapshot version is missing');
      const failed: ApplyResult['failed'] = [];
      const desired = new Map<string, HostnameConfig>();
      for (const cfg of snapshot.hostnames ?? []) collectHostname(cfg, desired, failed);
      const removes = new Set([...this.applied.keys()].filter((n) => !desired.has(n)));
      for (const [name, cfg] of desired) if (this.unchanged(name, cfg)) desired.delete(name);
      return this.commit(snapshot.version, desired, removes, failed, true);
    });
  }

  applyDelta(delta: EdgeDelta): Promise<ApplyResult> {
    return this.serialize(async () => {
      if (!delta || !Number.isFinite(delta.version)) throw new Error('delta version is missing');
      if (delta.version <= this.currentVersion) {
        throw new Error(`delta version ${delta.version} is not newer than the current version ${this.currentVersion}`);
      }
      const failed: ApplyResult['failed'] = [];
      const upserts = new Map<string, HostnameConfig>();
      const seen = new Set<string>();
      for (const cfg of delta.upsert ?? []) collectHostname(cfg, upserts, failed, seen);
      const removes = new Set<string>();
      for (const name of delta.remove ?? []) {
        const n = normalizeHostname(name);
        if (n && !upserts.has(n) && this.applied.has(n)) removes.add(n);
      }
      for (const [name, cfg] of upserts) if (this.unchanged(name, cfg)) upserts.delete(name);
      return this.commit(delta.version, upserts, removes, failed, false);
    });
  }

  private unchanged(name: string, cfg: HostnameConfig): boolean {
    return sameConfig(this.applied.get(name)?.prepared, cfg);
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    return this.changes.run(async () => {
      if (this.stopped) throw new Error('data plane stopped');
      if (!this.started) throw new Error('data plane not started');
      return fn();
    });
  }

  /**
   * Validates and applies a change: `upserts` (new or changed hostnames) and `removes`. A snapshot changing many
   * hostnames (`bulk`) is a reload, and the costliest check (each visitor key against its certificate) runs while
   * HAProxy loads the new files; a hostname that fails it is taken out again with a second reload.
   */
  private async commit(
    version: number,
    upserts: Map<string, HostnameConfig>,
    removes: Set<string>,
    failed: ApplyResult['failed'],
    full: boolean,
  ): Promise<ApplyResult> {
    await this.ready();
    const bulk = full && upserts.size + removes.size > this.reloadThreshold;
    // Validate every changed hostname; a broken one keeps its previous configuration (or is not served if new).
    const prepared = new Map<string, Next>();
    const changed: string[] = [];
    for (const [name, cfg] of upserts) {
      try {
        const p = prepareHostname(name, cfg, { contexts: false, checkServerKey: !bulk });
        if (p.caKey !== '' && this.info!.isolation.decision === 'refuse-access-mtls') {
          throw new Error(`Access mTLS refused on this edge: ${this.info!.isolation.detail}`);
        }
        prepared.set(name, { prepared: p, origin: { address: await resolveAddress(p.config.origin.address) } });
        changed.push(name);
      } catch (e) {
        this.refuse(name, e, failed);
      }
    }
    const removed = [...removes];
    const needsHop = this.mode === 'hop' || changed.some((n) => prepared.get(n)!.prepared.caKey !== '');
    const plan = this.plan(prepared, changed);
    const slotsShort = plan.newProfiles > this.freeOriginSlots().length || plan.newHop > this.freeHopSlots().length;
    const reload = bulk || needsHop !== (this.mode === 'hop') || slotsShort;
    let reloaded = reload;
    if (reload) {
      const before = this.applied;
      const next = new Map<string, Next>();
      for (const [name, a] of before) if (!removes.has(name)) next.set(name, { prepared: a.prepared, origin: { address: '' } });
      for (const [name, n] of prepared) next.set(name, n);
      const shape = (): Mode => ([...next.values()].some((n) => n.prepared.caKey !== '') ? 'hop' : 'direct');
      this.prepareReload(next, shape());
      const reloading = this.reloadNow().then(
        () => null,
        (e: Error) => e,
      );
      // Meanwhile (HAProxy loads the files in its own process): each new visitor key against its certificate.
      let bad = bulk ? await this.checkServerKeys(changed, prepared, true) : new Map<string, string>();
      const err = await reloading;
      // HAProxy could not load what passed the quick checks: load every new key in Node to find which.
      if (err && bulk && bad.size === 0) bad = await this.checkServerKeys(changed, prepared, false);
      if (bad.size) {
        for (const [name, reason] of bad) {
          this.refuse(name, new Error(reason), failed);
          const prev = before.get(name);
          if (prev) next.set(name, { prepared: prev.prepared, origin: { address: '' } });
          else next.delete(name);
        }
        this.prepareReload(next, shape());
        await this.reloadNow();
      } else if (err) {
        throw err;
      }
    } else if (changed.length || removed.length) {
      const refused = await this.runtimeChange(prepared, changed, removed, failed);
      if (refused) {
        // HAProxy refused part of a runtime change: its state may be half-way. What is applied (the previous
        // configuration of the refused hostnames) is rendered again and loaded with a hitless reload.
        this.prepareReload(this.appliedAsNext(), this.mode);
        await this.reloadNow();
        reloaded = true;
      }
    }
    const toVerify = [...changed, ...removed].filter((n) => !failed.some((f) => f.hostname === n));
    const problems = new Map<string, string>();
    await this.verify(toVerify, problems);
    if (problems.size && !reloaded) {
      // Not what was applied: reload from what is applied, then check again.
      this.log.warn?.('haproxy state differs from the configuration: reloading', { hostnames: [...problems.keys()].slice(0, 10) });
      this.prepareReload(this.appliedAsNext(), this.mode);
      await this.reloadNow();
      problems.clear();
      await this.verify(toVerify, problems);
    }
    for (const [hostname, reason] of problems) {
      this.log.error?.('edge change not verified', { hostname, reason });
      failed.push({ hostname, reason: `not verified: ${reason}` });
    }
    this.currentVersion = version;
    this.log.info?.('edge configuration applied', { version, hostnames: this.applied.size, changed: changed.length, removed: removed.length, failed: failed.length, reload, mode: this.mode });
    return { version, failed };
  }

  private refuse(hostname: string, e: unknown, failed: ApplyResult['failed']): void {
    const reason = (e as Error).message || String(e);
    failed.push({ hostname, reason });
    this.log.warn?.('edge hostname not applied', { hostname, reason, keptPrevious: this.applied.has(hostname) });
  }

  /** checkKeyPair for each visitor certificate, yielding to the event loop as it goes; returns the failures. */
  private async checkServerKeys(names: string[], prepared: Map<string, Next>, quick: boolean): Promise<Map<string, string>> {
    const bad = new Map<string, string>();
    for (let i = 0; i < names.length; i++) {
      const sc = prepared.get(names[i])!.prepared.config.serverCertificate;
      try {
        checkKeyPair(sc.certPem, sc.keyPem, { quick });
      } catch (e) {
        bad.set(names[i], `server certificate or key is unusable: ${(e as Error).message}`);
      }
      if (i % 32 === 31) await new Promise((r) => setImmediate(r));
    }
    return bad;
  }

  private appliedAsNext(): Map<string, Next> {
    return new Map([...this.applied].map(([n, a]) => [n, { prepared: a.prepared, origin: { address: '' } }]));
  }

  /** How many new origin profiles and hop slots `next` needs beyond what is applied. */
  private plan(next: Map<string, Next>, changed: string[]): { newProfiles: number; newHop: number } {
    const keys = new Set<string>();
    let newHop = 0;
    for (const name of changed) {
      const p = next.get(name)!.prepared;
      const key = this.profileKey(p);
      if (!this.profiles.has(key)) keys.add(key);
      if (p.caKey !== '') newHop++;
    }
    return { newProfiles: keys.size, newHop };
  }

  private freeOriginSlots(): number[] {
    const used = new Set([...this.profiles.values()].map((p) => p.profile.slot));
    const free: number[] = [];
    for (let s = 0; s < this.originSlots; s++) if (!used.has(s) && !this.draining.has(s)) free.push(s);
    return free;
  }

  private freeHopSlots(): number[] {
    const free: number[] = [];
    for (let s = 0; s < this.hopSlots; s++) if (!this.usedHop.has(s)) free.push(s);
    return free;
  }

  /**
   * Every change to `applied` goes through here: it keeps the used hop slots, each entry's file lines, and how many
   * users each store name (certificate, CA file) has, so a change cleans up after itself without a scan.
   */
  private putApplied(name: string, a: Applied): void {
    this.dropApplied(name);
    a.lines = { crt: crtListLine(a.entry), map: hostsMapText([a.entry]) };
    this.applied.set(name, a);
    if (a.entry.hopSlot !== null) this.usedHop.add(a.entry.hopSlot);
    this.ref(a.entry.certName, 1);
    if (a.entry.caName) this.ref(a.entry.caName, 1);
  }

  private dropApplied(name: string): void {
    const prev = this.applied.get(name);
    if (!prev) return;
    if (prev.entry.hopSlot !== null) this.usedHop.delete(prev.entry.hopSlot);
    this.ref(prev.entry.certName, -1);
    if (prev.entry.caName) this.ref(prev.entry.caName, -1);
    this.applied.delete(name);
  }

  /** Users of each store name; a name whose count drops to zero is a candidate for deletion (cleanup()). */
  private refs = new Map<string, number>();
  private unused = new Set<string>();

  private ref(name: string, delta: number): void {
    const n = (this.refs.get(name) ?? 0) + delta;
    if (n > 0) {
      this.refs.set(name, n);
      this.unused.delete(name);
    } else {
      this.refs.delete(name);
      this.unused.add(name);
    }
  }

  // --- building entries -----------------------------------------------------------------------------------------

  /**
   * The origin server a hostname uses. An explicit origin SNI is part of it (the server line then names it, which
   * costs nothing per request); without one the SNI is the visitor's hostname, read per request from its map entry.
   */
  private profileKey(p: PreparedHostname): string {
    return `${p.target.key}|${staticSni(p) ?? '*'}`;
  }

  private buildProfile(p: PreparedHostname, address: string, slot: number): { profile: OriginProfile; files: { name: string; pem: string }[] } {
    const o = p.config.origin;
    const addr = net.isIPv6(address) ? `ipv6@${address}:${o.port}` : `${address}:${o.port}`;
    const files: { name: string; pem: string }[] = [];
    // A server added at runtime gets pool-max-conn 0 and pool-purge-delay 0 in HAProxy 2.6 (unlimited and 5 s for a
    // server read from the files): it would keep no idle connection, and every request would open a new connection
    // (and TLS handshake) to the origin. Both are set explicitly so both kinds of server behave the same.
    const args: string[] = ['pool-max-conn -1', 'pool-purge-delay 5s'];
    if (o.tls) {
      const sni = staticSni(p);
      args.push('ssl', 'ssl-min-ver TLSv1.2', sni === null ? 'sni var(txn.e),field(4,|)' : sni === '' ? '' : `sni str(${sni})`);
      if (o.caPem) {
        const name = join(this.layout.casDir, `origin.${sha(o.caPem)}.pem`);
        files.push({ name, pem: o.caPem });
        args.push(`verify required ca-file ${name}`);
      } else {
        args.push('verify none');
      }
      const cc = p.config.originClientCertificate;
      if (cc) {
        const pem = `${cc.certPem.trim()}\n${cc.keyPem.trim()}\n`;
        const name = join(this.layout.certsDir, `origin-client.${sha(pem)}.pem`);
        files.push({ name, pem });
        args.push(`crt ${name}`);
      }
    }
    return { profile: { key: this.profileKey(p), slot, address: addr, args: args.filter(Boolean).join(' ') }, files };
  }

  private buildEntry(p: PreparedHostname, backend: string, hopSlot: number | null): Omit<Applied, 'profileKey' | 'lines'> {
    const caPem = caFileOf(p);
    const caName = caPem ? join(this.layout.casDir, `access.${sha(caPem)}.pem`) : null;
    const certPem = certFileOf({ prepared: p });
    const safe = p.hostname.replace(/^\*/, '_wildcard_');
    const certName = join(this.layout.certsDir, `${safe}.${sha(certPem + '\0' + (caName ?? ''))}.pem`);
    const sni = p.target.servername;
    return {
      prepared: p,
      entry: {
        hostname: p.hostname,
        certName,
        caName,
        td: p.caKey === '' ? 'p' : `m${sha(p.caKey)}`,
        backend,
        forward: p.config.forwardClientCertificate === true,
        originSni: sni === null ? '*' : sni,
        hopSlot,
      },
    };
  }

  // --- reload path ----------------------------------------------------------------------------------------------

  /** Rebuilds everything from `next`, writes the files and reloads (or starts) HAProxy. */
  /** Rebuilds the whole applied state from `next` and writes every file; reloadNow() then loads them. */
  private prepareReload(next: Map<string, Next>, mode: Mode): void {
    const profiles = new Map<string, ProfileState>();
    const applied = new Map<string, Applied>();
    let hop = 0;
    for (const [name, n] of next) {
      const p = n.prepared;
      const key = this.profileKey(p);
      let ps = profiles.get(key) ?? this.profiles.get(key);
      if (ps && !profiles.has(key)) ps = { ...ps, users: 0 };
      if (!ps) {
        const built = this.buildProfile(p, n.origin.address || p.config.origin.address, profiles.size);
        ps = { profile: built.profile, files: built.files.map((f) => f.name), users: 0 };
        for (const f of built.files) atomicWrite(f.name, f.pem);
      }
      profiles.set(key, ps);
      ps.users++;
      const built = this.buildEntry(p, '', p.caKey !== '' && mode === 'hop' ? hop++ : null);
      applied.set(name, { ...built, profileKey: key, lines: { crt: '', map: '' } });
    }
    // Renumber the slots densely, keeping room to grow at runtime.
    let slot = 0;
    for (const ps of profiles.values()) ps.profile = { ...ps.profile, slot: slot++ };
    for (const a of applied.values()) a.entry.backend = originBackend(profiles.get(a.profileKey)!.profile.slot);
    this.originSlots = Math.max(16, profiles.size * 2);
    this.hopSlots = mode === 'hop' ? Math.max(16, hop * 2) : 0;
    this.mode = mode;
    this.profiles = profiles;
    this.applied = new Map();
    this.usedHop.clear();
    this.refs.clear();
    this.unused.clear();
    for (const [name, a] of applied) this.putApplied(name, a);
    for (const ps of profiles.values()) for (const f of ps.files) this.ref(f, 1);
    this.draining.clear();
    // Content-addressed names: a file that exists already holds exactly this content.
    for (const a of applied.values()) {
      if (!existsSync(a.entry.certName)) atomicWrite(a.entry.certName, certFileOf(a));
      if (a.entry.caName && !existsSync(a.entry.caName)) atomicWrite(a.entry.caName, caFileOf(a.prepared)!);
    }
    this.writeAll();
    this.unwritten = false;
    // After the reload HAProxy's store holds exactly what the files name.
    this.store = this.wantedStoreNames();
  }

  /**
   * Loads the files: a hitless reload (or a start). No separate `haproxy -c` (it would load every certificate a second
   * time): a reload HAProxy cannot load is reported by its master (process.ts), and the previous one keeps serving.
   */
  private async reloadNow(): Promise<void> {
    if (this.proc) await this.proc.reload();
    else await this.spawn();
    await this.waitServing();
    this.removeUnusedFiles();
    this.stale.clear();
  }

  // --- runtime path ---------------------------------------------------------------------------------------------

  private async runtimeChange(
    next: Map<string, Next>,
    changed: string[],
    removed: string[],
    failed: ApplyResult['failed'],
  ): Promise<boolean> {
    const rt = this.runtime;
    const L = this.layout;
    let refused = false;
    const fail = (hostname: string, e: unknown) => {
      refused = true;
      const reason = `haproxy refused the change: ${(e as Error).message}`;
      failed.push({ hostname, reason });
      this.log.warn?.('edge hostname not applied', { hostname, reason });
    };
    const freeOrigin = this.freeOriginSlots();
    const freeHop = this.freeHopSlots();
    // A trust domain no other hostname has, that still requires a client certificate (`m…`): used while a change is made.
    const unique = () => `mx${randomBytes(6).toString('hex')}`;
    const setMap = async (e: EdgeEntry, value: string, exists: boolean) => {
      for (const key of [e.hostname, `${e.hostname}.`]) {
        await rt.run(`${exists ? 'set' : 'add'} map ${L.hostsMap} ${key} ${value}`);
      }
    };
    const closeSlot = async (slot: number | null) => {
      if (this.mode !== 'hop') return;
      if (slot !== null) await rt.run(`shutdown sessions server ${hopBackend(slot)}/s`, undefined, { ok: /^\s*$/ });
      // Connections whose SNI the TCP frontend could not read (a fragmented ClientHello) may be among them too.
      await rt.run('shutdown sessions server hop_unknown/s', undefined, { ok: /^\s*$/ });
    };

    // 1. Upload what the change needs, unused yet.
    const plans: { name: string; prev: Applied | undefined; nextA: Applied }[] = [];
    for (const name of changed) {
      const n = next.get(name)!;
      const p = n.prepared;
      const prev = this.applied.get(name);
      try {
        const key = this.profileKey(p);
        let ps = this.profiles.get(key);
        if (!ps) {
          const slot = freeOrigin.shift()!;
          const built = this.buildProfile(p, n.origin.address, slot);
          for (const f of built.files) await this.load(f.name, f.pem, f.name.startsWith(L.casDir) ? 'ca' : 'cert');
          const srv = `${originBackend(slot)}/s`;
          await rt.run(`add server ${srv} ${built.profile.address}${built.profile.args ? ' ' + built.profile.args : ''}`, undefined, { ok: /New server registered/ });
          await rt.run(`set server ${srv} state ready`, undefined, { ok: /^\s*$/ });
          ps = { profile: built.profile, files: built.files.map((f) => f.name), users: 0 };
          for (const f of ps.files) this.ref(f, 1);
          this.profiles.set(key, ps);
        }
        const sameTrust = prev && prev.prepared.caKey === p.caKey;
        const hopSlot = p.caKey === '' || this.mode !== 'hop' ? null : sameTrust && prev!.entry.hopSlot !== null ? prev!.entry.hopSlot : freeHop.shift()!;
        const built = this.buildEntry(p, originBackend(ps.profile.slot), hopSlot);
        const nextA: Applied = { ...built, profileKey: key, lines: { crt: '', map: '' } };
        await this.load(nextA.entry.certName, certFileOf(nextA), 'cert');
        if (nextA.entry.caName) await this.load(nextA.entry.caName, caFileOf(nextA.prepared)!, 'ca');
        ps.users++;
        plans.push({ name, prev, nextA });
      } catch (e) {
        fail(name, e);
      }
    }

    // 2. Tighten: removed hostnames.
    for (const name of removed) {
      const prev = this.applied.get(name)!;
      // Gone from the configuration whatever HAProxy answers (a refusal is repaired by a reload).
      this.dropApplied(name);
      this.release(prev);
      try {
        await setMap(prev.entry, mapValue({ ...prev.entry, td: unique(), forward: false }), true);
        await rt.run(`del ssl crt-list ${L.crtList} ${prev.entry.certName}`, undefined, { ok: /deleted/i });
        if (prev.entry.hopSlot !== null) await rt.run(`del map ${L.hopMap} ${name}`);
        await closeSlot(prev.entry.hopSlot);
        await rt.run(`del map ${L.hostsMap} ${name}`);
        await rt.run(`del map ${L.hostsMap} ${name}.`);
      } catch (e) {
        refused = true;
        this.log.warn?.('haproxy refused a removal: reloading', { hostname: name, error: (e as Error).message });
      }
    }

    // 2b/3. Changed hostnames: those whose trust (Access CA set) changes first, then the rest.
    const trustChanges = plans.filter((pl) => pl.prev && pl.prev.prepared.caKey !== pl.nextA.prepared.caKey);
    const others = plans.filter((pl) => !trustChanges.includes(pl));
    for (const { name, prev, nextA } of [...trustChanges, ...others]) {
      const e = nextA.entry;
      try {
        if (prev) {
          const trustChange = prev.prepared.caKey !== nextA.prepared.caKey;
          if (trustChange) await setMap(prev.entry, mapValue({ ...prev.entry, td: unique() }), true);
          if (prev.entry.certName !== e.certName) {
            // The new line before the old one goes: the hostname is never without a certificate.
            await rt.run(`add ssl crt-list ${L.crtList}`, crtListLine(e), { ok: /Success!/ });
            await rt.run(`del ssl crt-list ${L.crtList} ${prev.entry.certName}`, undefined, { ok: /deleted/i });
          }
          if (e.hopSlot !== prev.entry.hopSlot) {
            if (e.hopSlot !== null) await rt.run(`${prev.entry.hopSlot !== null ? 'set' : 'add'} map ${L.hopMap} ${name} ${hopBackend(e.hopSlot)}`);
            else if (prev.entry.hopSlot !== null) await rt.run(`del map ${L.hopMap} ${name}`);
          }
          if (trustChange && prev.prepared.caKey !== '') await closeSlot(prev.entry.hopSlot);
          await setMap(e, mapValue(e), true);
          this.release(prev);
        } else {
          if (e.hopSlot !== null) await rt.run(`add map ${L.hopMap} ${name} ${hopBackend(e.hopSlot)}`);
          await setMap(e, mapValue(e), false);
          await rt.run(`add ssl crt-list ${L.crtList}`, crtListLine(e), { ok: /Success!/ });
        }
        this.putApplied(name, nextA);
      } catch (err) {
        fail(name, err);
        this.release(nextA);
      }
    }

    // 4. Clean up, 5. write the files (what a restart serves): soon, off the path of this change.
    await this.cleanup();
    this.scheduleWrite();
    return refused;
  }

  /** Loads a certificate or CA file into HAProxy's store (once per content-addressed name) and writes its file. */
  private async load(name: string, pem: string, kind: 'cert' | 'ca'): Promise<void> {
    if (this.store.has(name)) return;
    atomicWrite(name, pem);
    if (kind === 'cert') await this.runtime.putCertificate(name, pem, true);
    else await this.runtime.putCaFile(name, pem);
    this.store.add(name);
    if (!this.refs.has(name)) this.unused.add(name); // deleted again if the change that needed it fails
  }

  private release(a: Applied): void {
    const ps = this.profiles.get(a.profileKey);
    if (ps) ps.users--;
  }

  /** Deletes what no hostname uses any more: origin servers (once idle), certificates, CA files. */
  private async cleanup(): Promise<void> {
    const rt = this.runtime;
    for (const [key, ps] of [...this.profiles]) {
      if (ps.users > 0) continue;
      this.profiles.delete(key);
      this.draining.add(ps.profile.slot);
      for (const f of ps.files) this.ref(f, -1);
    }
    for (const slot of [...this.draining]) {
      const srv = `${originBackend(slot)}/s`;
      try {
        await rt.run(`set server ${srv} state maint`, undefined, { ok: /^\s*$|No such server/ });
        await rt.run(`shutdown sessions server ${srv}`, undefined, { ok: /^\s*$|No such server/ });
        await rt.run(`del server ${srv}`, undefined, { ok: /Server deleted|No such server/ });
        this.draining.delete(slot);
      } catch {
        // Idle connections to the origin are still open: deleted on a later change (or the next reload).
      }
    }
    for (const name of [...this.unused]) {
      if (this.refs.has(name) || !this.store.has(name)) {
        this.unused.delete(name);
        continue;
      }
      try {
        if (name.startsWith(this.layout.casDir)) await rt.run(`del ssl ca-file ${name}`, undefined, { ok: /deleted/i });
        else await rt.run(`del ssl cert ${name}`, undefined, { ok: /deleted/i });
        this.store.delete(name);
        this.unused.delete(name);
        this.stale.add(name);
      } catch (e) {
        this.log.debug?.('haproxy store entry not deleted yet', { name, error: (e as Error).message });
      }
    }
  }

  private wantedStoreNames(): Set<string> {
    const wanted = new Set<string>();
    for (const a of this.applied.values()) {
      wanted.add(a.entry.certName);
      if (a.entry.caName) wanted.add(a.entry.caName);
    }
    for (const ps of this.profiles.values()) for (const f of ps.files) wanted.add(f);
    return wanted;
  }

  private removeUnusedFiles(): void {
    const wanted = this.wantedStoreNames();
    wanted.add(this.placeholder);
    for (const d of [this.layout.certsDir, this.layout.casDir]) {
      for (const f of readdirSafe(d)) {
        const full = join(d, f);
        if (!wanted.has(full) && !this.store.has(full)) {
          try {
            unlinkSync(full);
          } catch {
            /* already gone */
          }
        }
      }
    }
  }

  private render(layout: Layout): string {
    return renderConfig({
      layout,
      listen: this.listen,
      mode: this.mode,
      noResumption: this.info!.isolation.decision !== 'resumption-on',
      threads: this.opts.threads ?? null,
      originSlots: this.originSlots,
      hopSlots: this.hopSlots,
      profiles: [...this.profiles.values()].map((p) => p.profile),
    });
  }

  /** Files written after a runtime change, coalesced: none of them is read until HAProxy restarts or reloads. */
  private unwritten = false;
  private writeTimer: NodeJS.Timeout | null = null;
  /** Store files no longer used (deleted from HAProxy's store): removed from the disk with the next write. */
  private stale = new Set<string>();

  private scheduleWrite(): void {
    this.unwritten = true;
    this.writeTimer ??= setTimeout(() => {
      this.writeTimer = null;
      try {
        this.flushFiles();
      } catch (e) {
        this.log.error?.('haproxy files not written', { error: (e as Error).message });
      }
    }, 25);
  }

  private flushFiles(): void {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    if (!this.unwritten) return;
    this.writeAll();
    this.unwritten = false;
    for (const f of this.stale) {
      try {
        unlinkSync(f);
      } catch {
        /* already gone */
      }
    }
    this.stale.clear();
  }

  /** Writes the configuration, crt-list and maps for the applied state. */
  private writeAll(): void {
    const L = this.layout;
    const crt = [crtListText(this.placeholder, []).trimEnd()];
    const map: string[] = [];
    const hop: EdgeEntry[] = [];
    for (const a of this.applied.values()) {
      crt.push(a.lines.crt);
      map.push(a.lines.map);
      if (a.entry.hopSlot !== null) hop.push(a.entry);
    }
    atomicWrite(L.crtList, crt.join('\n') + '\n');
    atomicWrite(L.hostsMap, map.join(''));
    atomicWrite(L.hopMap, hopMapText(hop));
    atomicWrite(L.cfgFile, this.render(L));
  }

  // --- verification ---------------------------------------------------------------------------------------------

  /**
   * Checks that HAProxy serves what was applied for `names` and records what does not in `problems`:
   *  - the crt-list line of each hostname (certificate and Access CA option): read back from `show ssl crt-list` when
   *    many hostnames changed or an Access CA option is involved; otherwise `show ssl cert` must report the line's
   *    certificate as used, with the expected fingerprint;
   *  - the map entry (`get map` per hostname, or `show map` when many changed);
   *  - a TLS handshake over loopback (up to maxProbes hostnames) serving the expected certificate, and none for a
   *    removed hostname.
   */
  private async verify(names: string[], problems: Map<string, string>): Promise<void> {
    if (names.length === 0) return;
    const L = this.layout;
    const rt = this.runtime;
    const few = names.length <= 64;
    const leafDer = (a: Applied) => new X509Certificate(a.prepared.config.serverCertificate.certPem).raw;

    const lines = new Map<string, string[]>();
    const dump = !few || names.some((n) => this.applied.get(n)?.entry.caName);
    if (dump) {
      const crt = await rt.run(`show ssl crt-list -n ${L.crtList}`, undefined, { ok: /^# / });
      const wanted = new Set(names);
      for (const line of crt.split('\n')) {
        const m = /^(\S+?):\d+ (?:\[(.*)\] )?(\S+)$/.exec(line.trim());
        if (!m || !wanted.has(m[3])) continue;
        const list = lines.get(m[3]) ?? [];
        list.push(`${m[1]}|${m[2] ?? ''}`);
        lines.set(m[3], list);
      }
    }
    const values = new Map<string, string>();
    if (few) {
      for (const name of names) {
        const got = await rt.run(`get map ${L.hostsMap} ${name}`, undefined, { ok: /found=/ });
        const m = /found=yes.*?key="([^"]*)", value="([^"]*)"/.exec(got);
        if (m && m[1] === name) values.set(name, m[2]);
      }
    } else {
      const map = await rt.run(`show map ${L.hostsMap}`);
      for (const line of map.split('\n')) {
        const m = /^0x[0-9a-f]+ (\S+) (\S+)$/.exec(line.trim());
        if (m) values.set(m[1], m[2]);
      }
    }

    let probes = 0;
    for (const name of names) {
      const a = this.applied.get(name);
      if (!a) {
        if ((lines.get(name) ?? []).length || values.has(name)) problems.set(name, 'still served after its removal');
        else if (few && !name.startsWith('*') && probes++ < this.maxProbes) {
          const served = await this.probe(name).catch(() => null);
          if (served) problems.set(name, 'loopback probe: a certificate is still served after its removal');
        }
        continue;
      }
      if (dump) {
        const got = lines.get(name) ?? [];
        const want = `${a.entry.certName}|${a.entry.caName ? `verify optional ca-file ${a.entry.caName}` : ''}`;
        if (got.length !== 1 || got[0] !== want) {
          problems.set(name, `crt-list holds ${JSON.stringify(got)} instead of ${JSON.stringify(want)}`);
          continue;
        }
      }
      if (values.get(name) !== mapValue(a.entry)) {
        problems.set(name, `map holds ${values.get(name)} instead of ${mapValue(a.entry)}`);
        continue;
      }
      if (!dump || probes < this.maxProbes) {
        const info = await rt.run(`show ssl cert ${a.entry.certName}`, undefined, { ok: /Serial:/ }).catch((e: Error) => e.message);
        const fp = /SHA1 FingerPrint: ([0-9A-F]+)/i.exec(info)?.[1]?.toLowerCase();
        const der = leafDer(a);
        if (fp !== createHash('sha1').update(der).digest('hex')) {
          problems.set(name, `haproxy's store holds another certificate under ${a.entry.certName}`);
          continue;
        }
        if (!/^Status: Used$/m.test(info)) {
          problems.set(name, `no crt-list line uses ${a.entry.certName}`);
          continue;
        }
        if (name.startsWith('*') || probes++ >= this.maxProbes) continue;
        const served = await this.probe(name).catch((e: Error) => e);
        if (served instanceof Error) problems.set(name, `loopback probe failed: ${served.message}`);
        else if (!served.equals(der)) problems.set(name, 'loopback probe: another certificate is served');
      }
    }
  }

  /** TLS handshake over loopback with SNI `name`; resolves with the leaf certificate served. */
  private probe(name: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: this.probeHost(), port: this.listen.port, servername: name, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
      const timer = setTimeout(() => s.destroy(new Error('timed out')), 5_000);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        const peer = s.getPeerX509Certificate();
        s.destroy();
        if (peer) resolve(peer.raw);
        else reject(new Error('no certificate served'));
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }
}

/** The origin SNI when the configuration names one ('' = none, an IP address); null = the visitor's hostname. */
function staticSni(p: PreparedHostname): string | null {
  if (!p.config.origin.sni) return null;
  return p.target.servername ?? null;
}

async function resolveAddress(address: string): Promise<string> {
  if (net.isIP(address)) return address;
  try {
    return (await lookup(address)).address;
  } catch (e) {
    throw new Error(`origin address ${address} does not resolve: ${(e as Error).message}`);
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export function createHaproxyDataPlane(opts: HaproxyDataPlaneOptions = {}): HaproxyDataPlane {
  return new HaproxyDataPlane(opts);
}

export type { HaproxyDataPlane };

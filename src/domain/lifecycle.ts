/**
 * The deployment lifecycle: initializing → pending_deployment → active, pending_deletion → deleted, with
 * timeouts to *_timed_out. The deployer never decides on its own that something is live: it asks a
 * `DeploymentGate`. Today the gate is a timer (no edge exists yet); the edge feed will provide a gate that answers
 * "every live edge has acknowledged a version ≥ this one".
 */
import type { LifecycleTiming } from './config.js';
import type { AopCertificate, HostnameAssociation, LifecycleStatus } from './model.js';
import type { Clock, LifecycleEvent, SettingsRollout, Store } from './ports.js';

export interface DeploymentSubject {
  /** Configuration version that introduced the change being deployed (or deleted). */
  version: number;
  statusChangedAt: Date;
  /** The hostname the change is about, when it is about one (associations). */
  hostname?: string;
}

export interface DeploymentGate {
  /** Is the change that put this subject into pending_deployment live everywhere it must be? */
  isDeployed(subject: DeploymentSubject, now: Date): Promise<boolean>;
  /** Is the deletion of this subject complete everywhere? */
  isRemoved(subject: DeploymentSubject, now: Date): Promise<boolean>;
  /** Called before each deployer pass, outside its transaction, to read what the gate decides on. */
  refresh?(now: Date): Promise<void>;
}

/**
 * The gate once edges exist: a change is live when every live edge (one that was seen within `graceMs` and is not
 * revoked) has acknowledged a configuration version at least as new as the change's. With no live edge, the
 * behaviour without edges (`fallback`) is kept.
 */
export function createAckGate(deps: { store: Store; graceMs: number; fallback: DeploymentGate }): DeploymentGate {
  let liveMinAcked: number | null = null;
  /** Hostnames a live edge reported it could not apply at the version it acknowledged. */
  let failed = new Set<string>();
  const live = (s: DeploymentSubject, now: Date, fallback: (s: DeploymentSubject, now: Date) => Promise<boolean>) =>
    liveMinAcked === null
      ? fallback(s, now)
      : Promise.resolve(liveMinAcked >= s.version && !(s.hostname !== undefined && failed.has(s.hostname)));
  return {
    async refresh(now) {
      const { nodes, failures } = await deps.store.read(async (r) => {
        const all = await r.edge.listNodes();
        const alive = all.filter((n) => !n.revokedAt && n.healthy && n.lastSeenAt && now.getTime() - n.lastSeenAt.getTime() <= deps.graceMs);
        const reported = [];
        for (const n of alive) reported.push(...(await r.edge.listFailures(n.id)));
        return { nodes: alive, failures: reported };
      });
      liveMinAcked = nodes.length === 0 ? null : Math.min(...nodes.map((n) => n.ackedVersion));
      // An edge that failed a hostname has not deployed what concerns it: those changes wait, then time out.
      failed = new Set(failures.map((f) => f.hostname));
    },
    isDeployed: (s, now) => live(s, now, deps.fallback.isDeployed),
    isRemoved: (s, now) => live(s, now, deps.fallback.isRemoved),
  };
}

/** The gate used until edges exist: a deployment completes a fixed delay after it started. */
export function createTimerGate(timing: Pick<LifecycleTiming, 'deployDelayMs' | 'deleteDelayMs'>): DeploymentGate {
  return {
    isDeployed: async (s, now) => now.getTime() - s.statusChangedAt.getTime() >= timing.deployDelayMs,
    isRemoved: async (s, now) => now.getTime() - s.statusChangedAt.getTime() >= timing.deleteDelayMs,
  };
}

/** Statuses in which a subject is waiting for the data plane. */
export const DEPLOYING: LifecycleStatus[] = ['initializing', 'pending_deployment'];

type Transition = { to: LifecycleStatus } | null;

async function nextStatus(
  subject: DeploymentSubject & { status: LifecycleStatus },
  gate: DeploymentGate,
  timing: LifecycleTiming,
  now: Date,
): Promise<Transition> {
  const age = now.getTime() - subject.statusChangedAt.getTime();
  switch (subject.status) {
    case 'initializing':
      return { to: 'pending_deployment' };
    case 'pending_deployment':
      if (await gate.isDeployed(subject, now)) return { to: 'active' };
      return age >= timing.deployTimeoutMs ? { to: 'deployment_timed_out' } : null;
    case 'pending_deletion':
      if (await gate.isRemoved(subject, now)) return { to: 'deleted' };
      return age >= timing.deleteTimeoutMs ? { to: 'deletion_timed_out' } : null;
    default:
      return null;
  }
}

export interface TickReport {
  transitions: number;
  purged: number;
}

export interface Deployer {
  /** One pass over everything in flight; returns what changed. Safe to call at any time, from tests too. */
  tick(): Promise<TickReport>;
  /** Runs `tick` every `intervalMs` until `stop` is called. */
  start(intervalMs: number): void;
  stop(): Promise<void>;
}

const BATCH = 500;
const IN_FLIGHT: LifecycleStatus[] = ['initializing', 'pending_deployment', 'pending_deletion'];

export function createDeployer(deps: {
  store: Store;
  clock: Clock;
  gate: DeploymentGate;
  timing: LifecycleTiming;
  onError?: (err: unknown) => void;
}): Deployer {
  const { store, clock, gate, timing } = deps;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();

  async function advance<T extends DeploymentSubject & { status: LifecycleStatus }>(
    item: T,
    now: Date,
  ): Promise<T | null> {
    const t = await nextStatus(item, gate, timing, now);
    if (!t) return null;
    return { ...item, status: t.to, statusChangedAt: now };
  }

  async function tick(): Promise<TickReport> {
    const now = clock.now();
    await gate.refresh?.(now);
    // The report is built inside the transaction: a transaction the store re-runs must not count twice.
    return store.write(async (r) => {
      const report: TickReport = { transitions: 0, purged: 0 };
      // A pass's transitions are written together at the end (one statement for the associations, one for the events):
      // a PUT of 100 hostnames makes 100 transitions twice, which one at a time cost PostgreSQL 300 round trips a pass
      // while the zone stayed locked against the next request.
      const events: LifecycleEvent[] = [];
      const record = (
        subjectKind: LifecycleEvent['subjectKind'],
        subjectId: string,
        from: DeploymentSubject & { status: LifecycleStatus },
        to: LifecycleStatus,
      ) => events.push({ subjectKind, subjectId, fromStatus: from.status, toStatus: to, version: from.version, at: now });
      // Rows come locked (other deployers skip them); a zone an API request is changing right now is left for the
      // next pass, so the deployer never waits for, nor overwrites, a request. Each zone is asked once a pass: a lock
      // taken is held until the transaction ends, and a zone refused stays left for the next pass.
      const zones = new Map<string, boolean>();
      const lockZone = async (zoneId: string) => {
        let held = zones.get(zoneId);
        if (held === undefined) zones.set(zoneId, (held = await r.locks.tryZone(zoneId)));
        return held;
      };
      for (const cert of await r.aop.listCertificatesInStatus(IN_FLIGHT, now, BATCH)) {
        if (!(await lockZone(cert.zoneId))) continue;
        const next = await advance<AopCertificate>(cert, now);
        if (next) {
          await r.aop.updateCertificate(next);
          record('aop_certificate', cert.id, cert, next.status);
          report.transitions++;
        }
      }
      const moved: HostnameAssociation[] = [];
      for (const assoc of await r.aop.listAssociationsInStatus(IN_FLIGHT, now, BATCH)) {
        if (!(await lockZone(assoc.zoneId))) continue;
        const next = await advance<HostnameAssociation>(assoc, now);
        if (next) {
          moved.push(next);
          record('association', `${assoc.zoneId}/${assoc.hostname}`, assoc, next.status);
          report.transitions++;
        }
      }
      await r.aop.upsertAssociations(moved);
      for (const rollout of await r.access.listSettingsRolloutsInStatus('pending_deployment', now, BATCH)) {
        const next = await advance<SettingsRollout>(rollout, now);
        if (next) {
          await r.access.putSettingsRollout(next);
          record('access_settings', `${rollout.scopeType}/${rollout.scopeId}`, rollout, next.status);
          report.transitions++;
        }
      }
      await r.events.record(events);
      // Tombstones are readable for the retention period, then purged.
      const expired = new Date(now.getTime() - timing.retentionMs);
      for (const cert of await r.aop.listCertificatesInStatus(['deleted'], expired, BATCH)) {
        if (!(await lockZone(cert.zoneId))) continue;
        await r.aop.purgeCertificate(cert.id);
        report.purged++;
      }
      for (const assoc of await r.aop.listAssociationsInStatus(['deleted'], expired, BATCH)) {
        if (!(await lockZone(assoc.zoneId))) continue;
        await r.aop.purgeAssociation(assoc.zoneId, assoc.hostname);
        report.purged++;
      }
      return report;
    });
  }

  return {
    tick() {
      // Ticks never overlap, whoever calls them.
      const p = running.then(tick, tick);
      running = p.catch(() => undefined);
      return p;
    },
    start(intervalMs) {
      if (timer) return;
      timer = setInterval(() => {
        this.tick().catch((err) => deps.onError?.(err));
      }, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}

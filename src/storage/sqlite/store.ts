/**
 * SQLite adapter (better-sqlite3). One connection per process, WAL mode. Writes run in `BEGIN IMMEDIATE` behind an
 * in-process queue, so transactions never interleave even though the domain awaits between statements; the writes
 * asked for together share one transaction, each in its own savepoint (group commit, decision 0011).
 * A read and a write transaction never overlap either (on the one connection, the read would see the write's
 * uncommitted rows): a read that starts while a write is queued or open waits for it, and a write waits for the reads
 * already running to finish before it begins. So every read is a snapshot (`read`'s `snapshot` option changes nothing).
 * Driver errors become `StorageError`s at this boundary.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { DataVersions, Repos, Store } from '../../domain/ports.js';
import { loadMigrations } from '../migrate.js';
import { StorageError } from '../errors.js';
import { createSqliteRepos } from './repos.js';

/** Writes in one transaction at most, and the time a batch keeps taking new ones: an answer waits for its commit. */
const MAX_BATCH = 64;
const MAX_BATCH_MS = 20;

export interface SqliteStoreOptions {
  /** File path, or ':memory:'. */
  path: string;
}

function translate(err: unknown): unknown {
  const code = (err as { code?: string })?.code;
  if (typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT')) {
    return new StorageError('conflict', `constraint violated (${code})`, err);
  }
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return new StorageError('busy', 'database is busy', err);
  if (typeof code === 'string' && code.startsWith('SQLITE_')) return new StorageError('unavailable', code, err);
  return err;
}

export function migrateSqlite(db: Database.Database): string[] {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
  const applied = new Set(
    (db.prepare('SELECT name FROM schema_migrations').all() as { name: string }[]).map((r) => r.name),
  );
  const done: string[] = [];
  for (const m of loadMigrations('sqlite')) {
    if (applied.has(m.name)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)').run(m.name, new Date().toISOString());
    }).immediate();
    done.push(m.name);
  }
  return done;
}

/** `certplane migrate` on a SQLite file: opens it, applies pending migrations, closes it. */
export function migrateSqliteFile(path: string): string[] {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    return migrateSqlite(db);
  } finally {
    db.close();
  }
}

export function openSqliteStore(opts: SqliteStoreOptions): Store {
  if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true });
  let db: Database.Database;
  try {
    db = new Database(opts.path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    // Every write after the first of a batch runs in a savepoint (group commit). A savepoint's sub-journal holds the
    // pages its write changes; past 64 KiB the default temp_store spills it to a temporary file. `node bench/sqlite-savepoint.mjs`:
    // 100 upserts in a savepoint 1.7x a plain transaction with the file, 1.1x in memory. It holds at most the
    // pre-savepoint pages of one write.
    db.pragma('temp_store = MEMORY');
    migrateSqlite(db);
  } catch (err) {
    throw translate(err);
  }
  const repos: Repos = createSqliteRepos(db);

  let queue: Promise<unknown> = Promise.resolve();
  /** Commits made through this connection (`PRAGMA data_version` only counts other connections' commits). */
  let localCommits = 0;
  /** Write transactions queued or open: a read that starts meanwhile queues behind them. */
  let writes = 0;
  /** Reads running outside the queue: the next write transaction begins only when they have finished. */
  let reads = 0;
  let readsFinished: (() => void) | undefined;
  const listeners = new Set<() => void>();
  /** Set when a write in the open transaction allocates a configuration version (its commit wakes listeners). */
  let bumped = false;
  const writeRepos: Repos = {
    ...repos,
    nextVersion: () => {
      bumped = true;
      return repos.nextVersion();
    },
  };

  // Group commit (docs/decisions/0011-sqlite-group-commit.md). The writes asked for while a transaction is being
  // prepared or is open run one after another in that one transaction, each in its own savepoint, and are answered
  // after its one COMMIT: a write that fails rolls back to its savepoint and changes nothing, the others go on; none
  // is answered before the commit that makes it durable. A COMMIT writes the pages every change shares (indexes,
  // version rows, the change feed) once, not once per write. The first write of a transaction needs no savepoint:
  // the transaction is its rollback point (ROLLBACK, then BEGIN again for the rest). A savepoint's journal copies
  // every page the write touches, and a lone write (one client, a deployer tick) is the common batch.
  type Job = { fn: (r: Repos) => Promise<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void };
  type Done = { job: Job; ok: boolean; value: unknown };
  const pending: Job[] = [];
  /** A batch is scheduled or running and still takes new writes. */
  let accepting = false;
  const stmt = (sql: string) => db.prepare(sql);
  const begin = stmt('BEGIN IMMEDIATE');
  const commit = stmt('COMMIT');
  const savepoint = stmt('SAVEPOINT w');
  const release = stmt('RELEASE w');
  const rollbackTo = stmt('ROLLBACK TO w');
  const rollback = stmt('ROLLBACK');

  async function runBatch(): Promise<void> {
    // A read that began before this batch was queued must not run on inside its transaction.
    if (reads > 0) await new Promise<void>((resolve) => (readsFinished = resolve));
    const done: Done[] = [];
    const settle = (failure?: unknown) => {
      accepting = false;
      writes -= done.length;
      for (const d of done) {
        if (failure === undefined ? d.ok : false) d.job.resolve(d.value);
        else d.job.reject(failure ?? d.value);
      }
    };
    try {
      begin.run();
    } catch (err) {
      // The whole batch waits for nothing: every write in it is refused (busy, unavailable).
      done.push(...pending.splice(0).map((job) => ({ job, ok: false, value: undefined })));
      return settle(translate(err));
    }
    bumped = false;
    /** Nothing has been written in the open transaction yet: the next write runs without a savepoint. */
    let fresh = true;
    const started = performance.now();
    while (pending.length > 0 && done.length < MAX_BATCH && performance.now() - started < MAX_BATCH_MS) {
      const job = pending.shift() as Job;
      // A version allocated by a write that is rolled back wakes nobody.
      const bumpedBefore: boolean = bumped;
      const saved = !fresh;
      if (saved) savepoint.run();
      try {
        const value = await job.fn(writeRepos);
        if (saved) release.run();
        fresh = false;
        done.push({ job, ok: true, value });
      } catch (err) {
        done.push({ job, ok: false, value: translate(err) });
        if (!db.inTransaction) {
          // SQLite rolled the whole transaction back (an I/O error, a full disk): the writes before it are gone too.
          return settle(translate(err));
        }
        bumped = bumpedBefore;
        if (saved) {
          rollbackTo.run();
          release.run();
          continue;
        }
        // The first write: the transaction held nothing else. Roll it back and begin again for the writes after it
        // (no await in between, so no read or write runs outside a transaction here).
        rollback.run();
        try {
          begin.run();
        } catch {
          // The writes already taken failed on their own; the ones still pending go to the next batch.
          return settle();
        }
      }
    }
    accepting = false;
    try {
      commit.run();
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      return settle(translate(err));
    }
    localCommits++;
    if (bumped) for (const l of listeners) queueMicrotask(l);
    settle();
  }

  function schedule(): void {
    accepting = true;
    // The batch takes its place in the queue now, so reads asked for from here on wait for it (an in-process loop of
    // reads cannot starve it), and begins after the current event-loop turn, so the writes of every request parsed
    // in that turn join it. Writes that arrive once a batch has stopped taking them go to the next one.
    void enqueue(async () => {
      await new Promise<void>((resolve) => setImmediate(resolve));
      await runBatch();
    }).finally(() => {
      if (pending.length > 0 && !accepting) schedule();
    });
  }

  // Versions as last read, valid while neither this connection nor any other has committed since: one pragma instead
  // of two row reads (`data_version` changes when another connection, e.g. the CLI, commits).
  const dataVersion = db.prepare('PRAGMA data_version').pluck();
  const tenancyVersion = db.prepare('SELECT version FROM tenancy_version WHERE id = 1').pluck();
  const zoneVersion = db.prepare('SELECT version FROM zone_data_version WHERE zone_id = ?').pluck();
  const memo = { dataVersion: -1, commits: -1, tenancy: -1, zones: new Map<string, number>() };
  function readVersions(zoneId: string | null, checkOthers: boolean): DataVersions {
    const dv = checkOthers ? (dataVersion.get() as number) : memo.dataVersion;
    if (dv !== memo.dataVersion || localCommits !== memo.commits) {
      memo.dataVersion = dv;
      memo.commits = localCommits;
      memo.tenancy = tenancyVersion.get() as number;
      memo.zones.clear();
    }
    if (zoneId === null) return { tenancy: memo.tenancy, zone: -1 };
    let zone = memo.zones.get(zoneId);
    if (zone === undefined) {
      zone = (zoneVersion.get(zoneId) as number | undefined) ?? -1;
      // Bounded: a flood of distinct zone ids starts the memo again instead of growing it.
      if (memo.zones.size >= 100_000) memo.zones.clear();
      memo.zones.set(zoneId, zone);
    }
    return { tenancy: memo.tenancy, zone };
  }

  /**
   * Version probes are answered together, once every request the event loop is parsing in this turn has asked: one
   * `data_version` pragma (about 2.5 µs in WAL mode, as much as a row read) per turn instead of one per request. The
   * pragma runs after each of them arrived, so each still sees every commit made before it began. The answers are one
   * synchronous step, so no write can begin in the middle; while a write transaction is open its uncommitted rows are
   * visible on this connection, so then they wait for the queue.
   */
  type Probe = { zoneId: string | null; resolve: (v: DataVersions) => void; reject: (e: unknown) => void };
  let probes: Probe[] | null = null;
  function answerProbes(): void {
    const batch = probes ?? [];
    probes = null;
    const answer = async () => {
      let first = true;
      for (const p of batch) {
        try {
          p.resolve(readVersions(p.zoneId, first));
          first = false;
        } catch (err) {
          p.reject(translate(err));
        }
      }
    };
    if (db.inTransaction) void enqueue(answer);
    else void answer();
  }

  function enqueue<T>(job: () => Promise<T>): Promise<T> {
    const p = queue.then(job, job);
    queue = p.catch(() => undefined);
    return p;
  }

  return {
    dialect: 'sqlite',
    onConfigChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    versions(zoneId) {
      return new Promise<DataVersions>((resolve, reject) => {
        if (probes === null) {
          probes = [];
          setImmediate(answerProbes);
        }
        probes.push({ zoneId, resolve, reject });
      });
    },
    write<T>(fn: (r: Repos) => Promise<T>): Promise<T> {
      writes++;
      return new Promise<T>((resolve, reject) => {
        pending.push({ fn, resolve: resolve as (v: unknown) => void, reject });
        if (!accepting) schedule();
      });
    },
    async read(fn) {
      const run = async () => {
        try {
          return await fn(repos);
        } catch (err) {
          throw translate(err);
        }
      };
      if (writes > 0) return enqueue(run);
      reads++;
      try {
        return await run();
      } finally {
        if (--reads === 0 && readsFinished) {
          const resume = readsFinished;
          readsFinished = undefined;
          resume();
        }
      }
    },
    async close() {
      await queue;
      if (db.open) db.close();
    },
  };
}

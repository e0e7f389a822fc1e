/**
 * PostgreSQL adapter (`pg`), for several API nodes sharing one database.
 *
 * - `write(fn)` runs `fn` in one READ COMMITTED transaction on one pooled connection; the domain takes the
 *   aggregate's advisory lock first (docs/decisions/0002). A serialization failure (40001)
 *   or deadlock (40P01), whether raised by a statement or by COMMIT, rolls back and re-runs the whole `fn` after a
 *   jittered exponential backoff (the domain's write functions only call repositories, so re-running them is safe);
 *   after `maxAttempts` the caller gets StorageError('busy').
 * - `read(fn)` runs without a transaction: each statement sees the data committed when it starts (READ COMMITTED).
 *   Reads never take snapshots that writers would have to respect, never block writers and never fail with
 *   serialization errors; a multi-statement read (a page and its total count) may straddle a commit. A read never
 *   waits for writes in flight: it sees what is committed (a request that wrote has committed before it answers, so
 *   a client always reads its own writes). `read(fn, { snapshot: true })` runs `fn` in one REPEATABLE READ READ ONLY
 *   transaction instead: every statement sees the state committed before its first (the edge feed, which must
 *   never show half of a bulk PUT). Read-only snapshots still never block writers nor fail to serialise.
 * - Driver errors become `StorageError`s here: class 23 (integrity constraint: unique, foreign key, check, not null)
 *   → 'conflict'; serialization failures that exhaust their retries, statement and lock timeouts → 'busy'; a
 *   database that is down, restarting, unreachable or refusing connections, and any other server error →
 *   'unavailable' (the API answers 503 for both). Errors thrown by `fn` itself pass through untouched.
 * - The pool heals itself: an idle connection killed by a server restart is dropped (`pool.on('error')`), a broken
 *   connection is destroyed instead of being returned to the pool, and new connections are opened on demand, so the
 *   store works again as soon as PostgreSQL is back, without reopening it. `connectionTimeoutMillis` bounds how long
 *   a request waits while the database is down.
 */
import pg from 'pg';
import type { PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import type { DataVersions, Repos, Store } from '../../domain/ports.js';
import { loadMigrations } from '../migrate.js';
import { StorageError } from '../errors.js';
import { createPostgresRepos, type Queryable } from './repos.js';

export interface PostgresStoreOptions {
  connectionString: string;
  /** Pool size (default 10). */
  max?: number;
  /** Attempts for a write transaction that hits a serialization failure or deadlock (default 20). */
  maxAttempts?: number;
  /** Application name shown in pg_stat_activity (default "certplane"). */
  applicationName?: string;
  /** How long to wait for a connection (to open one, or for a free pool slot) before failing (default 5000 ms). */
  connectionTimeoutMillis?: number;
  /** Server-side `statement_timeout` (default 30000 ms; 0 disables). */
  statementTimeoutMillis?: number;
  /** Server-side `idle_in_transaction_session_timeout` (default 60000 ms; 0 disables). */
  idleInTransactionTimeoutMillis?: number;
  /** Named prepared statements (default true). Turn off behind a transaction-mode pooler that cannot keep them. */
  preparedStatements?: boolean;
  /** Told about errors on idle pooled connections (for example when PostgreSQL restarts); they are otherwise ignored. */
  onIdleError?: (err: Error) => void;
}

/** Session advisory lock held while migrating: "certplan" in ASCII, a constant every node uses. */
const MIGRATION_LOCK = '7162256626830565742';

/** bigint (int8) columns and count(*) come back as JS numbers (versions and counts stay far below 2^53). */
const getTypeParser = ((oid: number, format?: 'text' | 'binary') =>
  oid === 20 && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser;
const TYPES = { getTypeParser };

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, recovering)
  '57P04', // database_dropped
  '53300', // too_many_connections
  '25P03', // idle_in_transaction_session_timeout (the server closed the session)
]);
const CONNECTION_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|connection timeout|not queryable|Cannot use a pool after calling end|Client was closed/i;

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The connection (or the server behind it) is gone or refusing: nothing about the request itself was wrong. */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof StorageError) return err.kind === 'unavailable';
  const code = codeOf(err);
  if (code && (CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' && CONNECTION_MESSAGES.test(message) && !(err instanceof pg.DatabaseError);
}

/**
 * A named prepared statement whose result columns changed under it (a migration run by another node altered a table
 * this connection had prepared `SELECT *` on). That statement is unusable on this connection for good: the connection
 * is destroyed and the work re-run on another one.
 */
export function isStalePlan(err: unknown): boolean {
  return codeOf(err) === '0A000' && /cached plan must not change result type/i.test(String((err as Error)?.message));
}

/** serialization_failure or deadlock_detected: the transaction may succeed if run again. */
export function isRetryable(err: unknown): boolean {
  const code = codeOf(err);
  return code === '40001' || code === '40P01';
}

/** Driver errors → StorageError; anything else (domain errors, programming errors in `fn`) passes through. */
export function translatePgError(err: unknown): unknown {
  if (err instanceof StorageError) return err;
  if (isConnectionError(err)) {
    return new StorageError('unavailable', `database unavailable: ${(err as Error)?.message ?? String(err)}`, err);
  }
  if (err instanceof pg.DatabaseError) {
    const code = err.code ?? '';
    if (code.startsWith('23')) return new StorageError('conflict', `constraint violated (${code}${err.constraint ? ` ${err.constraint}` : ''})`, err);
    if (isRetryable(err) || isStalePlan(err) || code === '57014' || code === '55P03') {
      return new StorageError('busy', `database is busy (${code})`, err);
    }
    return new StorageError('unavailable', `database error ${code}: ${err.message}`, err);
  }
  return err;
}

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

/** 2–5 ms, doubling per attempt, capped at 100 ms. */
function backoffMs(attempt: number): number {
  return Math.min(100, (2 + Math.random() * 3) * 2 ** (attempt - 1));
}

/**
 * Applies pending `migrations/postgres/*.sql`, each in its own transaction, while holding a session advisory lock:
 * nodes starting together take turns, and the ones that come second find nothing left to do. Idempotent; returns
 * the names applied by this call.
 */
export async function migratePostgres(connectionString: string): Promise<string[]> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 10_000, application_name: 'certplane-migrate' });
  client.on('error', () => undefined); // a dying connection also rejects the pending query, which is what we report
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw translatePgError(err);
  }
  try {
    await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK})`);
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL)');
    const applied = new Set((await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name));
    const done: string[] = [];
    for (const m of loadMigrations('postgres')) {
      if (applied.has(m.name)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql); // simple query protocol: the file may hold several statements
        await client.query('INSERT INTO schema_migrations (name, applied_at) VALUES ($1, now())', [m.name]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        if (isConnectionError(err)) throw err;
        throw new Error(`certplane: PostgreSQL migration ${m.name} failed: ${(err as Error).message}`, { cause: err });
      }
      done.push(m.name);
    }
    return done;
  } catch (err) {
    throw isConnectionError(err) ? translatePgError(err) : err;
  } finally {
    // Ending the session releases the advisory lock in any case.
    await client.end().catch(() => undefined);
  }
}

/** Opens a pool on the database after applying pending migrations. */
export async function openPostgresStore(opts: PostgresStoreOptions): Promise<Store> {
  await migratePostgres(opts.connectionString);

  const maxAttempts = Math.max(1, opts.maxAttempts ?? 20);
  const reposOptions = { preparedStatements: opts.preparedStatements !== false };
  const poolMax = Math.max(1, opts.max ?? 10);
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: poolMax,
    connectionTimeoutMillis: opts.connectionTimeoutMillis ?? 5000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: opts.applicationName ?? 'certplane',
    statement_timeout: opts.statementTimeoutMillis ?? 30_000,
    idle_in_transaction_session_timeout: opts.idleInTransactionTimeoutMillis ?? 60_000,
    types: TYPES,
  });
  // An idle client whose connection dies (PostgreSQL restarted, network cut) is emitted here and already removed
  // from the pool; without a listener the process would crash.
  pool.on('error', (err) => opts.onIdleError?.(err));

  let closed = false;
  const inFlightWrites = new Set<Promise<unknown>>();
  const listeners = new Set<() => void>();
  /**
   * One LISTEN connection per store, opened on the first subscription and re-opened after it breaks (PostgreSQL
   * restarted). While it is down, wake-ups are missed; waiters re-check periodically, so nothing is lost.
   */
  let listener: pg.Client | null = null;
  /**
   * The highest version listeners were woken for. This node's own commit wakes them at once, and its NOTIFY comes
   * later (or sooner) on the LISTEN connection: one wake-up per committed version, not two.
   */
  let announced = 0;
  function announce(version: number): void {
    if (version <= announced) return;
    announced = version;
    for (const l of listeners) queueMicrotask(l);
  }
  let listening = false;
  async function listen(): Promise<void> {
    if (listening || closed) return;
    listening = true;
    const client = new pg.Client({ connectionString: opts.connectionString, application_name: `${opts.applicationName ?? 'certplane'} listen` });
    const retry = () => {
      if (listener === client) listener = null;
      listening = false;
      client.end().catch(() => undefined);
      if (!closed && listeners.size > 0) setTimeout(() => void listen(), 1000).unref();
    };
    client.on('error', retry);
    client.on('end', () => {
      if (listener === client) retry();
    });
    client.on('notification', (msg) => {
      const version = Number(msg.payload);
      if (Number.isSafeInteger(version)) announce(version);
      else for (const l of listeners) queueMicrotask(l);
    });
    try {
      await client.connect();
      await client.query('LISTEN certplane_config');
      listener = client;
    } catch {
      retry();
    }
  }

  /** A checked-out client, with a listener for connection errors while it is out of the pool. */
  async function checkout(): Promise<{ client: PoolClient; broken: () => unknown; done: (err?: unknown) => void }> {
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw translatePgError(err);
    }
    let broken: unknown;
    // A checked-out client has no pool listener: an 'error' event (server terminated the session) would otherwise be
    // an uncaught exception. The pending query is rejected too; this only records that the connection is dead.
    const onError = (err: unknown) => {
      broken ??= err;
    };
    client.on('error', onError);
    return {
      client,
      broken: () => broken,
      done(err?: unknown) {
        client.removeListener('error', onError);
        const dead = broken ?? (err !== undefined && (isConnectionError(err) || isStalePlan(err)) ? err : undefined);
        // release(error) destroys the connection instead of returning it to the pool.
        client.release(dead === undefined ? undefined : dead instanceof Error ? dead : new Error(String(dead)));
      },
    };
  }

  async function runWrite<T>(fn: (r: Repos) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const { client, broken, done } = await checkout();
      // The first statement error of the transaction, even if `fn` caught it (the transaction is then aborted).
      let failed: unknown;
      const tracked: Queryable = {
        query: <R extends QueryResultRow>(config: QueryConfig): Promise<QueryResult<R>> =>
          client.query<R>(config).catch((err: unknown) => {
            failed ??= err;
            throw err;
          }),
      };
      let began = false;
      let rollbackFailed: unknown;
      let outcome: { ok: true; value: T } | { ok: false; err: unknown };
      try {
        await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
        began = true;
        const base = createPostgresRepos(tracked, reposOptions);
        let bumped = 0;
        const repos: Repos = {
          ...base,
          nextVersion: async () => {
            const version = await base.nextVersion();
            bumped = Math.max(bumped, version);
            return version;
          },
        };
        const value = await fn(repos);
        const commit = await client.query('COMMIT');
        // COMMIT of an aborted transaction (a failed statement that `fn` swallowed) answers ROLLBACK, not an error.
        if (commit.command === 'ROLLBACK') throw failed ?? new StorageError('unavailable', 'transaction was rolled back');
        outcome = { ok: true, value };
        // This node's own waiters are woken at once; other nodes' through the NOTIFY sent with the commit.
        if (bumped) announce(bumped);
      } catch (err) {
        outcome = { ok: false, err };
        if (broken() === undefined && !isConnectionError(err)) {
          // A connection that cannot even roll back must not go back to the pool (it may still be in a transaction).
          rollbackFailed = await client.query('ROLLBACK').then(
            () => undefined,
            (e: unknown) => e ?? new Error('ROLLBACK failed'),
          );
        }
      }
      const lastErr = outcome.ok ? undefined : outcome.err;
      done(broken() ?? rollbackFailed ?? (isStalePlan(failed) ? failed : lastErr));
      if (outcome.ok) return outcome.value;

      const err = outcome.err;
      const stale = isStalePlan(err) ? err : isStalePlan(failed) ? failed : undefined;
      const conflict = isRetryable(err) ? err : isRetryable(failed) ? failed : stale;
      if (conflict !== undefined) {
        if (attempt >= maxAttempts) {
          throw new StorageError('busy', `write transaction kept failing to serialise (${attempt} attempts)`, conflict);
        }
        await sleep(backoffMs(attempt));
        continue;
      }
      // A pooled connection found dead before anything ran (BEGIN failed): nothing happened, try one fresh connection.
      if (!began && attempt === 1 && isConnectionError(err)) continue;
      throw translatePgError(err);
    }
  }

  /** Runs a read on a pooled connection, with the retries a read may have (it is idempotent). */
  async function runRead<T>(fn: (client: PoolClient) => Promise<T>, snapshot: boolean): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const { client, broken, done } = await checkout();
      let began = false;
      try {
        if (snapshot) {
          await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
          began = true;
        }
        const value = await fn(client);
        if (began) await client.query('COMMIT');
        done();
        return value;
      } catch (err) {
        let rollbackFailed: unknown;
        if (began && broken() === undefined && !isConnectionError(err)) {
          rollbackFailed = await client.query('ROLLBACK').then(
            () => undefined,
            (e: unknown) => e ?? new Error('ROLLBACK failed'),
          );
        }
        done(broken() ?? rollbackFailed ?? err);
        // Reads are idempotent. A pooled connection killed by a restart gets one retry on a fresh one; a connection
        // with a stale prepared statement is destroyed and the read re-run, until every pooled one has been replaced.
        if (attempt === 1 && (broken() !== undefined || isConnectionError(err))) continue;
        if (isStalePlan(err) && attempt <= poolMax) continue;
        throw translatePgError(err);
      }
    }
  }

  const versionsText =
    'SELECT t.version AS tenancy, z.zone_id, z.version AS zone FROM tenancy_version t ' +
    'LEFT JOIN zone_data_version z ON z.zone_id = ANY($1::text[]) WHERE t.id = 1';
  async function queryVersions(zoneIds: string[]): Promise<QueryResultRow[]> {
    const config: QueryConfig = reposOptions.preparedStatements
      ? { name: 'certplane_versions', text: versionsText, values: [zoneIds] }
      : { text: versionsText, values: [zoneIds] };
    return runRead(async (client) => (await client.query(config)).rows, false);
  }

  /**
   * Version probes, coalesced: one query at a time answers every probe that arrived before it was sent. A probe
   * arriving while a query is in flight waits for the next one, which starts after it arrived, so it still sees every
   * change committed before it began. Under load this is one round trip for dozens of requests, instead of one each.
   */
  type Waiter = { zoneId: string | null; resolve: (v: DataVersions) => void; reject: (e: unknown) => void };
  let nextBatch: { zoneIds: Set<string>; waiters: Waiter[] } | null = null;
  let probing = false;
  async function drainProbes(): Promise<void> {
    probing = true;
    while (nextBatch) {
      const batch = nextBatch;
      nextBatch = null;
      try {
        const rows = await queryVersions([...batch.zoneIds]);
        const tenancy = Number(rows[0].tenancy);
        const zones = new Map<string, number>();
        for (const r of rows) if (r.zone_id !== null) zones.set(r.zone_id as string, Number(r.zone));
        for (const w of batch.waiters) w.resolve({ tenancy, zone: w.zoneId === null ? -1 : (zones.get(w.zoneId) ?? -1) });
      } catch (err) {
        for (const w of batch.waiters) w.reject(err);
      }
    }
    probing = false;
  }

  return {
    dialect: 'postgres',
    versions(zoneId) {
      return new Promise<DataVersions>((resolve, reject) => {
        nextBatch ??= { zoneIds: new Set(), waiters: [] };
        if (zoneId !== null) nextBatch.zoneIds.add(zoneId);
        nextBatch.waiters.push({ zoneId, resolve, reject });
        if (!probing) void drainProbes();
      });
    },
    onConfigChange(l) {
      listeners.add(l);
      void listen();
      return () => void listeners.delete(l);
    },
    write<T>(fn: (r: Repos) => Promise<T>): Promise<T> {
      const p = runWrite(fn);
      inFlightWrites.add(p);
      const forget = () => void inFlightWrites.delete(p);
      p.then(forget, forget);
      return p;
    },
    async read<T>(fn: (r: Repos) => Promise<T>, opts?: { snapshot?: boolean }): Promise<T> {
      return runRead((client) => fn(createPostgresRepos(client, reposOptions)), opts?.snapshot === true);
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([...inFlightWrites]);
      const l = listener;
      listener = null;
      await l?.end().catch(() => undefined);
      await pool.end();
    },
  };
}

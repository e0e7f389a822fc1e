/**
 * The queries an API request makes on its hot paths use indexes, on both dialects: each repository call below is
 * recorded (SQL text and parameters) and explained, and no plan may scan a whole table or sort a page of a list that
 * an index can give in order. What each request costs must not grow with what the database stores.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { Repos } from '../src/domain/ports.js';
import { migratePostgres } from '../src/storage/postgres/store.js';
import { createPostgresRepos, type Queryable } from '../src/storage/postgres/repos.js';
import { migrateSqlite } from '../src/storage/sqlite/store.js';
import { createSqliteRepos } from '../src/storage/sqlite/repos.js';
import { requirePostgresOrSkip, testDatabaseUrl } from './helpers/pg.js';
import { assoc, cert, zone } from './storage/contract.js';

const ZONE = 'a'.repeat(32);
const CERT = '00000000-0000-4000-8000-000000000001';
/** Tables that grow with an installation: a plan may only reach them through an index. */
const BIG = ['aop_associations', 'aop_certificates', 'tokens', 'zones', 'users', 'memberships', 'access_settings', 'access_certificates'];

/** The repository calls one API request makes on the hot paths the benchmark measures. */
async function hotPaths(r: Repos): Promise<void> {
  await r.tenancy.getTokenBySecretHash('f'.repeat(64));
  await r.tenancy.getZone(ZONE);
  await r.tenancy.getZoneByName('example.com');
  await r.tenancy.getZonesByNames(['app.example.com', 'example.com', 'com']);
  await r.aop.getAssociation(ZONE, 'app.example.com');
  await r.aop.getAssociations(ZONE, ['app.example.com', 'api.example.com']);
  await r.aop.getCertificate(ZONE, 'hostname', CERT);
  await r.aop.getCertificateByFingerprint(ZONE, 'hostname', 'f'.repeat(64));
  await r.aop.countCertificates(ZONE, 'hostname', ['deleted']);
  await r.aop.countLiveAssociations(CERT);
  await r.aop.listAssociations(ZONE, ['active'], { page: 3, perPage: 50 });
  await r.aop.listAssociations(ZONE, undefined, { page: 1, perPage: 1000 });
  await r.aop.listAssociations(ZONE, ['active', 'pending_deployment'], { page: 1, perPage: 50 });
  await r.access.listSettings('zone', ZONE);
  await r.access.getSettingsRollout('zone', ZONE);
}

/** A client on a fresh, migrated PostgreSQL database, closed afterwards. */
async function withMigratedClient(fn: (client: pg.Client) => Promise<void>): Promise<void> {
  const url = await testDatabaseUrl();
  await migratePostgres(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}

const isPage = (sql: string) => /LIMIT/i.test(sql) && /FROM aop_associations/i.test(sql);
const singleStatus = (sql: string) => /status = (:status|\$2)/.test(sql);

describe('hot-path queries use indexes', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  test('SQLite: no full scan of a growing table, no sort of a one-status page', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certplane-plans-'));
    dirs.push(dir);
    const db = new Database(join(dir, 'plans.db'));
    migrateSqlite(db);
    const seen: { sql: string; params: unknown }[] = [];
    // Records every statement the repositories prepare, with the parameters it runs with.
    const spy = new Proxy(db, {
      get(target, key) {
        if (key === 'prepare') {
          return (sql: string) => {
            const stmt = target.prepare(sql);
            const recording: Database.Statement = new Proxy(stmt, {
              get(s, k) {
                const v = Reflect.get(s, k, s);
                // Mode setters (raw, pluck, ...) return the statement: keep recording through them.
                if (k === 'raw' || k === 'pluck' || k === 'expand' || k === 'safeIntegers') {
                  return (...args: unknown[]) => {
                    (v as (...a: unknown[]) => unknown).apply(s, args);
                    return recording;
                  };
                }
                if (k === 'get' || k === 'all' || k === 'run') {
                  return (...args: unknown[]) => {
                    seen.push({ sql, params: args[0] });
                    return (v as (...a: unknown[]) => unknown).apply(s, args);
                  };
                }
                return typeof v === 'function' ? v.bind(s) : v;
              },
            });
            return recording;
          };
        }
        const v = Reflect.get(target, key, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    await hotPaths(createSqliteRepos(spy));
    assert.ok(seen.length >= 15, `recorded ${seen.length} statements`);
    for (const { sql, params } of seen) {
      const explain = db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
      const plan = ((params === undefined ? explain.all() : explain.all(params)) as { detail: string }[]).map((r) => r.detail);
      for (const line of plan) {
        for (const table of BIG) assert.doesNotMatch(line, new RegExp(`^SCAN ${table}\\b`), `${sql}\n${plan.join('\n')}`);
      }
      if (isPage(sql) && singleStatus(sql)) {
        assert.ok(!plan.some((l) => l.includes('TEMP B-TREE')), `a one-status page is read in index order:\n${sql}\n${plan.join('\n')}`);
      }
    }
    db.close();
  });

  test('PostgreSQL: no sequential scan of a growing table (with sequential scans discouraged)', { skip: requirePostgresOrSkip() }, async () => {
    await withMigratedClient(async (client) => {
      const seen: { text: string; values: unknown[] }[] = [];
      const spy: Queryable = {
        query: (config) => {
          seen.push({ text: config.text, values: (config.values as unknown[]) ?? [] });
          return client.query(config);
        },
      };
      await hotPaths(createPostgresRepos(spy, { preparedStatements: false }));
      assert.ok(seen.length >= 15, `recorded ${seen.length} statements`);
      // Empty tables make a sequential scan the cheapest plan; discouraged, it is chosen only where no index serves.
      await client.query('SET enable_seqscan = off');
      for (const { text, values } of seen) {
        const plan = (await client.query<{ 'QUERY PLAN': string }>({ text: `EXPLAIN ${text}`, values })).rows.map((r) => r['QUERY PLAN']);
        for (const line of plan) {
          for (const table of BIG) assert.doesNotMatch(line, new RegExp(`Seq Scan on ${table}\\b`), `${text}\n${plan.join('\n')}`);
        }
      }
    });
  });

  // A text key compared with a key of another collation cannot use its index (PostgreSQL matches them by collation).
  test('PostgreSQL: every foreign key has the collation of the key it references', { skip: requirePostgresOrSkip() }, async () => {
    await withMigratedClient(async (client) => {
      const { rows } = await client.query<{ fk: string; fk_coll: string; ref_coll: string }>(`
        SELECT c.conrelid::regclass || '.' || a.attname AS fk, a.attcollation::regcollation::text AS fk_coll,
               b.attcollation::regcollation::text AS ref_coll
        FROM pg_constraint c
        CROSS JOIN LATERAL unnest(c.conkey, c.confkey) AS k(col, refcol)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col
        JOIN pg_attribute b ON b.attrelid = c.confrelid AND b.attnum = k.refcol
        WHERE c.contype = 'f' ORDER BY 1`);
      assert.ok(rows.length >= 9, `found ${rows.length} foreign keys`);
      assert.deepEqual(rows.filter((r) => r.fk_coll !== r.ref_coll), []);
    });
  });

  // EXPLAIN does not show the statements a trigger runs, and the per-zone version rows are written by triggers on
  // every certificate and association write (migrations/postgres/006). The transaction's own statistics count every
  // sequential scan it made, triggers included: with sequential scans discouraged, a scan there means no index could
  // serve a comparison (zone_data_version.zone_id lacked COLLATE "C", so each row written scanned the whole table).
  test('PostgreSQL: certificate and association writes scan no table, their triggers included', { skip: requirePostgresOrSkip() }, async () => {
    await withMigratedClient(async (client) => {
      const r = createPostgresRepos(client, { preparedStatements: false });
      const account = 'b'.repeat(32);
      await r.tenancy.insertAccount({ id: account, name: 'plans', createdAt: new Date() });
      const z = zone(1, account, 'example.com');
      await r.tenancy.insertZone(z);
      await r.tenancy.insertZone(zone(2, account, 'example.net'));
      await client.query('BEGIN');
      await client.query('SET LOCAL enable_seqscan = off');
      const c = cert(1, z.id, 'hostname');
      await r.aop.insertCertificate(c);
      await r.aop.updateCertificate({ ...c, status: 'active' });
      await r.aop.upsertAssociations([assoc('a.example.com', z.id, c.id), assoc('b.example.com', z.id, c.id)]);
      await r.aop.upsertAssociations([assoc('a.example.com', z.id, c.id, { enabled: false })]);
      await r.aop.upsertAssociation(assoc('c.example.com', z.id, c.id));
      for (const h of ['a', 'b', 'c']) await r.aop.purgeAssociation(z.id, `${h}.example.com`);
      await r.aop.purgeCertificate(c.id);
      const { rows } = await client.query<{ relname: string; seq_scan: string; n_tup_upd: string }>(
        'SELECT relname, seq_scan, n_tup_upd FROM pg_stat_xact_user_tables ORDER BY relname',
      );
      // The triggers did run (the version row was written), and nothing was scanned.
      assert.ok(rows.some((t) => t.relname === 'zone_data_version' && Number(t.n_tup_upd) > 0), JSON.stringify(rows));
      assert.deepEqual(rows.filter((t) => Number(t.seq_scan) > 0).map((t) => t.relname), []);
      await client.query('ROLLBACK');
    });
  });

  // The version triggers are statement-level (migrations/postgres/008): a PUT of 100 associations is one statement and
  // runs the trigger function once per event it fires, not once per row (100 calls cost about 1.4 ms a PUT).
  test('PostgreSQL: a bulk upsert of 100 associations runs the zone version trigger once per event, not per row', { skip: requirePostgresOrSkip() }, async () => {
    await withMigratedClient(async (client) => {
      const r = createPostgresRepos(client, { preparedStatements: false });
      const account = 'c'.repeat(32);
      await r.tenancy.insertAccount({ id: account, name: 'trigger calls', createdAt: new Date() });
      const z = zone(3, account, 'example.org');
      await r.tenancy.insertZone(z);
      const c = cert(3, z.id, 'hostname');
      await r.aop.insertCertificate(c);
      const hosts = Array.from({ length: 100 }, (_, i) => `h${i}.example.org`);
      const calls = async (list: ReturnType<typeof assoc>[]) => {
        await client.query('BEGIN');
        await client.query("SET LOCAL track_functions = 'pl'");
        // The view may still hold counts of earlier transactions not yet flushed to the cumulative statistics.
        const count = async () =>
          (await client.query<{ calls: string }>(
            "SELECT coalesce(sum(calls), 0) AS calls FROM pg_stat_xact_user_functions WHERE funcname = 'bump_zone_data_version'",
          )).rows.map((x) => Number(x.calls))[0]!;
        const before = await count();
        await r.aop.upsertAssociations(list);
        const rows = [(await count()) - before];
        const { rows: v } = await client.query<{ version: string; tx: string }>(
          'SELECT version, txid_current() AS tx FROM zone_data_version WHERE zone_id = $1',
          [z.id],
        );
        await client.query('COMMIT');
        assert.equal(v[0]!.version, v[0]!.tx, 'the zone version is the writing transaction');
        return rows;
      };
      // 100 inserts: the INSERT statement trigger fires once (ON CONFLICT's UPDATE trigger fires too, with no rows).
      assert.deepEqual(await calls(hosts.map((h) => assoc(h, z.id, c.id))), [2]);
      // 100 updates through ON CONFLICT: the same two calls.
      assert.deepEqual(await calls(hosts.map((h) => assoc(h, z.id, c.id, { enabled: false }))), [2]);
    });
  });
});

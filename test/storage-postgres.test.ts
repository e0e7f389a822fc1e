/**
 * The storage contract against the PostgreSQL adapter (on a throw-away cluster), plus what only PostgreSQL has:
 * concurrent migrations, SERIALIZABLE retries, SKIP LOCKED work queues, surviving a database restart, and
 * independence from the database's collation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { AopCertificate } from '../src/domain/model.js';
import type { Store } from '../src/domain/ports.js';
import { StorageError } from '../src/storage/errors.js';
import { loadMigrations } from '../src/storage/migrate.js';
import { migratePostgres, openPostgresStore } from '../src/storage/postgres/store.js';
import { findPgBin, requirePostgresOrSkip, startCluster, testClusterUrl, testDatabaseUrl, type PgCluster } from './helpers/pg.js';
import { runStorageContract } from './storage/contract.js';

const T0 = new Date('2026-01-01T00:00:00.000Z');
const hex = (n: number) => n.toString(16).padStart(32, '0');
const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
const isKind = (kind: StorageError['kind']) => (e: unknown) => e instanceof StorageError && e.kind === kind;

function cert(n: number, zoneId: string, extra: Partial<AopCertificate> = {}): AopCertificate {
  return {
    id: uuid(n),
    zoneId,
    kind: 'hostname',
    certificate: `pem ${n}`,
    privateKeySealed: `sealed ${n}`,
    fingerprintSha256: `fp${n}`,
    issuer: 'Issuer',
    serialNumber: String(n),
    signature: 'SHA256WithRSA',
    expiresOn: new Date('2030-01-01T00:00:00.000Z'),
    uploadedOn: T0,
    updatedAt: T0,
    status: 'initializing',
    statusChangedAt: T0,
    version: 1,
    ...extra,
  };
}

/** A fresh migrated store holding account A and zone Z. */
async function storeWithZone(opts: { connectionString?: string } = {}): Promise<{ store: Store; zoneId: string }> {
  const store = await openPostgresStore({ connectionString: opts.connectionString ?? (await testDatabaseUrl()) });
  const zoneId = hex(10);
  await store.write(async (r) => {
    await r.tenancy.insertAccount({ id: hex(1), name: 'A', createdAt: T0 });
    await r.tenancy.insertZone({
      id: zoneId,
      name: 'example.com',
      accountId: hex(1),
      chinaNetwork: false,
      aopEnabled: false,
      status: 'active',
      createdAt: T0,
      modifiedAt: T0,
    });
  });
  return { store, zoneId };
}

const skip = requirePostgresOrSkip();

if (skip) {
  test('PostgreSQL storage', { skip }, () => undefined);
} else {
  runStorageContract('postgres', async () => openPostgresStore({ connectionString: await testDatabaseUrl() }));

  // The same contract on a database whose default collation is linguistic (ICU en-US with punctuation ignored, like
  // glibc's en_US: "a-b" sorts between "aa" and "ab"): the schema's COLLATE "C" keeps every ORDER BY identical to
  // SQLite's binary order. Skipped if the server was built without ICU.
  const icuUrl = await testDatabaseUrl({
    createOptions: "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US-u-ka-shifted' LOCALE 'C'",
  }).catch(() => null);
  if (icuUrl) {
    runStorageContract('postgres (ICU en-US database)', async () => openPostgresStore({ connectionString: icuUrl }));
  } else {
    test('postgres contract on an ICU en-US database', { skip: 'this PostgreSQL server was built without ICU' }, () => undefined);
  }

  describe('postgres specifics', () => {
    test('the ICU database really sorts differently from binary order (so the contract run above means something)', {
      skip: icuUrl ? false : 'no ICU',
    }, async () => {
      const c = new pg.Client({ connectionString: icuUrl! });
      await c.connect();
      try {
        const hostnames = ['ab.example.org', 'a.example.org', 'a-b.example.org', 'a0.example.org', 'aa.example.org', 'a_b.example.org'];
        const { rows } = await c.query<{ x: string }>('SELECT x FROM unnest($1::text[]) AS x ORDER BY x', [hostnames]);
        assert.notDeepEqual(rows.map((r) => r.x), [...hostnames].sort());
      } finally {
        await c.end();
      }
    });

    test('migrations: five nodes migrating one fresh database at once apply each file exactly once', async () => {
      const url = await testDatabaseUrl();
      const results = await Promise.all(Array.from({ length: 5 }, () => migratePostgres(url)));
      const names = loadMigrations('postgres').map((m) => m.name);
      assert.deepEqual(results.flat().sort(), names, 'every migration applied once in total');
      assert.equal(results.filter((r) => r.length > 0).length, 1, 'one node applied everything, the others found nothing to do');
      assert.deepEqual(await migratePostgres(url), [], 'idempotent');
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const { rows } = await c.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
        assert.deepEqual(rows.map((r) => r.name), names);
      } finally {
        await c.end();
      }
    });

    test('a version change committed by one node wakes the listeners of another (LISTEN/NOTIFY)', async () => {
      const url = await testDatabaseUrl();
      const a = await openPostgresStore({ connectionString: url });
      const b = await openPostgresStore({ connectionString: url });
      try {
        const woken = new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('node b was not woken within 5 s')), 5_000);
          const off = b.onConfigChange(() => {
            clearTimeout(t);
            off();
            resolve();
          });
        });
        // b's LISTEN connection opens asynchronously on the first subscription: give it a moment, then write on a.
        await new Promise((r) => setTimeout(r, 300));
        await a.write((r) => r.nextVersion());
        await woken;
      } finally {
        await a.close();
        await b.close();
      }
    });

    describe('one store', () => {
      let store: Store;
      let zoneId: string;
      before(async () => ({ store, zoneId } = await storeWithZone()));
      after(() => store.close());

      test('20 concurrent writes on the version row are retried transparently: 20 distinct, consecutive versions', async () => {
        const start = await store.read((r) => r.currentVersion());
        const versions = await Promise.all(Array.from({ length: 20 }, () => store.write((r) => r.nextVersion())));
        assert.equal(new Set(versions).size, 20);
        assert.deepEqual([...versions].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => start + 1 + i));
        assert.equal(await store.read((r) => r.currentVersion()), start + 20);
      });

      test('read-count-then-insert behind the aggregate lock: concurrent writers never exceed the limit', async () => {
        const LIMIT = 3;
        const attempts = 10;
        const outcomes = await Promise.allSettled(
          Array.from({ length: attempts }, (_, i) =>
            store.write(async (r) => {
              await r.locks.zone(zoneId); // what every domain write of a zone does first
              const n = await r.aop.countCertificates(zoneId, 'hostname', []);
              if (n >= LIMIT) throw new Error('limit reached');
              await sleep(5); // let the others read the same count
              await r.aop.insertCertificate(cert(100 + i, zoneId));
              return n;
            }),
          ),
        );
        const ok = outcomes.filter((o) => o.status === 'fulfilled');
        const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
        assert.equal(ok.length, LIMIT);
        for (const o of refused) assert.match(String(o.reason), /limit reached/);
        assert.equal(await store.read((r) => r.aop.countCertificates(zoneId, 'hostname', [])), LIMIT);
      });

      test('without the lock, READ COMMITTED lets read-count-then-insert overshoot (why the domain locks)', async () => {
        const other = hex(77);
        await store.write(async (r) => {
          await r.tenancy.insertZone({ ...(await r.tenancy.getZone(zoneId))!, id: other, name: 'unlocked.example' });
        });
        const outcomes = await Promise.allSettled(
          Array.from({ length: 6 }, (_, i) =>
            store.write(async (r) => {
              const n = await r.aop.countCertificates(other, 'hostname', []);
              if (n >= 1) throw new Error('limit reached');
              await sleep(20);
              await r.aop.insertCertificate(cert(300 + i, other));
            }),
          ),
        );
        assert.ok(outcomes.filter((o) => o.status === 'fulfilled').length > 1, 'the unlocked pattern overshoots');
      });

      test('tryZone: a zone locked by one transaction is not taken by another, and is free after commit', async () => {
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let locked!: () => void;
        const isLocked = new Promise<void>((r) => (locked = r));
        const holder = store.write(async (r) => {
          await r.locks.zone(zoneId);
          locked();
          await held;
        });
        await isLocked;
        assert.equal(await store.write((r) => r.locks.tryZone(zoneId)), false);
        release();
        await holder;
        assert.equal(await store.write((r) => r.locks.tryZone(zoneId)), true);
      });

      test('a unique violation is a StorageError conflict, and nothing of its transaction stays', async () => {
        const before = await store.read((r) => r.currentVersion());
        await assert.rejects(
          store.write(async (r) => {
            await r.nextVersion();
            await r.tenancy.insertAccount({ id: hex(1), name: 'again', createdAt: T0 });
          }),
          isKind('conflict'),
        );
        assert.equal(await store.read((r) => r.currentVersion()), before);
      });

      test('a failed statement swallowed by the write function still fails the write (no silent rollback)', async () => {
        await assert.rejects(
          store.write(async (r) => {
            await r.tenancy.insertAccount({ id: hex(1), name: 'dup', createdAt: T0 }).catch(() => undefined);
            return 'looks fine';
          }),
          isKind('conflict'),
        );
      });

      test('a read issued from inside a write function does not wait for that write (no self-deadlock)', async () => {
        const seen = await store.write(async (r) => {
          await r.tenancy.setMeta('inner', 'uncommitted');
          return store.read((rr) => rr.tenancy.getMeta('inner'));
        });
        assert.equal(seen, null, 'a read outside the transaction does not see its uncommitted write');
        assert.equal(await store.read((r) => r.tenancy.getMeta('inner')), 'uncommitted');
      });

      test('deployer queues: concurrent transactions get disjoint rows (FOR UPDATE SKIP LOCKED)', async () => {
        const ids = Array.from({ length: 6 }, (_, i) => 200 + i);
        await store.write(async (r) => {
          for (const n of ids) await r.aop.insertCertificate(cert(n, zoneId, { status: 'pending_deletion', statusChangedAt: new Date(T0.getTime() + n) }));
        });
        const now = new Date(T0.getTime() + 10_000);
        let listedA!: () => void;
        const aListed = new Promise<void>((res) => (listedA = res));
        let releaseA!: () => void;
        const aMayFinish = new Promise<void>((res) => (releaseA = res));
        const a = store.write(async (r) => {
          const rows = await r.aop.listCertificatesInStatus(['pending_deletion'], now, 3);
          listedA();
          await aMayFinish; // keep the row locks while B looks
          return rows.map((c) => c.id);
        });
        await aListed;
        const b = await store.write(async (r) => (await r.aop.listCertificatesInStatus(['pending_deletion'], now, 10)).map((c) => c.id));
        releaseA();
        const fromA = await a;
        assert.deepEqual(fromA, ids.slice(0, 3).map(uuid), 'A takes the oldest three');
        assert.deepEqual(b, ids.slice(3).map(uuid), 'B skips the rows A holds and takes the rest');
      });
    });

    test('two nodes draining one queue: every row is transitioned exactly once', async () => {
      const url = await testDatabaseUrl();
      const { store: node1, zoneId } = await storeWithZone({ connectionString: url });
      const node2 = await openPostgresStore({ connectionString: url });
      try {
        const count = 40;
        await node1.write(async (r) => {
          for (let i = 0; i < count; i++) await r.aop.insertCertificate(cert(300 + i, zoneId, { statusChangedAt: new Date(T0.getTime() + i) }));
        });
        const now = new Date(T0.getTime() + 60_000);
        // What the deployer does per pass: take a batch of in-flight rows, move each on, record the transition.
        const pass = (node: Store) =>
          node.write(async (r) => {
            const batch = await r.aop.listCertificatesInStatus(['initializing'], now, 5);
            for (const c of batch) {
              await r.aop.updateCertificate({ ...c, status: 'pending_deployment', statusChangedAt: now });
              await r.events.record([{ subjectKind: 'aop_certificate', subjectId: c.id, fromStatus: 'initializing', toStatus: 'pending_deployment', version: 1, at: now }]);
            }
            return batch.length;
          });
        const drain = async (node: Store) => {
          for (let i = 0; i < 50 && (await pass(node)) > 0; i++);
        };
        await Promise.all([drain(node1), drain(node2), drain(node1), drain(node2)]);
        await node1.read(async (r) => {
          assert.equal(await r.aop.countCertificates(zoneId, 'hostname', ['pending_deployment']), 0, 'nothing left behind');
          for (let i = 0; i < count; i++) {
            assert.equal((await r.events.listForSubject('aop_certificate', uuid(300 + i))).length, 1, `one transition for ${i}`);
          }
        });
      } finally {
        await node1.close();
        await node2.close();
      }
    });

    test('database down: reads and writes fail fast as unavailable; after a restart the same store works again', {
      skip: findPgBin() ? false : 'needs the server binaries to stop and start a cluster of its own',
      timeout: 45_000,
    }, async () => {
      const cluster: PgCluster = await startCluster();
      const idleErrors: Error[] = [];
      let store: Store | undefined;
      try {
        const url = await testDatabaseUrl({ adminUrl: cluster.url });
        store = await openPostgresStore({ connectionString: url, connectionTimeoutMillis: 2000, onIdleError: (e) => idleErrors.push(e) });
        const s = store;
        await s.write((r) => r.tenancy.insertAccount({ id: hex(1), name: 'before', createdAt: T0 }));
        // Several idle connections in the pool, which the shutdown will kill.
        await Promise.all(Array.from({ length: 4 }, () => s.read((r) => r.tenancy.getAccount(hex(1)))));
        // And a write transaction open while the server goes away.
        let release!: () => void;
        const gate = new Promise<void>((res) => (release = res));
        const open = s.write(async (r) => {
          await r.tenancy.insertAccount({ id: hex(2), name: 'in flight', createdAt: T0 });
          await gate;
          await r.tenancy.insertAccount({ id: hex(3), name: 'after shutdown', createdAt: T0 });
        });
        const openOutcome = open.then(
          () => 'committed',
          (e: unknown) => e,
        );
        await sleep(50);

        await cluster.stop({ keepData: true });
        release();
        assert.ok(isKind('unavailable')(await openOutcome), 'the open transaction fails as unavailable');

        const t0 = Date.now();
        await assert.rejects(s.read((r) => r.tenancy.getAccount(hex(1))), isKind('unavailable'));
        await assert.rejects(s.write((r) => r.nextVersion()), isKind('unavailable'));
        assert.ok(Date.now() - t0 < 10_000, `failed fast (${Date.now() - t0} ms)`);

        await cluster.start();
        assert.equal((await s.read((r) => r.tenancy.getAccount(hex(1))))?.name, 'before');
        await s.write((r) => r.tenancy.insertAccount({ id: hex(4), name: 'after restart', createdAt: T0 }));
        assert.equal((await s.read((r) => r.tenancy.getAccount(hex(4))))?.name, 'after restart');
        assert.equal(await s.read((r) => r.tenancy.getAccount(hex(2))), null, 'the interrupted transaction left nothing');
        assert.ok(idleErrors.length > 0, 'idle connections killed by the shutdown were reported, not thrown');
      } finally {
        await store?.close();
        await cluster.stop();
      }
    });

    test('a table altered under prepared statements (another node migrating) costs a reconnect, not an error', async () => {
      const url = await testDatabaseUrl();
      const { store } = await storeWithZone({ connectionString: url });
      try {
        const get = () => store.read((r) => r.tenancy.getAccount(hex(1)));
        const getInWrite = () => store.write((r) => r.tenancy.getAccount(hex(1)));
        // Prepare `SELECT * FROM accounts` on several pooled connections.
        await Promise.all([get(), get(), get(), getInWrite(), getInWrite()]);
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        await c.query('ALTER TABLE accounts ADD COLUMN note text');
        await c.end();
        const results = await Promise.all([get(), get(), get(), getInWrite(), getInWrite(), get()]);
        for (const a of results) assert.equal(a?.name, 'A');
      } finally {
        await store.close();
      }
    });

    test('connection failure at open time is StorageError unavailable', async () => {
      const admin = new URL(await testClusterUrl());
      admin.host = '127.0.0.1:1'; // nothing listens on port 1
      await assert.rejects(openPostgresStore({ connectionString: admin.toString() }), isKind('unavailable'));
    });
  });
}

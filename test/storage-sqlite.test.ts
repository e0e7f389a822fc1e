/** The storage contract against the SQLite adapter on a real file, plus SQLite-specific checks. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { migrateSqlite, openSqliteStore } from '../src/storage/sqlite/store.js';
import { runStorageContract } from './storage/contract.js';

const dir = mkdtempSync(join(tmpdir(), 'certplane-storage-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

runStorageContract('sqlite (file)', async () => openSqliteStore({ path: join(dir, `contract-${++n}.db`) }));

test('sqlite migrations are idempotent and recorded', () => {
  const path = join(dir, 'migrate.db');
  const db = new Database(path);
  const first = migrateSqlite(db);
  assert.ok(first.length >= 1);
  assert.deepEqual(migrateSqlite(db), [], 'a second run applies nothing');
  const rows = db.prepare('SELECT name FROM schema_migrations ORDER BY name').all() as { name: string }[];
  assert.deepEqual(rows.map((r) => r.name), first);
  db.close();
});

test('sqlite store runs in WAL mode', async () => {
  const store = openSqliteStore({ path: join(dir, 'pragmas.db') });
  await store.close();
  const db = new Database(join(dir, 'pragmas.db'));
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  db.close();
});

test('group commit: writes asked for together share one transaction, and each is answered only once it is committed', async () => {
  const path = join(dir, 'group-commit.db');
  const store = openSqliteStore({ path });
  // Another connection to the same file, as the CLI or a second process would have: it sees committed rows only.
  const other = new Database(path, { readonly: true });
  try {
    const seenByOther = (id: string) => other.prepare('SELECT count(*) AS n FROM accounts WHERE id = ?').pluck().get(id) === 1;
    const id = (i: number) => i.toString(16).padStart(32, '0');
    const duringWrite: boolean[] = [];
    const answeredBeforeCommit: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store
          .write(async (r) => {
            // The first write of the batch is not committed yet while the later ones run.
            if (i > 0) duringWrite.push(seenByOther(id(0)));
            await r.tenancy.insertAccount({ id: id(i), name: `g${i}`, createdAt: new Date(0) });
          })
          .then(() => {
            if (!seenByOther(id(i))) answeredBeforeCommit.push(i);
          }),
      ),
    );
    assert.deepEqual(duringWrite, Array(19).fill(false), 'the 20 writes ran in one transaction');
    assert.deepEqual(answeredBeforeCommit, [], 'no write was answered before its commit');
    for (let i = 0; i < 20; i++) assert.ok(seenByOther(id(i)));
  } finally {
    other.close();
    await store.close();
  }
});

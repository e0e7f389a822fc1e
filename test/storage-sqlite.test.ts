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

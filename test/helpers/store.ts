/**
 * Which database a test run uses. The runner (scripts/run-tests.mjs) runs the API suites twice: on SQLite, and with
 * CERTPLANE_TEST_STORE=postgres on a throw-away PostgreSQL cluster it starts itself. Tests ask this module for
 * their database so the same test code covers both.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Store } from '../../src/domain/ports.js';
import { openPostgresStore } from '../../src/storage/postgres/store.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import { findPgBin, testDatabaseUrl } from './pg.js';

export const storeKind: 'sqlite' | 'postgres' = process.env.CERTPLANE_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';
export const onPostgres = storeKind === 'postgres';

/** One PostgreSQL database per data directory, so a restarted server finds its data again. */
const urls = new Map<string, string>();

/** Environment that points a server with this data directory at its database (empty on SQLite). */
export async function databaseEnv(dataDir: string): Promise<Record<string, string>> {
  if (!onPostgres) return {};
  const url = urls.get(dataDir) ?? (await testDatabaseUrl());
  urls.set(dataDir, url);
  return { CERTPLANE_DATABASE_URL: url };
}

async function databaseUrl(dataDir: string): Promise<string> {
  const url = (await databaseEnv(dataDir)).CERTPLANE_DATABASE_URL;
  if (!url) throw new Error('not a PostgreSQL run');
  return url;
}

/** A fresh store of this run's kind (for unit-level tests of the domain against real storage). */
export async function openTestStore(dataDir: string): Promise<Store> {
  if (onPostgres) return openPostgresStore({ connectionString: await databaseUrl(dataDir) });
  return openSqliteStore({ path: join(dataDir, 'certplane.db') });
}

/**
 * Everything the database holds, as text, for "no secret is stored in plaintext" checks: the raw bytes of the SQLite
 * file and its WAL, or a data dump of the PostgreSQL database.
 */
export async function storedText(dataDir: string): Promise<string> {
  if (!onPostgres) {
    return ['certplane.db', 'certplane.db-wal']
      .map((f) => join(dataDir, f))
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f).toString('latin1'))
      .join('\n');
  }
  const url = await databaseUrl(dataDir);
  const bin = findPgBin();
  if (!bin) throw new Error('pg_dump not found');
  const r = spawnSync(join(bin, 'pg_dump'), ['--data-only', '--no-owner', url], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`pg_dump failed: ${r.stderr}`);
  return r.stdout;
}

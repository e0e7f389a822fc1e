/**
 * A digest of everything the database stores, table by table, read over a connection of its own (not through the
 * server's store): one query per table, ordered by its primary key. Two digests that differ name the tables that
 * changed, so "a rejected request wrote nothing" is checked against the whole database, not the rows a test
 * thought of.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import pg from 'pg';

export type Digest = Map<string, { rows: number; hash: string }>;

export interface DatabaseDigester {
  digest(): Promise<Digest>;
  close(): Promise<void>;
}

const hashRows = (rows: unknown[]): string =>
  createHash('sha256')
    .update(
      JSON.stringify(rows, (_k, v) =>
        typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? `bytes:${Buffer.from(v).toString('hex')}` : v,
      ),
    )
    .digest('hex');

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

export function sqliteDigester(path: string): DatabaseDigester {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).all() as { name: string }[]).map(
    (t) => {
      const cols = db.prepare(`PRAGMA table_info(${quote(t.name)})`).all() as { name: string; pk: number }[];
      const pk = cols.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => quote(c.name));
      // Without a declared key, every column (a table with duplicate rows would still compare as a multiset).
      const order = pk.length > 0 ? pk : cols.map((c) => quote(c.name));
      return { name: t.name, select: db.prepare(`SELECT * FROM ${quote(t.name)} ORDER BY ${order.join(', ')}`) };
    },
  );
  return {
    async digest() {
      const out: Digest = new Map();
      // One read transaction: the tables are seen at one instant.
      db.transaction(() => {
        for (const t of tables) {
          const rows = t.select.raw().all();
          out.set(t.name, { rows: rows.length, hash: hashRows(rows) });
        }
      })();
      return out;
    },
    async close() {
      db.close();
    },
  };
}

export async function postgresDigester(url: string): Promise<DatabaseDigester> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  // Values as the server sent them (text), so a digest does not depend on how the driver maps types.
  const asText = { getTypeParser: () => (v: string) => v };
  let tables: { name: string; sql: string }[];
  try {
    tables = (
      await client.query<{ name: string; pk: string[] | null; cols: string[] }>(`
        SELECT c.relname::text AS name,
               (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
                  FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                 WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
               (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS cols
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()
         ORDER BY c.relname`)
    ).rows.map((t) => ({
      name: t.name,
      sql: `SELECT * FROM ${quote(t.name)} ORDER BY ${(t.pk ?? t.cols).map(quote).join(', ')}`,
    }));
  } catch (err) {
    await client.end();
    throw err;
  }
  return {
    async digest() {
      const out: Digest = new Map();
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        for (const t of tables) {
          const r = await client.query({ text: t.sql, rowMode: 'array', types: asText });
          out.set(t.name, { rows: r.rows.length, hash: hashRows(r.rows) });
        }
      } finally {
        await client.query('COMMIT');
      }
      return out;
    },
    async close() {
      await client.end();
    },
  };
}

/** Tables whose contents differ between two digests ("" when none). */
export function changedTables(before: Digest, after: Digest): string {
  const names = new Set([...before.keys(), ...after.keys()]);
  return [...names]
    .filter((n) => before.get(n)?.hash !== after.get(n)?.hash)
    .map((n) => `${n} (${before.get(n)?.rows ?? 'absent'} → ${after.get(n)?.rows ?? 'absent'} rows)`)
    .join(', ');
}

// What a savepoint costs an SQLite write, with the sub-journal in a temporary file (temp_store DEFAULT) and in memory
// (temp_store MEMORY, what src/storage/sqlite/store.ts sets). Group commit runs each write of a batch in a savepoint;
// this is the measurement behind that pragma. Run: node bench/sqlite-savepoint.mjs [rounds]
// Each figure is reported as a ratio to the plain transaction measured in the same run (the machines are noisy).
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const rounds = Number(process.argv[2] ?? 300);
const dir = mkdtempSync(join(tmpdir(), 'certplane-sp-'));

function measure(tempStore, savepoint) {
  const db = new Database(join(dir, `${tempStore}-${savepoint}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma(`temp_store = ${tempStore}`);
  db.exec(`CREATE TABLE a (zone TEXT, hostname TEXT, cert TEXT, enabled INTEGER, status TEXT, updated TEXT,
    PRIMARY KEY (zone, hostname)); CREATE INDEX a_cert ON a (cert); CREATE INDEX a_status ON a (zone, status)`);
  const up = db.prepare(`INSERT INTO a VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (zone, hostname)
    DO UPDATE SET cert = excluded.cert, enabled = excluded.enabled, status = excluded.status, updated = excluded.updated`);
  // 100,000 rows first, so that a PUT of 100 hostnames changes pages that existed before its savepoint: those are
  // what a sub-journal holds, and past 64 KiB (SQLITE_STMTJRNL_SPILL) SQLite writes it to a temporary file.
  db.transaction(() => {
    for (let i = 0; i < 100_000; i++) up.run(`z${i % 1000}`, `h${i}.example.com`, `c${i % 10}`, 1, 'active', '0');
  })();
  const put100 = (r) => {
    for (let i = 0; i < 100; i++) {
      const n = (r * 7919 + i * 104_729) % 100_000; // spread over the table, as a zone's hostnames are over its pages
      up.run(`z${n % 1000}`, `h${n}.example.com`, `c${r % 10}`, r & 1, 'pending_deployment', String(r));
    }
  };
  const times = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    db.exec('BEGIN IMMEDIATE');
    if (savepoint) db.exec('SAVEPOINT w');
    put100(r);
    if (savepoint) db.exec('RELEASE w');
    db.exec('COMMIT');
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  db.close();
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)];
}

const rows = [];
for (const tempStore of ['DEFAULT', 'MEMORY']) {
  for (const savepoint of [false, true]) rows.push({ tempStore, savepoint, p50Us: measure(tempStore, savepoint) });
}
rmSync(dir, { recursive: true, force: true });
const base = rows[0].p50Us;
console.log('| temp_store | write | p50 of 100 upserts in one transaction | vs plain, DEFAULT |\n|---|---|---:|---:|');
for (const r of rows) console.log(`| ${r.tempStore} | ${r.savepoint ? 'in a savepoint' : 'plain'} | ${Math.round(r.p50Us)} µs | ${(r.p50Us / base).toFixed(2)} |`);

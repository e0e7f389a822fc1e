/**
 * The whole run, scanned: no response any test received, no log line of any server or child process a test started,
 * and no database file (every SQLite file the helpers' servers left, and a data dump of every database of the
 * PostgreSQL test cluster) carries a private key or a credential. See test/helpers/scan-record.ts (what is recorded) and
 * test/helpers/secret-scan.ts (how it is searched).
 *
 * scripts/run-tests.mjs runs this file last, in the same `node --test` run as every other file, so its result is in
 * the run's closing summary. It first waits until every other test process has exited and flushed its recordings.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { findPgBin } from './helpers/pg.js';
import { SCAN_DIR_ENV } from './helpers/scan-record.js';
import { formatFinding, scanDirectory } from './helpers/secret-scan.js';

const execFileP = promisify(execFile);
const dir = process.env[SCAN_DIR_ENV];
const expected = Number(process.env.CERTPLANE_TEST_SCAN_FILES ?? NaN);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Waits until `expected` other test processes have started and each has exited (polls; no timed assertion). */
async function otherTestProcesses(scanDir: string): Promise<{ done: string[]; vanished: string[] }> {
  const proc = join(scanDir, 'proc');
  const until = Date.now() + 30 * 60_000;
  for (;;) {
    const names = readdirSync(proc);
    const started = names.filter((n) => n.endsWith('.start') && n !== `${process.pid}.start`).map((n) => Number(n.slice(0, -6)));
    const pending = started.filter((pid) => !names.includes(`${pid}.done`));
    if (started.length >= expected && pending.every((pid) => !alive(pid))) {
      const src = (pid: number, ext: string) => readFileSync(join(proc, `${pid}.${ext}`), 'utf8');
      return { done: started.filter((p) => !pending.includes(p)).map((p) => src(p, 'done')), vanished: pending.map((p) => src(p, 'start')) };
    }
    assert.ok(Date.now() < until, `only ${started.length} of ${expected} test processes started, ${pending.length} still running`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Every database of the shared PostgreSQL test cluster, each as a data-only dump (four pg_dump at a time). */
async function dumpPostgres(scanDir: string): Promise<string[]> {
  const url = process.env.CERTPLANE_TEST_PG_URL;
  const bin = findPgBin();
  if (!url || !bin) return [];
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const names = (await client.query<{ datname: string }>("SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1")).rows.map(
    (r) => r.datname,
  );
  await client.end();
  mkdirSync(join(scanDir, 'pg'), { recursive: true });
  const files: string[] = [];
  const next = [...names];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let name = next.shift(); name !== undefined; name = next.shift()) {
        const db = new URL(url);
        db.pathname = `/${name}`;
        const file = join(scanDir, 'pg', `${name}.sql`);
        await execFileP(join(bin, 'pg_dump'), ['--data-only', '--no-owner', `--file=${file}`, db.toString()]);
        files.push(file);
      }
    }),
  );
  return files.sort();
}

test('the whole run: no response, log line or database file carries a private key or a credential', async (t) => {
  assert.ok(dir && Number.isInteger(expected), `run this file through scripts/run-tests.mjs (it sets ${SCAN_DIR_ENV})`);
  const { done, vanished } = await otherTestProcesses(dir);
  assert.deepEqual(vanished, [], 'test processes that ended without flushing their recordings (killed?)');

  const started = Date.now();
  const dumps = await dumpPostgres(dir);
  const dumped = Date.now();
  const pgLog = process.env.CERTPLANE_TEST_PG_LOG;
  const { findings, figures } = scanDirectory({
    dir,
    exclude: [`${process.pid}.jsonl`],
    logFiles: pgLog ? [pgLog] : [],
    databaseFiles: dumps,
  });
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  t.diagnostic(
    `secrets scan: ${done.length} test processes; ${figures.files} files, ${mb(figures.bytes)}: ` +
      `${figures.responses} responses, ${figures.logLines} log lines (${figures.logRecords} records), ` +
      `${figures.databaseFiles} database files and dumps (${mb(figures.databaseBytes)}; ${dumps.length} PostgreSQL databases); ` +
      `looked for ${figures.privateKeys} private keys and ${figures.credentials} credentials (${figures.windows} windows); ` +
      `dump ${((dumped - started) / 1000).toFixed(1)} s, scan ${((Date.now() - dumped) / 1000).toFixed(1)} s`,
  );
  assert.deepEqual(findings.map(formatFinding), [], 'secret material found (the secret itself is not shown)');
});

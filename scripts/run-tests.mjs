#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) in one `node --test` run, twice for the API suites: once on
// SQLite and once on PostgreSQL (a throw-away cluster this script starts on a loopback port and removes afterwards).
// Node 20's runner does not expand globs itself, and pointing it at the directory would also load the helpers, so
// the files are listed here.
//
//   npm test                      every suite, SQLite and PostgreSQL
//   npm test -- aop access        only files whose path contains one of the words
//   CERTPLANE_REQUIRE_POSTGRES=1  fail (instead of skipping loudly) when no PostgreSQL server binaries exist
//   CERTPLANE_TEST_KEEP_SCAN_DIR=1  keep the whole-run scan's recordings (they hold the run's test keys and tokens)
//
// The whole-run secrets scan: every test process loads dist/test/helpers/scan-record.js (`--import`), which records
// what it receives and what its servers log into a scan directory, and secrets-whole-run.test.js, run last in the
// same run (so the closing summary counts it), scans all of it, the SQLite files and a dump of the PostgreSQL
// cluster for every private key and credential the run used.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';

const root = 'dist/test';
const only = process.argv.slice(2);
/** Suites that do not touch the API or a database, and the storage suites that pick their database themselves. */
const STORE_NEUTRAL = ['pki.test.js', 'pki-keys.test.js', 'pki-x509.test.js', 'vault.test.js', 'time.test.js', 'query-plans.test.js', 'hostnames.test.js', 'reference.test.js', 'storage-sqlite.test.js', 'storage-postgres.test.js', 'multinode.test.js', 'pg-restart.test.js', 'copy.test.js', 'edge-node.test.js', 'edge-haproxy.test.js', 'secrets-scanner.test.js'];

const WHOLE_RUN_SCAN = 'secrets-whole-run.test.js';
const files = readdirSync(root, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.test.js') && !f.startsWith('postgres/') && f !== WHOLE_RUN_SCAN)
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/test (did the build run?)');
  process.exit(1);
}

const { findPgBin, startCluster } = await import(join(process.cwd(), root, 'helpers/pg.js'));
let cluster = null;
const env = { ...process.env };
if (findPgBin()) {
  cluster = await startCluster();
  env.CERTPLANE_TEST_PG_URL = cluster.url;
  console.log(`run-tests: PostgreSQL test cluster on ${cluster.url.replace(/\/\/[^@]*@/, '//')}`);
} else if (process.env.CERTPLANE_REQUIRE_POSTGRES === '1') {
  console.error('run-tests: PostgreSQL server binaries (initdb, pg_ctl) not found and CERTPLANE_REQUIRE_POSTGRES=1');
  process.exit(1);
} else {
  const bar = '!'.repeat(100);
  console.error(`${bar}\nrun-tests: PostgreSQL server binaries (initdb, pg_ctl) NOT FOUND: every PostgreSQL suite is SKIPPED.\n` +
    `Install PostgreSQL (Debian: apt-get install postgresql) or set CERTPLANE_PG_BIN to its bin directory.\n${bar}`);
}

// The API suites again, on PostgreSQL: a wrapper per file selects the store before loading it.
const pgDir = join(root, 'postgres');
rmSync(pgDir, { recursive: true, force: true });
const pgFiles = [];
if (cluster) {
  mkdirSync(pgDir, { recursive: true });
  for (const f of files.filter((f) => !STORE_NEUTRAL.some((n) => f.endsWith(n)))) {
    const wrapper = join(pgDir, f.replace(/\//g, '__'));
    writeFileSync(wrapper, `process.env.CERTPLANE_TEST_STORE = 'postgres';\nawait import(${JSON.stringify(`../${f}`)});\n`);
    pgFiles.push(wrapper);
  }
}

const scanDir = mkdtempSync(join(tmpdir(), 'certplane-scan-'));
env.CERTPLANE_TEST_SCAN_DIR = scanDir;
env.CERTPLANE_TEST_SCAN_FILES = String(files.length + pgFiles.length);
if (cluster) env.CERTPLANE_TEST_PG_LOG = join(cluster.dir, 'postgres.log');
const recorder = pathToFileURL(resolve(root, 'helpers/scan-record.js')).href;
const testFiles = [...files.map((f) => join(root, f)), ...pgFiles, join(root, WHOLE_RUN_SCAN)];
const child = spawn(process.execPath, ['--import', recorder, '--test', '--test-concurrency=2', ...testFiles], {
  stdio: 'inherit',
  env,
});
const code = await new Promise((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
if (cluster) await cluster.stop();
if (process.env.CERTPLANE_TEST_KEEP_SCAN_DIR === '1') console.log(`run-tests: the scan's recordings are in ${scanDir}`);
else rmSync(scanDir, { recursive: true, force: true });
process.exit(code);

#!/usr/bin/env node
// Soak: `npm run soak` (about 3 minutes) or `npm run soak -- --quick` (about 30 s). Not part of `npm test`.
// See docs/reliability.md, section "Soak: load with a PostgreSQL restart".
//
// Starts a throw-away PostgreSQL cluster on loopback (test/helpers/pg.ts), several `certplane serve` nodes on one
// database, and many clients sending requests to the nodes in turn: the crash test's write workload
// (test/helpers/workload.ts: bulk PUTs of 60 hostnames, hostname certificate uploads and deletes, Access CA
// creations, updates and deletes, settings PUTs) plus readers. Partway through, PostgreSQL is restarted once (a
// fast shutdown, a pause, a start: what an operator's restart or a failover looks like to the nodes). While it is
// down every request must get the 503 "temporarily unavailable" envelope, never a hang or another 5xx; those are
// counted separately, and a write answered 503 may or may not have happened. Afterwards the deployer finishes, and
// everything is checked: every acknowledged write is present with its acknowledged content, no refused write and no
// half of a bulk PUT is, the limits and one association per hostname hold, and every lifecycle transition of
// everything written happened exactly once, in order. Prints a summary; exits 1 on any violation.
//
// The cluster runs with fsync and synchronous_commit off (test settings): a crash of PostgreSQL itself would lose
// acknowledged commits by configuration, so the restart is a clean one. Killing certplane is the crash test's job.
//
// Options: --duration <s> (180; --quick: 30), --nodes <n> (3), --readers <n> (12), --outage <s> (how long PostgreSQL
// stays down, 3), --seed <n> (replays the clients' choices), --dist <dir> (the build to run; npm run soak makes one).
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name, def) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : def);
const quick = flag('--quick');
const opts = {
  durationS: Number(value('--duration', quick ? 30 : 180)),
  nodes: Number(value('--nodes', 3)),
  readers: Number(value('--readers', 12)),
  outageS: Number(value('--outage', 3)),
  seed: value('--seed', null),
};
for (const [k, v] of Object.entries(opts)) {
  if (k !== 'seed' && !(Number.isFinite(v) && v > 0)) {
    process.stderr.write(`soak: --${k.replace(/S$/, '')} must be a positive number\n`);
    process.exit(2);
  }
}
const distDir = resolve(process.cwd(), value('--dist', join(root, '.soak-dist')));
if (!existsSync(join(distDir, 'test/helpers/workload.js'))) {
  process.stderr.write(`soak: no build at ${distDir} (run npm run soak, which compiles src/ and test/ first)\n`);
  process.exit(2);
}
const lib = (p) => import(pathToFileURL(join(distDir, p)).href);
const { startCluster, testDatabaseUrl } = await lib('test/helpers/pg.js');
const { startProcess, tempDataDir } = await lib('test/helpers/process.js');
const { Workload, formatCounts, seedFrom } = await lib('test/helpers/workload.js');
const { openPostgresStore } = await lib('src/storage/postgres/store.js');

const seed = opts.seed !== null ? Number(opts.seed) >>> 0 : seedFrom('CERTPLANE_SOAK_SEED');
const TOKEN = 'SoakSoakSoakSoakSoakSoakSoakSoakSoakSoak'; // 40 characters: this throw-away installation's token
const started = Date.now();
const log = (msg) => process.stderr.write(`[soak ${Math.round((Date.now() - started) / 1000)}s] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const nodes = [];
const dirs = [];
let cluster;
let workload;
async function cleanup() {
  const stopping = workload?.stop();
  await Promise.all(nodes.map((n) => n.stop('SIGTERM')));
  await stopping;
  await cluster?.stop().catch((e) => log(`stopping PostgreSQL: ${e.message}`));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
process.on('exit', () => {
  for (const n of nodes) if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}

let exitCode = 1;
try {
  log(`seed ${seed} (--seed ${seed} replays the clients' choices); ${opts.durationS} s, ${opts.nodes} nodes, PostgreSQL down for ${opts.outageS} s once`);
  cluster = await startCluster();
  const url = await testDatabaseUrl({ adminUrl: cluster.url });
  const env = {
    CERTPLANE_DATABASE_URL: url,
    CERTPLANE_MASTER_KEY: randomBytes(32).toString('hex'),
    CERTPLANE_BOOTSTRAP_TOKEN: TOKEN,
    CERTPLANE_DEPLOY_DELAY_MS: '200',
    CERTPLANE_DELETE_DELAY_MS: '200',
    CERTPLANE_DEPLOYER_INTERVAL_MS: '100',
    CERTPLANE_DATABASE_POOL_MAX: '8',
  };
  for (let i = 0; i < opts.nodes; i++) dirs.push(tempDataDir());
  nodes.push(...(await Promise.all(dirs.map((dir) => startProcess({ dir, env })))));
  const banner = nodes.find((n) => n.banner)?.banner;
  if (!banner) throw new Error('no node printed the bootstrap banner');
  log(`nodes on ${nodes.map((n) => n.port).join(', ')}; PostgreSQL on ${cluster.port}`);

  // 503s are expected for requests in flight at some moment between PostgreSQL's stop and every node having answered a
  // request with success again.
  const outage = { from: Infinity, to: Infinity };
  const tally = { during: {}, elsewhere: {} };
  let next = 0;
  workload = new Workload({
    token: TOKEN,
    zoneId: banner.zoneId,
    zoneName: banner.zoneName,
    accountId: banner.accountId,
    seed,
    target: () => nodes[next++ % nodes.length].baseUrl,
    groups: 4,
    groupSize: 60,
    bulkClients: 4,
    certClients: 3,
    accessClients: 2,
    readers: opts.readers,
    pauseMs: 10,
    tolerate503: true,
    onAnswer: ({ status, sentAt }) => {
      // In flight at any moment of the outage: sent before its end, answered after its start.
      const bucket = sentAt <= outage.to && performance.now() >= outage.from ? tally.during : tally.elsewhere;
      const key = status === 0 ? 'no answer' : String(status);
      bucket[key] = (bucket[key] ?? 0) + 1;
    },
  });
  await workload.init();
  const clients = 4 + 3 + 2 + 2 + opts.readers;
  log(`${clients} clients start`);
  const t0 = performance.now();
  workload.start();

  const endAt = Date.now() + opts.durationS * 1000;
  const outageAt = Date.now() + Math.min(opts.durationS * 400, Math.max(1000, opts.durationS * 1000 - (opts.outageS + 10) * 1000));
  const progress = setInterval(() => {
    const f = workload.figures;
    log(`${f.requests} requests (${f.writes} writes: ${f.acked} acknowledged, ${f.refused} refused, ${f.unknown} unknown); ${formatCounts(f.byStatus)}`);
  }, quick ? 5000 : 15000);
  await sleep(Math.max(0, outageAt - Date.now()));

  log('stopping PostgreSQL');
  outage.from = performance.now();
  await cluster.stop({ keepData: true });
  await sleep(opts.outageS * 1000);
  log('starting PostgreSQL');
  await cluster.start();
  // Every node serves again without a restart of its own (a bounded wait: a node that never recovers is a failure).
  const healed = await Promise.all(
    nodes.map(async (n) => {
      const until = Date.now() + 60_000;
      while (Date.now() < until) {
        const res = await fetch(`${n.baseUrl}/zones/${banner.zoneId}/origin_tls_client_auth/settings`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        }).catch(() => null);
        if (res?.status === 200) return true;
        await sleep(50);
      }
      return false;
    }),
  );
  outage.to = performance.now();
  const downS = (outage.to - outage.from) / 1000;
  log(`PostgreSQL back; every node answered with success ${downS.toFixed(1)} s after the stop began`);
  healed.forEach((ok, i) => ok || workload.problems.push(`node ${i} did not serve again within 60 s of PostgreSQL's return`));

  await sleep(Math.max(0, endAt - Date.now()));
  await workload.stop();
  clearInterval(progress);
  const loadS = (performance.now() - t0) / 1000;
  log('load stopped; waiting for the deployer, then checking everything');

  await workload.waitQuiet(120_000);
  await workload.verify();
  const store = await openPostgresStore({ connectionString: url });
  let events;
  try {
    events = await workload.checkLifecycle(store);
  } finally {
    await store.close();
  }
  const fiveXXelsewhere = Object.entries(tally.elsewhere).filter(([k]) => Number(k) >= 500);
  for (const [k, n] of fiveXXelsewhere) workload.problems.push(`${n} answers ${k} outside PostgreSQL's outage`);

  const f = workload.figures;
  const line = (label, v) => process.stdout.write(`  ${label.padEnd(34)} ${v}\n`);
  process.stdout.write(`\nsoak summary (seed ${seed})\n`);
  line('duration', `${loadS.toFixed(1)} s of load, ${opts.nodes} nodes, ${clients} clients`);
  line('requests', `${f.requests} (${f.reads} reads, ${f.writes} writes), ${(f.requests / loadS).toFixed(0)}/s`);
  line('PostgreSQL outage', `${downS.toFixed(1)} s from stop to every node serving again (down ${opts.outageS} s)`);
  line('answers during the outage', formatCounts(tally.during) || 'none');
  line('answers at other times', formatCounts(tally.elsewhere));
  line('answers by code', formatCounts(f.byStatus));
  line('writes', `${f.acked} acknowledged, ${f.refused} refused (4xx), ${f.unknown} unknown (503), ${f.unknownApplied} of those applied`);
  line('acknowledged writes verified', `${f.verified} (${f.verifiedExact} registers hold an acknowledged write's exact content)`);
  line('lifecycle transitions checked', events);
  line('peaks (limit)', `${f.peak.hostnameCertificates} (10) hostname certificates, ${f.peak.associationsPerCertificate} (100) associations on one certificate, ${f.peak.accessCertificates} (50) Access CAs`);
  line('violations', workload.problems.length);
  for (const p of workload.problems) process.stdout.write(`    - ${p}\n`);
  exitCode = workload.problems.length === 0 && f.verified === f.acked ? 0 : 1;
  if (f.verified !== f.acked) process.stdout.write(`    - ${f.acked - f.verified} acknowledged writes were not verified\n`);
} catch (err) {
  process.stderr.write(`soak: ${err?.stack ?? err}\n`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.stdout.write(exitCode === 0 ? 'soak: OK\n' : 'soak: FAILED\n');
process.exit(exitCode);

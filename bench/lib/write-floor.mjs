// What the storage layer can write at all, before any HTTP or domain code: `node bench/lib/write-floor.mjs <job.json>`
// runs the database writes of the benchmark's PUTs of 100 (`put100`) and nothing else: the same 100-row
// `upsertAssociations` of the zone's blocks in the same order (block b disabled, later enabled again), each in a
// `store.write` of its own, through certplane's own store (same pragmas, statements, write queue and group commit on
// SQLite, pool on PostgreSQL), opened with the server's configuration. No zone lock, no validation, no version bump,
// no events, no reads, no answer, no deployer: a lower bound on what a PUT of 100 costs. Two runs of `seconds` each:
// one writer (the cost of one PUT's writes), then `concurrency` writers at once (what the wrk scenario's 50
// connections ask of the database; the latency of each write counts its wait in the queue). Prints JSON.
// Afterwards every association it touched is written back as it was, so the server measured next sees the seeded data.
import { readFileSync } from 'node:fs';
import { serverEnv } from './api-env.mjs';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { openStore } = await import(new URL('src/main.js', job.distUrl).href);
const { loadConfig } = await import(new URL('src/config.js', job.distUrl).href);

const BLOCK = 100;
const store = await openStore(loadConfig(serverEnv(job.db, job.dataDir)));
const hostnames = Array.from({ length: job.perZone }, (_, j) => `h${j}.${job.zoneName}`);
const originals = await store.read((r) => r.aop.getAssociations(job.zoneId, hostnames));
if (originals.length !== job.perZone) throw new Error(`write-floor: found ${originals.length} of ${job.perZone} associations`);
const byName = new Map(originals.map((a) => [a.hostname, a]));
const blocks = job.perZone / BLOCK;

/** The writes of the i-th PUT of the wrk scenario: its block, enabled toggled as the scenario's passes do. */
function put(i) {
  const b = i % blocks;
  const enabled = Math.floor(i / blocks) % 2 === 1;
  const now = new Date();
  return hostnames.slice(b * BLOCK, (b + 1) * BLOCK).map((h) => {
    const a = byName.get(h);
    return { ...a, enabled, status: 'pending_deployment', statusChangedAt: now, version: a.version + 1 + i, updatedAt: now };
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
const r2 = (x) => Math.round(x * 100) / 100;
let next = 0;

async function measure(writers, seconds) {
  const latencies = [];
  const end = performance.now() + seconds * 1000;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < end) {
        const rows = put(next++);
        const s = performance.now();
        await store.write((r) => r.aop.upsertAssociations(rows));
        latencies.push(performance.now() - s);
      }
    }),
  );
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((x, y) => x - y);
  return {
    writers,
    putsPerS: Math.round(latencies.length / elapsedS),
    p50Ms: r2(pct(latencies, 0.5)),
    p99Ms: r2(pct(latencies, 0.99)),
    cpuPerPutUs: Math.round((cpu.user + cpu.system) / latencies.length),
  };
}

for (let i = 0; i < 20; i++) await store.write((r) => r.aop.upsertAssociations(put(next++))); // statements prepared, pool open
const one = await measure(1, job.seconds);
const many = await measure(job.concurrency, job.seconds);
await store.write((r) => r.aop.upsertAssociations(originals));
await store.close();
process.stdout.write(JSON.stringify({ one, many }));

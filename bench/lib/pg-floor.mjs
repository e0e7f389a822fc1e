// What a Node process can get out of PostgreSQL on this machine at all: `node bench/lib/pg-floor.mjs <url> <zoneId>
// <seconds> <concurrency>` runs one primary-key read (`SELECT * FROM zones WHERE id = $1`, a named prepared statement,
// as certplane's adapter does) from `concurrency` loops over a pg.Pool of 10 (certplane's default) and prints JSON:
// queries per second and this process's CPU per query. The floor under every PostgreSQL row of the API benchmark.
import pg from 'pg';

const [url, zoneId, seconds, concurrency] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: url, max: 10 });
const query = { name: 'floor', text: 'SELECT * FROM zones WHERE id = $1', values: [zoneId] };
for (let i = 0; i < 200; i++) await pool.query(query); // connections opened, statement prepared
let n = 0;
const end = Date.now() + Number(seconds) * 1000;
const cpu0 = process.cpuUsage();
const t0 = Date.now();
await Promise.all(
  Array.from({ length: Number(concurrency) }, async () => {
    while (Date.now() < end) {
      await pool.query(query);
      n++;
    }
  }),
);
const elapsedS = (Date.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
await pool.end();
process.stdout.write(JSON.stringify({ queriesPerS: Math.round(n / elapsedS), clientCpuPerQueryUs: Math.round((cpu.user + cpu.system) / n) }));

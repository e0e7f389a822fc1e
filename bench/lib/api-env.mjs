// What every certplane server of the API benchmarks runs with (bench/api.mjs, bench/instructions.mjs): the bootstrap
// token the load scripts send, the master key of the benchmark databases, and the settings a load test needs.
export const TOKEN = 'BenchBenchBenchBenchBenchBenchBenchBench'; // 40 characters: the bootstrap token of every bench database
export const MASTER_KEY = 'b'.repeat(64); // benchmark databases only

/** certplane's environment for database `db` ({ path } for SQLite, { url } for PostgreSQL), without any inherited CERTPLANE_*. */
export function serverEnv(db, dataDir) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CERTPLANE_')) delete env[k];
  return {
    ...env,
    CERTPLANE_DATA_DIR: dataDir,
    CERTPLANE_MASTER_KEY: MASTER_KEY,
    CERTPLANE_BOOTSTRAP_ZONE: 'bench-z0.com',
    CERTPLANE_BOOTSTRAP_TOKEN: TOKEN,
    CERTPLANE_LOG_LEVEL: 'warn',
    // The Access scenario writes settings back to back (Cloudflare answers 409 while the previous write deploys).
    CERTPLANE_ACCESS_SETTINGS_CONFLICT: 'false',
    // One token drives tens of thousands of requests per second from one IP: Cloudflare's rate limits are off.
    CERTPLANE_RATE_LIMIT: '0',
    CERTPLANE_IP_RATE_LIMIT: '0',
    ...(db.url ? { CERTPLANE_DATABASE_URL: db.url } : { CERTPLANE_DATABASE: db.path }),
  };
}

/**
 * Runtime configuration from the environment (and CLI flags, which override it). Every setting is documented in
 * the README's configuration reference.
 */
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type { RateLimitSettings } from './api/ratelimit.js';
import type { ConnectionTimeouts } from './api/server.js';
import { DEFAULT_DOMAIN_CONFIG, type DomainConfig } from './domain/config.js';

export interface CertplaneConfig {
  host: string;
  port: number;
  dataDir: string;
  /** SQLite database file (used when no PostgreSQL URL is given). */
  databasePath: string;
  /** PostgreSQL connection string; when set, PostgreSQL is the store. */
  databaseUrl?: string;
  /** PostgreSQL pool size per process. */
  databasePoolMax: number;
  masterKey?: string;
  masterKeyFile: string;
  /** Earlier master keys, still accepted for opening during a key rotation (CERTPLANE_PREVIOUS_MASTER_KEYS). */
  previousMasterKeys: string[];
  bodyLimit: number;
  /** Bytes of GET answers kept ready to send (CERTPLANE_ANSWER_CACHE_BYTES; 0 = off). */
  answerCacheBytes: number;
  logLevel: string;
  deployerIntervalMs: number;
  /** An edge not seen for this long leaves the live set (its acknowledgements stop gating deployments). */
  edgeGraceMs: number;
  bootstrap: {
    zoneName: string;
    accountName: string;
    email: string;
    token?: string;
    apiKey?: string;
  };
  domain: DomainConfig;
  /** Abuse limits (docs/deployment.md "Abuse limits"); the defaults are Cloudflare's rate limits. */
  abuse: {
    rateLimit: RateLimitSettings;
    timeouts: ConnectionTimeouts;
    maxConnections: number;
    trustProxy?: string;
  };
}

type Env = Record<string, string | undefined>;

/** Where the data lives, for humans: never the PostgreSQL password. */
export function describeDatabase(cfg: Pick<CertplaneConfig, 'databaseUrl' | 'databasePath'>): string {
  if (!cfg.databaseUrl) return cfg.databasePath;
  try {
    const u = new URL(cfg.databaseUrl);
    return `postgresql://${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return 'postgresql';
  }
}

function int(env: Env, name: string, def: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a non-negative whole number (got "${raw}")`);
  return Number(raw);
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new Error(`${name} must be true or false (got "${raw}")`);
}

/** A whole number of at least `min` (the unit's smallest sensible value). */
function atLeast(env: Env, name: string, def: number, min: number): number {
  const v = int(env, name, def);
  if (v < min) throw new Error(`${name} must be at least ${min} (got "${env[name]}")`);
  return v;
}

/** Requests per window; 0 turns the limit off, and then its window is not checked. */
function ratePolicy(env: Env, limitName: string, windowName: string, def: { limit: number; windowSeconds: number }) {
  const limit = int(env, limitName, def.limit);
  return { limit, windowSeconds: limit === 0 ? def.windowSeconds : atLeast(env, windowName, def.windowSeconds, 1) };
}

/**
 * CERTPLANE_TRUST_PROXY: comma-separated addresses or CIDRs of the proxies in front (or `loopback`, `linklocal`,
 * `uniquelocal`). Never "trust everyone" and no hop count: either would let a direct client choose its own address.
 */
function trustProxy(env: Env): string | undefined {
  const raw = env.CERTPLANE_TRUST_PROXY?.trim();
  if (!raw) return undefined;
  const entries = raw.split(',').map((e) => e.trim());
  for (const e of entries) {
    if (e === 'loopback' || e === 'linklocal' || e === 'uniquelocal') continue;
    const [addr, bits, ...extra] = e.split('/');
    const family = isIP(addr);
    const max = family === 6 ? 128 : 32;
    if (family === 0 || extra.length > 0 || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))) {
      throw new Error(
        'CERTPLANE_TRUST_PROXY must be comma-separated proxy addresses or CIDRs, or loopback, linklocal, uniquelocal ' +
          `(got "${e}")`,
      );
    }
  }
  return entries.join(',');
}

function abuseLimits(env: Env): CertplaneConfig['abuse'] {
  const timeouts: ConnectionTimeouts = {
    headersMs: int(env, 'CERTPLANE_HEADERS_TIMEOUT_MS', 10_000),
    requestMs: int(env, 'CERTPLANE_REQUEST_TIMEOUT_MS', 30_000),
    keepAliveMs: atLeast(env, 'CERTPLANE_KEEP_ALIVE_TIMEOUT_MS', 72_000, 1),
    idleMs: int(env, 'CERTPLANE_IDLE_TIMEOUT_MS', 60_000),
  };
  if (timeouts.headersMs > 0 && timeouts.requestMs > 0 && timeouts.headersMs > timeouts.requestMs) {
    throw new Error(
      `CERTPLANE_HEADERS_TIMEOUT_MS (${timeouts.headersMs}) must not exceed CERTPLANE_REQUEST_TIMEOUT_MS (${timeouts.requestMs})`,
    );
  }
  return {
    rateLimit: {
      // Cloudflare: 1200 requests per 5 minutes per user or token, 200 per second per IP (cloudflare-behavior.md §4.1).
      perCredential: ratePolicy(env, 'CERTPLANE_RATE_LIMIT', 'CERTPLANE_RATE_LIMIT_WINDOW_SECONDS', { limit: 1200, windowSeconds: 300 }),
      perIp: ratePolicy(env, 'CERTPLANE_IP_RATE_LIMIT', 'CERTPLANE_IP_RATE_LIMIT_WINDOW_SECONDS', { limit: 200, windowSeconds: 1 }),
    },
    timeouts,
    maxConnections: int(env, 'CERTPLANE_MAX_CONNECTIONS', 10_000),
    trustProxy: trustProxy(env),
  };
}

export function loadConfig(
  env: Env = process.env,
  overrides: Partial<Pick<CertplaneConfig, 'host' | 'port' | 'dataDir' | 'databasePath' | 'databaseUrl'>> = {},
): CertplaneConfig {
  const dataDir = resolve(overrides.dataDir ?? env.CERTPLANE_DATA_DIR ?? 'data');
  const d = DEFAULT_DOMAIN_CONFIG;
  return {
    host: overrides.host ?? env.CERTPLANE_HOST ?? '127.0.0.1',
    port: overrides.port ?? int(env, 'CERTPLANE_PORT', 8080),
    dataDir,
    databasePath: resolve(overrides.databasePath ?? env.CERTPLANE_DATABASE ?? join(dataDir, 'certplane.db')),
    databaseUrl: overrides.databaseUrl ?? (env.CERTPLANE_DATABASE_URL || undefined),
    databasePoolMax: int(env, 'CERTPLANE_DATABASE_POOL_MAX', 10),
    masterKey: env.CERTPLANE_MASTER_KEY,
    masterKeyFile: resolve(env.CERTPLANE_MASTER_KEY_FILE ?? join(dataDir, 'master.key')),
    previousMasterKeys: (env.CERTPLANE_PREVIOUS_MASTER_KEYS ?? '')
      .split(',')
      .map((k) => k.trim())
      .filter((k) => k !== ''),
    bodyLimit: int(env, 'CERTPLANE_BODY_LIMIT', 1024 * 1024),
    answerCacheBytes: int(env, 'CERTPLANE_ANSWER_CACHE_BYTES', 32 * 1024 * 1024),
    logLevel: env.CERTPLANE_LOG_LEVEL ?? 'info',
    deployerIntervalMs: int(env, 'CERTPLANE_DEPLOYER_INTERVAL_MS', 250),
    edgeGraceMs: int(env, 'CERTPLANE_EDGE_GRACE_MS', 30_000),
    bootstrap: {
      zoneName: env.CERTPLANE_BOOTSTRAP_ZONE ?? 'example.com',
      accountName: env.CERTPLANE_BOOTSTRAP_ACCOUNT ?? 'Default account',
      email: env.CERTPLANE_BOOTSTRAP_EMAIL ?? 'admin@example.com',
      token: env.CERTPLANE_BOOTSTRAP_TOKEN || undefined,
      apiKey: env.CERTPLANE_BOOTSTRAP_API_KEY || undefined,
    },
    domain: {
      limits: {
        hostnameCertificatesPerZone: int(env, 'CERTPLANE_LIMIT_HOSTNAME_CERTIFICATES_PER_ZONE', d.limits.hostnameCertificatesPerZone),
        associationsPerCertificate: int(env, 'CERTPLANE_LIMIT_ASSOCIATIONS_PER_CERTIFICATE', d.limits.associationsPerCertificate),
        accessCertificatesPerAccount: int(env, 'CERTPLANE_LIMIT_ACCESS_CERTIFICATES_PER_ACCOUNT', d.limits.accessCertificatesPerAccount),
        zoneCertificatesPerZone: int(env, 'CERTPLANE_LIMIT_ZONE_CERTIFICATES_PER_ZONE', d.limits.zoneCertificatesPerZone),
      },
      lifecycle: {
        deployDelayMs: int(env, 'CERTPLANE_DEPLOY_DELAY_MS', d.lifecycle.deployDelayMs),
        deleteDelayMs: int(env, 'CERTPLANE_DELETE_DELAY_MS', d.lifecycle.deleteDelayMs),
        deployTimeoutMs: int(env, 'CERTPLANE_DEPLOY_TIMEOUT_MS', d.lifecycle.deployTimeoutMs),
        deleteTimeoutMs: int(env, 'CERTPLANE_DELETE_TIMEOUT_MS', d.lifecycle.deleteTimeoutMs),
        retentionMs: int(env, 'CERTPLANE_RETENTION_MS', d.lifecycle.retentionMs),
      },
      fidelity: {
        emptyZoneCertificateListIsNull: bool(env, 'CERTPLANE_EMPTY_ZONE_CERT_LIST_NULL', d.fidelity.emptyZoneCertificateListIsNull),
        accessSettingsConflict: bool(env, 'CERTPLANE_ACCESS_SETTINGS_CONFLICT', d.fidelity.accessSettingsConflict),
      },
    },
    abuse: abuseLimits(env),
  };
}

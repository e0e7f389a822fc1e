/**
 * Runtime configuration from the environment (and CLI flags, which override it). Every setting is documented in
 * the README's configuration reference.
 */
import { join, resolve } from 'node:path';
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
  };
}

/**
 * Composition root: builds the store, key vault, services, deployer and HTTP server from a configuration.
 * Services are plain factory functions wired here; nothing is hidden in framework decorators.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { registerAccessRoutes } from './api/routes/access.js';
import { registerAopRoutes } from './api/routes/aop.js';
import { registerTenancyRoutes } from './api/routes/tenancy.js';
import { buildServer, type ApiServices, type CertplaneServer } from './api/server.js';
import { describeDatabase, type CertplaneConfig } from './config.js';
import {
  checkVerificationToken,
  createKeyVault,
  loadOrCreateMasterKey,
  parseMasterKey,
  verificationToken,
  type KeyVault,
} from './crypto/vault.js';
import { createAccessService } from './domain/access.js';
import { createAopService } from './domain/aop.js';
import { bootstrapIfEmpty, type BootstrapResult } from './domain/bootstrap.js';
import { createAckGate, createDeployer, createTimerGate, type Deployer } from './domain/lifecycle.js';
import { createEdgeService, type EdgeService } from './domain/edge.js';
import { registerEdgeRoutes } from './api/routes/edge.js';
import type { Clock, Ids, Store } from './domain/ports.js';
import { createTenancyService } from './domain/tenancy.js';
import { VAULT_CHECK_META } from './domain/keys.js';
import { openSqliteStore } from './storage/sqlite/store.js';

export const systemClock: Clock = { now: () => new Date() };
export const randomIds: Ids = {
  hex32: () => randomBytes(16).toString('hex'),
  uuid: () => randomUUID(),
};

export interface Certplane {
  /** The API server; `app.routeSpecs` is its route table. */
  app: CertplaneServer;
  services: ApiServices;
  /** The control plane's side of the data plane: edge hostnames, edge nodes, the feed. */
  edge: EdgeService;
  store: Store;
  vault: KeyVault;
  deployer: Deployer;
  /** Set when this start created a new installation: the credentials, shown once. */
  bootstrap: BootstrapResult | null;
  close(): Promise<void>;
}

export class StartupError extends Error {
  override readonly name = 'StartupError';
}

const VAULT_CHECK = VAULT_CHECK_META;

/** The configured database: PostgreSQL when a URL is given, else the embedded SQLite file. Migrations run here. */
export async function openStore(config: CertplaneConfig): Promise<Store> {
  if (config.databaseUrl) {
    // Loaded only for PostgreSQL: a SQLite server starts without loading pg.
    const { openPostgresStore } = await import('./storage/postgres/store.js');
    return openPostgresStore({
      connectionString: config.databaseUrl,
      max: config.databasePoolMax,
      applicationName: 'certplane',
    });
  }
  return openSqliteStore({ path: config.databasePath });
}

export async function createCertplane(
  config: CertplaneConfig,
  deps: { clock?: Clock; ids?: Ids; store?: Store; logger?: boolean | Record<string, unknown> } = {},
): Promise<Certplane> {
  const clock = deps.clock ?? systemClock;
  const ids = deps.ids ?? randomIds;
  const sqlite = !deps.store && !config.databaseUrl;
  // A new key for an existing database could open nothing: say so instead of leaving a useless key file behind.
  const noKey = () =>
    new StartupError(
      `The database ${describeDatabase(config)} exists but its master key does not: set CERTPLANE_MASTER_KEY or restore ` +
        `the key file ${config.masterKeyFile} (CERTPLANE_MASTER_KEY_FILE).`,
    );
  if (sqlite && !config.masterKey?.trim() && !existsSync(config.masterKeyFile) && existsSync(config.databasePath)) throw noKey();
  const { key, source } = loadOrCreateMasterKey({ env: config.masterKey, keyFile: config.masterKeyFile });
  const vault = createKeyVault(key, config.previousMasterKeys.map(parseMasterKey));
  const store = deps.store ?? (await openStore(config));

  try {
    // The database remembers a token sealed with its master key: a different key is refused before anything runs.
    const check = await store.read((r) => r.tenancy.getMeta(VAULT_CHECK));
    if (check === null) {
      await store.write((r) => r.tenancy.setMeta(VAULT_CHECK, verificationToken(vault)));
    } else {
      let matches = false;
      try {
        matches = checkVerificationToken(vault, check);
      } catch {
        matches = false;
      }
      if (!matches && source === 'created') {
        // PostgreSQL (not a file certplane can see) already holds an installation: the key just made is not its key.
        rmSync(config.masterKeyFile, { force: true });
        throw noKey();
      }
      if (!matches) {
        throw new StartupError(
          'The master key does not match the one this database was created with. Set CERTPLANE_MASTER_KEY ' +
            `(or CERTPLANE_MASTER_KEY_FILE, now ${config.masterKeyFile}) to the original key; certplane will not start ` +
            'with a different key because it could not decrypt any stored private key.',
        );
      }
    }
  } catch (err) {
    await store.close();
    throw err;
  }

  const tenancy = createTenancyService({ store, clock, ids });
  const aop = createAopService({ store, clock, ids, sealer: vault, config: config.domain });
  const access = createAccessService({ store, clock, ids, config: config.domain });
  const edge = createEdgeService({ store, clock, ids, sealer: vault });
  const services: ApiServices = { tenancy, aop, access };

  const bootstrap = await bootstrapIfEmpty(store, tenancy, config.bootstrap, clock.now());

  const app = buildServer(services, {
    bodyLimit: config.bodyLimit,
    answerCacheBytes: config.answerCacheBytes,
    logger: deps.logger ?? false,
    ...config.abuse,
    // Rate-limit windows follow an injected clock (tests move it); the system clock is read without a Date.
    nowMs: deps.clock ? () => clock.now().getTime() : Date.now,
  }) as CertplaneServer;
  registerAopRoutes(app, services, config.domain);
  registerAccessRoutes(app, services);
  registerTenancyRoutes(app, services);
  registerEdgeRoutes(app, edge, store);

  const deployer = createDeployer({
    store,
    clock,
    gate: createAckGate({ store, graceMs: config.edgeGraceMs, fallback: createTimerGate(config.domain.lifecycle) }),
    timing: config.domain.lifecycle,
    onError: (err) => app.log.error({ err: { message: (err as Error).message } }, 'deployer tick failed'),
  });

  return {
    app,
    services,
    edge,
    store,
    vault,
    deployer,
    bootstrap,
    async close() {
      await deployer.stop();
      await app.close();
      await store.close();
    },
  };
}

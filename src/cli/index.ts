#!/usr/bin/env node
/**
 * The `certplane` command: `serve`, and administration of accounts, zones, users and tokens. Administration
 * commands open the same database the server uses (SQLite in WAL mode allows both at once).
 */
import { Command, InvalidArgumentError } from 'commander';
import { describeDatabase, loadConfig, type CertplaneConfig } from '../config.js';
import { DomainError } from '../domain/errors.js';
import type { Account, EdgeHostname, Scope, TokenPolicy, Zone } from '../domain/model.js';
import { EDGE_ENGINES, runEdge, type EdgeEngine } from '../edge/run.js';
import { createKeyVault, loadOrCreateMasterKey, parseMasterKey, verificationToken } from '../crypto/vault.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { permissionsFromGroups } from '../domain/tenancy.js';
import { createCertplane, StartupError, type Certplane } from '../main.js';
// Loaded where used (PostgreSQL, the development CA): `serve` on SQLite starts faster without pg and @peculiar/x509.
const postgres = () => import('../storage/postgres/store.js');
const devCa = () => import('../pki/issue.js');
import { copyStore, CopyError } from '../storage/copy.js';
import { randomBytes } from 'node:crypto';
import { rotateSealedKeys } from '../domain/keys.js';
import { migrateSqliteFile, openSqliteStore } from '../storage/sqlite/store.js';
import type { BootstrapResult } from '../domain/bootstrap.js';

const program = new Command();
program
  .name('certplane')
  .description('Self-hostable, Cloudflare-compatible mTLS certificate control plane')
  .option('--data-dir <dir>', 'directory for the database and master key (env CERTPLANE_DATA_DIR)')
  .option('--database <file>', 'SQLite database file (env CERTPLANE_DATABASE)')
  .option('--database-url <url>', 'PostgreSQL connection string; PostgreSQL is then the store (env CERTPLANE_DATABASE_URL)')
  .showHelpAfterError();

function config(extra: Partial<CertplaneConfig> = {}): CertplaneConfig {
  const o = program.opts<{ dataDir?: string; database?: string; databaseUrl?: string }>();
  return loadConfig(process.env, { dataDir: o.dataDir, databasePath: o.database, databaseUrl: o.databaseUrl, ...extra });
}

/** The first start prints the credentials once: on stdout for `serve`, on stderr for administration commands
 * (whose stdout is JSON for scripts). */
function printBootstrap(b: BootstrapResult, baseUrl: string, to: NodeJS.WritableStream = process.stdout): void {
  const lines = [
    '',
    'certplane: a new installation was created. These credentials are shown ONCE; store them now.',
    `  account id   ${b.accountId}`,
    `  zone         ${b.zoneName}  (zone id ${b.zoneId})`,
    `  user email   ${b.email}`,
    `  global key   ${b.apiKey}`,
    `  API token    ${b.token}  (all permissions)`,
    '',
    'Try it:',
    `  export CLOUDFLARE_API_TOKEN=${b.token} ZONE_ID=${b.zoneId} ACCOUNT_ID=${b.accountId}`,
    `  curl ${baseUrl}/client/v4/zones/$ZONE_ID/origin_tls_client_auth/settings -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN"`,
    '',
  ];
  to.write(lines.join('\n') + '\n');
}

const edgeHostnameJson = (h: EdgeHostname) => ({
  hostname: h.hostname,
  zone_id: h.zoneId,
  origin: `${h.originTls ? 'https' : 'http'}://${h.originAddress}:${h.originPort}`,
  origin_sni: h.originSni,
  version: h.version,
  updated_at: h.updatedAt.toISOString(),
});

/** CLI output uses the API's snake_case, like every other certplane answer. */
const accountJson = (a: Account) => ({ id: a.id, name: a.name, created_on: a.createdAt.toISOString() });
const zoneJson = (z: Zone) => ({
  id: z.id,
  name: z.name,
  account_id: z.accountId,
  china_network: z.chinaNetwork,
  status: z.status,
  created_on: z.createdAt.toISOString(),
  modified_on: z.modifiedAt.toISOString(),
});

/** Runs an administration action against the database, printing domain errors plainly. */
async function admin(fn: (cp: Certplane) => Promise<void>): Promise<void> {
  const cfg = config();
  const cp = await createCertplane(cfg);
  try {
    // The curl line points where `serve` will listen with the same configuration (not always :8080).
    if (cp.bootstrap) {
      printBootstrap(cp.bootstrap, `http://${cfg.host === '0.0.0.0' ? '127.0.0.1' : cfg.host}:${cfg.port}`, process.stderr);
    }
    await fn(cp);
  } finally {
    await cp.close();
  }
}

const json = (v: unknown): void => {
  process.stdout.write(JSON.stringify(v, null, 2) + "\n");
};

function engine(v: string): EdgeEngine {
  if (!(EDGE_ENGINES as readonly string[]).includes(v)) throw new InvalidArgumentError(`an engine is one of: ${EDGE_ENGINES.join(', ')}`);
  return v as EdgeEngine;
}

function port(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new InvalidArgumentError('a port is 0-65535');
  return Number(v);
}

program
  .command('serve')
  .description('run the API server (SQLite by default)')
  .option('--host <host>', 'address to listen on (env CERTPLANE_HOST, default 127.0.0.1)')
  .option('--port <port>', 'port to listen on (env CERTPLANE_PORT, default 8080)', port)
  .option('--edge', 'also run an edge in this process (the one-command demo)', false)
  .option('--edge-host <host>', 'address the embedded edge listens on (default 127.0.0.1)', '127.0.0.1')
  .option('--edge-port <port>', 'port the embedded edge listens on for visitors (TLS; default 8443)', port, 8443)
  .option('--edge-engine <engine>', 'data plane of the embedded edge: node (in-process) or haproxy', engine, 'node')
  .action(async (opts: { host?: string; port?: number; edge: boolean; edgeHost: string; edgePort: number; edgeEngine: EdgeEngine }) => {
    const cfg = config({ ...(opts.host ? { host: opts.host } : {}), ...(opts.port !== undefined ? { port: opts.port } : {}) });
    const cp = await createCertplane(cfg, { logger: { level: cfg.logLevel } });
    const address = await cp.app.listen({ host: cfg.host, port: cfg.port });
    cp.deployer.start(cfg.deployerIntervalMs);
    if (cp.bootstrap) printBootstrap(cp.bootstrap, address.replace('0.0.0.0', '127.0.0.1'));
    process.stdout.write(`certplane listening on ${address}/client/v4 (database ${describeDatabase(cfg)})\n`);
    let embedded: { stop(): Promise<void> } | undefined;
    if (opts.edge) {
      // The embedded edge is an ordinary edge node: it registers, polls the feed over loopback and acknowledges.
      const { node, credential } = await cp.edge.registerNode(`embedded edge (pid ${process.pid})`);
      const edge = await runEdge({
        engine: opts.edgeEngine,
        host: opts.edgeHost,
        port: opts.edgePort,
        controlPlane: address.replace('0.0.0.0', '127.0.0.1'),
        credential,
        vault: cp.vault,
        onError: (err) => cp.app.log.warn({ err: { message: (err as Error).message } }, 'edge agent'),
      });
      embedded = {
        async stop() {
          await edge.stop();
          await cp.edge.revokeNode(node.id);
        },
      };
      process.stdout.write(`certplane edge listening on https://${opts.edgeHost}:${edge.port} (edge node ${node.id}; ${edge.description})\n`);
    }
    let closing = false;
    const shutdown = async () => {
      if (closing) return;
      closing = true;
      await embedded?.stop();
      await cp.close();
      process.exit(0);
    };
    process.on('SIGINT', shutdown);
    process.on('SIGTERM', shutdown);
  });

program
  .command('migrate')
  .description('apply pending database migrations and exit (serve also does this on start; safe with several nodes)')
  .action(async () => {
    const cfg = config();
    const applied = cfg.databaseUrl ? await (await postgres()).migratePostgres(cfg.databaseUrl) : migrateSqliteFile(cfg.databasePath);
    json({ database: describeDatabase(cfg), applied });
  });

program
  .command('copy-to-postgres')
  .description('copy a SQLite installation into an empty PostgreSQL database (same master key afterwards)')
  .requiredOption('--from <file>', 'the SQLite database file')
  .requiredOption('--to <url>', 'the PostgreSQL connection string (the database must be empty)')
  .action(async (o: { from: string; to: string }) => {
    if (!existsSync(o.from)) throw new InvalidArgumentError(`no SQLite database at ${o.from}`);
    const from = openSqliteStore({ path: o.from });
    try {
      const to = await (await postgres()).openPostgresStore({ connectionString: o.to, applicationName: 'certplane copy' });
      try {
        json(await copyStore(from, to));
      } finally {
        await to.close();
      }
    } finally {
      await from.close();
    }
  });

const edgeCmd = program.command('edge').description('edge nodes: the data plane');
edgeCmd
  .command('register <name>')
  .description('register an edge node; prints its credential once')
  .action((name: string) =>
    admin(async (cp) => {
      const { node, credential } = await cp.edge.registerNode(name);
      json({ id: node.id, name: node.name, credential });
    }),
  );
edgeCmd
  .command('list')
  .description('edge nodes with their acknowledged version, last contact and reported failures')
  .action(() =>
    admin(async (cp) => {
      const out = [];
      for (const n of await cp.edge.listNodes()) {
        out.push({
          id: n.id,
          name: n.name,
          acked_version: n.ackedVersion,
          last_seen_at: n.lastSeenAt?.toISOString() ?? null,
          revoked_at: n.revokedAt?.toISOString() ?? null,
          healthy: n.healthy,
          health_reason: n.healthReason,
          failures: (await cp.edge.listFailures(n.id)).map((f) => ({ hostname: f.hostname, version: f.version, reason: f.reason })),
        });
      }
      json(out);
    }),
  );
edgeCmd
  .command('revoke <edge_id>')
  .action((id: string) => admin(async (cp) => json({ id, revoked_at: (await cp.edge.revokeNode(id)).revokedAt?.toISOString() })));
edgeCmd
  .command('run', { isDefault: true })
  .description('run an edge node: TLS for visitors, configured by the control plane (the default: `certplane edge --control-plane …`)')
  .requiredOption('--control-plane <url>', 'control plane origin, e.g. http://10.0.0.5:8080')
  .option('--credential <credential>', 'the edge credential (env CERTPLANE_EDGE_CREDENTIAL)')
  .option('--host <host>', 'address to listen on for visitors', '0.0.0.0')
  .option('--port <port>', 'port to listen on for visitors (TLS)', port, 8443)
  .option('--engine <engine>', 'data plane: node (in-process) or haproxy (needs an haproxy binary: PATH or CERTPLANE_HAPROXY)', engine, 'node')
  .option('--haproxy-dir <dir>', 'haproxy: private working directory for its configuration, certificates and sockets (default: new, in memory)')
  .option('--haproxy-threads <n>', 'haproxy: threads (default: one per CPU)', (v: string) => {
    if (!/^\d{1,3}$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('a thread count is 1-999');
    return Number(v);
  })
  .action(async (o: { controlPlane: string; credential?: string; host: string; port: number; engine: EdgeEngine; haproxyDir?: string; haproxyThreads?: number }) => {
    const credential = o.credential ?? process.env.CERTPLANE_EDGE_CREDENTIAL;
    if (!credential) throw new InvalidArgumentError('give --credential or CERTPLANE_EDGE_CREDENTIAL');
    const cfg = config();
    const { key } = loadOrCreateMasterKey({ env: cfg.masterKey, keyFile: cfg.masterKeyFile, create: false });
    const vault = createKeyVault(key, cfg.previousMasterKeys.map(parseMasterKey));
    const edge = await runEdge({
      engine: o.engine,
      haproxyDir: o.haproxyDir,
      haproxyThreads: o.haproxyThreads,
      host: o.host,
      port: o.port,
      controlPlane: o.controlPlane,
      credential,
      vault,
      onError: (err) => process.stderr.write(`certplane edge: ${(err as Error).message}\n`),
      onApplied: (r) =>
        process.stdout.write(`certplane edge: version ${r.version} live${r.failed.length ? ` (${r.failed.length} failed)` : ''}\n`),
    });
    process.stdout.write(`certplane edge listening on https://${o.host}:${edge.port} (${edge.description})\n`);
    const shutdown = async () => {
      await edge.stop();
      process.exit(0);
    };
    process.on('SIGINT', shutdown);
    process.on('SIGTERM', shutdown);
  });

const hostnameCmd = program.command('hostname').description('hostnames the edge serves (origin and visitor certificate)');
hostnameCmd
  .command('add <hostname>')
  .description('serve a hostname: where its origin is and which certificate visitors see')
  .requiredOption('--origin <address:port>', 'the origin, e.g. 127.0.0.1:9443')
  .option('--origin-tls', 'connect to the origin with TLS', false)
  .option('--origin-sni <name>', 'SNI to send to the origin (default: the hostname)')
  .option('--origin-ca <file>', 'CA bundle to verify the origin with')
  .option('--cert <file>', 'visitor-facing certificate (PEM, chain allowed)')
  .option('--key <file>', 'its private key (PEM)')
  .option('--dev-cert', 'issue the visitor-facing certificate from a local development CA (created on first use)', false)
  .action(
    (
      hostname: string,
      o: { origin: string; originTls: boolean; originSni?: string; originCa?: string; cert?: string; key?: string; devCert: boolean },
    ) =>
      admin(async (cp) => {
        const m = /^(.+):(\d{1,5})$/.exec(o.origin);
        if (!m) throw new InvalidArgumentError('--origin is address:port');
        let pair: { certPem: string; keyPem: string };
        if (o.devCert) {
          const { issueDevServerCertificate, loadOrCreateDevCa } = await devCa();
          const ca = await loadOrCreateDevCa(join(config().dataDir, 'dev-ca'));
          if (ca.created) {
            process.stderr.write(
              `certplane: created a development CA (${ca.certFile}). Visitors trust the edge's development certificates\n` +
                `with it, for example: curl --cacert ${ca.certFile} ...  (never use it in production)\n`,
            );
          }
          pair = await issueDevServerCertificate(ca, hostname.toLowerCase().replace(/\.$/, ''));
        } else {
          if (!o.cert || !o.key) throw new InvalidArgumentError('give --cert and --key, or --dev-cert');
          pair = { certPem: readFileSync(o.cert, 'utf8'), keyPem: readFileSync(o.key, 'utf8') };
        }
        const h = await cp.edge.addHostname({
          hostname,
          origin: {
            address: m[1].replace(/^\[|\]$/g, ''),
            port: Number(m[2]),
            tls: o.originTls,
            sni: o.originSni ?? null,
            caPem: o.originCa ? readFileSync(o.originCa, 'utf8') : null,
          },
          certificatePem: pair.certPem,
          keyPem: pair.keyPem,
        });
        json(edgeHostnameJson(h));
      }),
  );
hostnameCmd.command('remove <hostname>').action((h: string) => admin(async (cp) => cp.edge.removeHostname(h)));
hostnameCmd.command('list').action(() => admin(async (cp) => json((await cp.edge.listHostnames()).map(edgeHostnameJson))));

const keys = program.command('keys').description('master-key management');
keys
  .command('generate')
  .description('print a new random master key (64 hex characters)')
  .action(() => {
    process.stdout.write(randomBytes(32).toString('hex') + '\n');
  });
keys
  .command('rotate')
  .description(
    're-seal every stored private key with the current master key (CERTPLANE_MASTER_KEY), opening them with ' +
      'CERTPLANE_PREVIOUS_MASTER_KEYS; safe while the API serves, and safe to repeat',
  )
  .action(() =>
    admin(async (cp) => {
      const report = await rotateSealedKeys(cp.store, cp.vault, verificationToken(cp.vault));
      json({ key_id: cp.vault.keyId, examined: report.examined, resealed: report.resealed });
    }),
  );

const account = program.command('account').description('manage accounts');
account
  .command('create <name>')
  .description('create an account')
  .action((name: string) => admin(async (cp) => json(accountJson(await cp.services.tenancy.createAccount(name)))));
account.command('list').action(() => admin(async (cp) => json((await cp.services.tenancy.listAccounts()).map(accountJson))));

const zone = program.command('zone').description('manage zones');
zone
  .command('create <name>')
  .description('create a zone (apex name) in an account')
  .requiredOption('--account <id>', 'owning account id')
  .option('--china-network', 'the zone is China network enabled', false)
  .action((name: string, o: { account: string; chinaNetwork: boolean }) =>
    admin(async (cp) => json(zoneJson(await cp.services.tenancy.createZone({ name, accountId: o.account, chinaNetwork: o.chinaNetwork })))),
  );
zone
  .command('china-network <zone_id> <on|off>')
  .description('set whether a zone is China network enabled')
  .action((id: string, v: string) =>
    admin(async (cp) => {
      if (v !== 'on' && v !== 'off') throw new InvalidArgumentError('use on or off');
      json(zoneJson(await cp.services.tenancy.setZoneChinaNetwork(id, v === 'on')));
    }),
  );
zone
  .command('list')
  .option('--account <id>', 'only zones of this account')
  .action((o: { account?: string }) =>
    admin(async (cp) =>
      json((await cp.services.tenancy.listZones(o.account ? { accountIds: [o.account] } : {}, { page: 1, perPage: 100000 })).items.map(zoneJson)),
    ),
  );

const user = program.command('user').description('manage users (email + global API key)');
user
  .command('create <email>')
  .description('create a user; prints the global API key once')
  .requiredOption('--account <id...>', 'accounts the user is a member of')
  .action((email: string, o: { account: string[] }) =>
    admin(async (cp) => {
      const { user: u, apiKey } = await cp.services.tenancy.createUser({ email, accountIds: o.account });
      json({ id: u.id, email: u.email, api_key: apiKey });
    }),
  );
user
  .command('add-account <email> <account_id>')
  .description('make a user a member of another account')
  .action((email: string, accountId: string) => admin((cp) => cp.services.tenancy.addMembership(email, accountId)));
user
  .command('list')
  .action(() => admin(async (cp) => json((await cp.services.tenancy.listUsers()).map((u) => ({ id: u.id, email: u.email })))));

const token = program.command('token').description('manage API tokens');
token
  .command('create')
  .description('create an API token; prints the secret once')
  .requiredOption('--name <name>', 'token name')
  .requiredOption(
    '--permission <group...>',
    'permission groups: "SSL and Certificates Read", "SSL and Certificates Write", "Access: Mutual TLS Certificates Read", "Access: Mutual TLS Certificates Write"',
  )
  .option('--zone <id...>', 'scope: these zones')
  .option('--account <id...>', 'scope: these accounts (and all their zones)')
  .option('--all', 'scope: every account and zone', false)
  .option('--expires-on <iso>', 'expiry time (ISO 8601)')
  .option('--not-before <iso>', 'not valid before (ISO 8601)')
  .action((o: { name: string; permission: string[]; zone?: string[]; account?: string[]; all: boolean; expiresOn?: string; notBefore?: string }) =>
    admin(async (cp) => {
      const scopes: Scope[] = [
        ...(o.all ? [{ type: 'all' as const }] : []),
        ...(o.account ?? []).map((id) => ({ type: 'account' as const, id })),
        ...(o.zone ?? []).map((id) => ({ type: 'zone' as const, id })),
      ];
      if (scopes.length === 0) throw new InvalidArgumentError('give --zone, --account or --all');
      const date = (s: string | undefined, flag: string) => {
        if (s === undefined) return null;
        const d = new Date(s);
        if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`${flag} must be an ISO 8601 time`);
        return d;
      };
      const policies: TokenPolicy[] = [{ permissions: permissionsFromGroups(o.permission), scopes }];
      const { token: t, secret } = await cp.services.tenancy.createToken({
        name: o.name,
        policies,
        expiresOn: date(o.expiresOn, '--expires-on'),
        notBefore: date(o.notBefore, '--not-before'),
      });
      json({ id: t.id, name: t.name, token: secret, policies: t.policies, expires_on: t.expiresOn, not_before: t.notBefore });
    }),
  );
token
  .command('list')
  .action(() =>
    admin(async (cp) =>
      json(
        (await cp.services.tenancy.listTokens()).map((t) => ({
          id: t.id,
          name: t.name,
          status: t.status,
          policies: t.policies,
          expires_on: t.expiresOn,
        })),
      ),
    ),
  );
token
  .command('revoke <token_id>')
  .description('revoke (disable) a token')
  .action((id: string) => admin(async (cp) => json(await cp.services.tenancy.revokeToken(id).then((t) => ({ id: t.id, status: t.status })))));

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof DomainError) process.stderr.write(`certplane: ${err.kind}${err.detail ? `: ${err.detail}` : ''}\n`);
  else if (err instanceof StartupError || err instanceof InvalidArgumentError || err instanceof CopyError) {
    process.stderr.write(`certplane: ${err.message}\n`);
  }
  else process.stderr.write(`certplane: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});

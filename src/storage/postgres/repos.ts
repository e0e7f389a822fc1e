/**
 * PostgreSQL implementations of the domain's repositories: the same SQL semantics as ../sqlite/repos.ts, with `$n`
 * parameters. Each SQL text is sent as a named prepared statement (name = hash of the text), which `pg` parses once
 * per connection and then only binds and executes: about half the latency of an unnamed statement.
 */
import { createHash } from 'node:crypto';
import type { QueryConfig, QueryResult, QueryResultRow } from 'pg';
import type {
  ApiToken,
  AopCertificate,
  EdgeHostname,
  EdgeNode,
  Page,
  PageRequest,
  Scope,
  TokenPolicy,
  Zone,
} from '../../domain/model.js';
import type { AccessRepo, AopRepo, EdgeRepo, EventRepo, Repos, TenancyRepo, ZoneQuery } from '../../domain/ports.js';
import { createRowMappers, offset, type Row } from '../rows.js';

/** What the repositories run statements on: a pool client (inside a transaction or not). */
export interface Queryable {
  query<R extends QueryResultRow = Row>(config: QueryConfig): Promise<QueryResult<R>>;
}

export interface PostgresReposOptions {
  /** Send statements as named prepared statements (default true). Turn off behind a transaction-mode pooler that cannot keep them. */
  preparedStatements?: boolean;
}

/**
 * A Date as a PostgreSQL timestamptz literal in UTC with milliseconds. Unlike `toISOString()` it stays valid for years
 * above 9999 (ISO's `+010000`) and before year 1 (`BC`), and unlike pg's default serialisation it does not depend on
 * the process time zone.
 */
export function pgTimestamp(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new RangeError('Invalid time value');
  let y = d.getUTCFullYear();
  const bc = y <= 0;
  if (bc) y = 1 - y;
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${p(y, 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}+00${bc ? ' BC' : ''}`
  );
}

const ts = pgTimestamp;
const tsOrNull = (d: Date | null): string | null => (d ? pgTimestamp(d) : null);
const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

/** Per SQL text, computed once: its prepared statement name (a hash of the text) and whether it only selects rows. */
interface StatementInfo {
  name: string;
  /** SELECT or DELETE: its string parameters are only compared with stored values, never stored. */
  matchesOnly: boolean;
}
const statementInfo = new Map<string, StatementInfo>();
function infoOf(text: string): StatementInfo {
  let info = statementInfo.get(text);
  if (!info) {
    info = {
      name: `certplane_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`,
      matchesOnly: /^\s*(SELECT|DELETE)\b/i.test(text),
    };
    statementInfo.set(text, info);
  }
  return info;
}

const hasNul = (v: unknown): boolean =>
  (typeof v === 'string' && v.includes('\u0000')) || (Array.isArray(v) && v.some((e) => typeof e === 'string' && e.includes('\u0000')));

/**
 * PostgreSQL text cannot hold U+0000 (SQLite's can), so no stored value contains one, and a value that does can
 * match nothing (the API even uses "\u0000" as a name that matches no zone). In a statement that only compares
 * parameters with stored values, such a parameter becomes NULL (`col = NULL` matches no row) and such an array
 * element is dropped (`= ANY` / `<> ALL` of a value that never matches): the result is SQLite's, where sending the
 * value would be an error. Statements that store values are left alone: PostgreSQL refuses them.
 */
function withoutNul(values: unknown[]): unknown[] {
  return values.map((v) => {
    if (typeof v === 'string') return v.includes('\u0000') ? null : v;
    if (Array.isArray(v)) return v.filter((e) => !(typeof e === 'string' && e.includes('\u0000')));
    return v;
  });
}

/**
 * jsonb stores object keys in its own order (shorter keys first), so policies are rebuilt in the domain's key order:
 * a token read back serialises exactly as it was written (as it does from SQLite's JSON text). Unknown keys are kept,
 * after the known ones.
 */
function canonicalPolicies(v: unknown): TokenPolicy[] {
  if (!Array.isArray(v)) return v as TokenPolicy[];
  return v.map((p: Record<string, unknown>) => {
    if (p === null || typeof p !== 'object' || Array.isArray(p)) return p as unknown as TokenPolicy;
    const { permissions, scopes, ...rest } = p;
    const out: Record<string, unknown> = {};
    if ('permissions' in p) out.permissions = permissions;
    if ('scopes' in p) {
      out.scopes = Array.isArray(scopes)
        ? scopes.map((s: Record<string, unknown>) => {
            if (s === null || typeof s !== 'object' || Array.isArray(s)) return s;
            const { type, id, ...more } = s;
            const o: Record<string, unknown> = {};
            if ('type' in s) o.type = type;
            if ('id' in s) o.id = id;
            return { ...o, ...more } as Scope;
          })
        : scopes;
    }
    return { ...out, ...rest } as unknown as TokenPolicy;
  });
}

/** pg gives timestamptz as Date, booleans as booleans, jsonb parsed, and int8 as numbers (store.ts's TYPES) or text. */
const mappers = createRowMappers({
  date: (v) => (v instanceof Date ? v : new Date(v as string)),
  bool: (v) => v === true,
  boolOrNull: (v) => (v === null || v === undefined ? null : v === true),
  json: <T>(v: unknown): T => v as T,
  num,
  policies: canonicalPolicies,
});

// ---- SQL (module constants: one text, hence one prepared statement name, per query) ----

const ZONE_COLUMNS = 'id, name, account_id, china_network, aop_enabled, status, created_at, modified_at';
/**
 * $1: no name filter; $2: the name. Visibility as in SQLite: no filter when both lists ($3 accounts, $4 zone ids) are
 * NULL; otherwise zones of the accounts OR with the ids. (The name filter has its own flag so that a name that can
 * match nothing, sent as NULL, still filters everything out.)
 */
const ZONES_WHERE = `WHERE ($1::boolean OR name = $2::text)
  AND (($3::text[] IS NULL AND $4::text[] IS NULL) OR account_id = ANY($3::text[]) OR id = ANY($4::text[]))`;

const SQL = {
  insertAccount: 'INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)',
  getAccount: 'SELECT * FROM accounts WHERE id = $1',
  listAccounts: 'SELECT * FROM accounts ORDER BY created_at, id',

  insertZone: `INSERT INTO zones (${ZONE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
  updateZone: `UPDATE zones SET name = $2, account_id = $3, china_network = $4, aop_enabled = $5, status = $6,
    modified_at = $7 WHERE id = $1`,
  getZone: 'SELECT * FROM zones WHERE id = $1',
  getZoneByName: 'SELECT * FROM zones WHERE name = $1',
  getZonesByNames: 'SELECT * FROM zones WHERE name = ANY($1::text[])',
  countZones: `SELECT count(*) AS n FROM zones ${ZONES_WHERE}`,
  listZones: `SELECT * FROM zones ${ZONES_WHERE} ORDER BY name LIMIT $5 OFFSET $6`,

  insertUser: 'INSERT INTO users (id, email, api_key_hash, created_at) VALUES ($1, $2, $3, $4)',
  getUser: 'SELECT * FROM users WHERE id = $1',
  getUserByEmail: 'SELECT * FROM users WHERE email = $1',
  listUsers: 'SELECT * FROM users ORDER BY email',
  addMembership: 'INSERT INTO memberships (account_id, user_id) VALUES ($1, $2) ON CONFLICT (account_id, user_id) DO NOTHING',
  listMemberships: 'SELECT account_id FROM memberships WHERE user_id = $1 ORDER BY account_id',

  insertToken: `INSERT INTO tokens (id, name, secret_hash, status, policies, not_before, expires_on, created_at, revoked_at)
    VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9)`,
  updateToken: `UPDATE tokens SET name = $2, secret_hash = $3, status = $4, policies = $5::jsonb, not_before = $6,
    expires_on = $7, revoked_at = $8 WHERE id = $1`,
  getToken: 'SELECT * FROM tokens WHERE id = $1',
  getTokenBySecretHash: 'SELECT * FROM tokens WHERE secret_hash = $1',
  listTokens: 'SELECT * FROM tokens ORDER BY created_at, id',

  getMeta: 'SELECT value FROM meta WHERE key = $1',
  setMeta: 'INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value',

  insertAopCert: `INSERT INTO aop_certificates (id, zone_id, kind, certificate, private_key_sealed, fingerprint_sha256, issuer,
      serial_number, signature, expires_on, uploaded_on, updated_at, status, status_changed_at, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
  updateAopCert: `UPDATE aop_certificates SET certificate = $4, private_key_sealed = $5, fingerprint_sha256 = $6, issuer = $7,
      serial_number = $8, signature = $9, expires_on = $10, uploaded_on = $11, updated_at = $12, status = $13,
      status_changed_at = $14, version = $15
    WHERE id = $1 AND zone_id = $2 AND kind = $3`,
  getAopCert: 'SELECT * FROM aop_certificates WHERE id = $1 AND zone_id = $2 AND kind = $3',
  findAopCert: 'SELECT * FROM aop_certificates WHERE id = $1',
  getAopCertByFingerprint: 'SELECT * FROM aop_certificates WHERE zone_id = $1 AND kind = $2 AND fingerprint_sha256 = $3',
  listAopCerts: `SELECT * FROM aop_certificates WHERE zone_id = $1 AND kind = $2 AND status <> ALL($3::text[])
    ORDER BY uploaded_on DESC, id`,
  countAopCerts: 'SELECT count(*) AS n FROM aop_certificates WHERE zone_id = $1 AND kind = $2 AND status <> ALL($3::text[])',
  purgeAopCert: 'DELETE FROM aop_certificates WHERE id = $1',
  aopCertsAfter: 'SELECT * FROM aop_certificates WHERE id > $1 ORDER BY id LIMIT $2',

  getAssociation: 'SELECT * FROM aop_associations WHERE zone_id = $1 AND hostname = $2',
  getAssociations: 'SELECT * FROM aop_associations WHERE zone_id = $1 AND hostname = ANY($2::text[])',
  // One statement for a whole PUT: the rows as parallel arrays. ON CONFLICT cannot touch a row twice in one
  // statement, which the domain guarantees (hostnames are unique within a request).
  upsertAssociations: `INSERT INTO aop_associations (zone_id, hostname, cert_id, enabled, status, status_changed_at, version,
      created_at, updated_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::text[], $6::timestamptz[], $7::bigint[],
      $8::timestamptz[], $9::timestamptz[])
    ON CONFLICT (zone_id, hostname) DO UPDATE SET cert_id = EXCLUDED.cert_id, enabled = EXCLUDED.enabled,
      status = EXCLUDED.status, status_changed_at = EXCLUDED.status_changed_at, version = EXCLUDED.version,
      created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at`,
  purgeAssociation: 'DELETE FROM aop_associations WHERE zone_id = $1 AND hostname = $2',
  countAssociations: `SELECT count(*) AS n FROM aop_associations
    WHERE zone_id = $1 AND ($2::text[] IS NULL OR status = ANY($2::text[]))`,
  listAssociations: `SELECT * FROM aop_associations WHERE zone_id = $1 AND ($2::text[] IS NULL OR status = ANY($2::text[]))
    ORDER BY hostname LIMIT $3 OFFSET $4`,
  countLiveAssociations: `SELECT count(*) AS n FROM aop_associations WHERE cert_id = $1 AND enabled IS NOT NULL
    AND status NOT IN ('pending_deletion', 'deleted')`,
  // The deployer's work queues. They run inside the deployer's write transaction on every API node: FOR UPDATE SKIP
  // LOCKED hands each row to one node only (a row another transaction has locked is skipped, not waited for).
  // The extra sort keys only make ties deterministic.
  certsInStatus: `SELECT * FROM aop_certificates WHERE status = ANY($1::text[]) AND status_changed_at <= $2
    ORDER BY status_changed_at, id LIMIT $3 FOR UPDATE SKIP LOCKED`,
  associationsInStatus: `SELECT * FROM aop_associations WHERE status = ANY($1::text[]) AND status_changed_at <= $2
    ORDER BY status_changed_at, zone_id, hostname LIMIT $3 FOR UPDATE SKIP LOCKED`,
  rolloutsInStatus: `SELECT * FROM access_settings_rollouts WHERE status = $1 AND status_changed_at <= $2
    ORDER BY status_changed_at, scope_type, scope_id LIMIT $3 FOR UPDATE SKIP LOCKED`,

  insertAccessCert: `INSERT INTO access_certificates (id, scope_type, scope_id, account_id, name, certificate, fingerprint_sha256,
      fingerprint_md5, associated_hostnames, expires_on, created_at, updated_at, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13)`,
  updateAccessCert: `UPDATE access_certificates SET name = $2, associated_hostnames = $3::jsonb, updated_at = $4, version = $5
    WHERE id = $1`,
  deleteAccessCert: 'DELETE FROM access_certificates WHERE id = $1',
  getAccessCert: 'SELECT * FROM access_certificates WHERE id = $1 AND scope_type = $2 AND scope_id = $3',
  getAccessCertByFingerprint: 'SELECT * FROM access_certificates WHERE scope_type = $1 AND scope_id = $2 AND fingerprint_sha256 = $3',
  countAccessCerts: 'SELECT count(*) AS n FROM access_certificates WHERE scope_type = $1 AND scope_id = $2',
  listAccessCerts: `SELECT * FROM access_certificates WHERE scope_type = $1 AND scope_id = $2
    ORDER BY created_at, id LIMIT $3 OFFSET $4`,
  countAccountAccessCerts: 'SELECT count(*) AS n FROM access_certificates WHERE account_id = $1',

  listSettings: 'SELECT * FROM access_settings WHERE scope_type = $1 AND scope_id = $2 ORDER BY hostname',
  upsertSetting: `INSERT INTO access_settings (scope_type, scope_id, hostname, china_network, client_certificate_forwarding,
      updated_at, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (scope_type, scope_id, hostname) DO UPDATE SET china_network = EXCLUDED.china_network,
      client_certificate_forwarding = EXCLUDED.client_certificate_forwarding, updated_at = EXCLUDED.updated_at,
      version = EXCLUDED.version`,
  deleteSetting: 'DELETE FROM access_settings WHERE scope_type = $1 AND scope_id = $2 AND hostname = $3',
  getRollout: 'SELECT * FROM access_settings_rollouts WHERE scope_type = $1 AND scope_id = $2',
  putRollout: `INSERT INTO access_settings_rollouts (scope_type, scope_id, status, status_changed_at, version)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (scope_type, scope_id) DO UPDATE SET status = EXCLUDED.status,
      status_changed_at = EXCLUDED.status_changed_at, version = EXCLUDED.version`,

  // One statement for a pass's events; ids follow the arrays' order (the ORDER BY of the ordinality).
  recordEvents: `INSERT INTO lifecycle_events (subject_kind, subject_id, from_status, to_status, version, at)
    SELECT kind, id, from_status, to_status, version, at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[])
      WITH ORDINALITY AS e(kind, id, from_status, to_status, version, at, n)
    ORDER BY n`,
  listEvents: 'SELECT * FROM lifecycle_events WHERE subject_kind = $1 AND subject_id = $2 ORDER BY id',

  // The data plane. hostname, zone_id and id are COLLATE "C" in the schema: ORDER BY is binary, as in SQLite.
  upsertEdgeHostname: `INSERT INTO edge_hostnames (hostname, zone_id, origin_address, origin_port, origin_tls, origin_sni,
      origin_ca_pem, server_certificate, server_key_sealed, created_at, updated_at, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (hostname) DO UPDATE SET zone_id = EXCLUDED.zone_id, origin_address = EXCLUDED.origin_address,
      origin_port = EXCLUDED.origin_port, origin_tls = EXCLUDED.origin_tls, origin_sni = EXCLUDED.origin_sni,
      origin_ca_pem = EXCLUDED.origin_ca_pem, server_certificate = EXCLUDED.server_certificate,
      server_key_sealed = EXCLUDED.server_key_sealed, created_at = EXCLUDED.created_at,
      updated_at = EXCLUDED.updated_at, version = EXCLUDED.version`,
  getEdgeHostname: 'SELECT * FROM edge_hostnames WHERE hostname = $1',
  deleteEdgeHostname: 'DELETE FROM edge_hostnames WHERE hostname = $1',
  listEdgeHostnames: 'SELECT * FROM edge_hostnames ORDER BY hostname',
  listEdgeHostnamesOfZone: 'SELECT * FROM edge_hostnames WHERE zone_id = $1 ORDER BY hostname',

  insertEdgeNode: `INSERT INTO edge_nodes (id, name, secret_hash, registered_at, last_seen_at, acked_version, revoked_at, healthy, health_reason)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
  updateEdgeNode: `UPDATE edge_nodes SET name = $2, secret_hash = $3, registered_at = $4, last_seen_at = $5,
    acked_version = $6, revoked_at = $7, healthy = $8, health_reason = $9 WHERE id = $1`,
  getEdgeNode: 'SELECT * FROM edge_nodes WHERE id = $1',
  getEdgeNodeBySecretHash: 'SELECT * FROM edge_nodes WHERE secret_hash = $1',
  listEdgeNodes: 'SELECT * FROM edge_nodes ORDER BY registered_at, id',

  deleteEdgeFailures: 'DELETE FROM edge_failures WHERE edge_id = $1',
  // Every failure of the report in one statement (one round trip however many hostnames failed).
  insertEdgeFailures: `INSERT INTO edge_failures (edge_id, version, hostname, reason)
    SELECT $1::text, $2::bigint, f.hostname, f.reason FROM unnest($3::text[], $4::text[]) AS f (hostname, reason)`,
  listEdgeFailures: 'SELECT * FROM edge_failures WHERE edge_id = $1 ORDER BY hostname',

  recordChange: 'INSERT INTO config_changes (version, scope_type, scope_id) VALUES ($1, $2, $3)',
  listChanges: `SELECT version, scope_type, scope_id FROM config_changes WHERE version > $1::bigint AND version <= $2::bigint
    ORDER BY version, id`,

  // One row, updated in place: versions are allocated in commit order, and every writer that allocates one
  // serialises on this row (by design: the data plane reads changes in version order, so a version must never become
  // visible before a smaller one).
  // pg_notify is delivered only if and when the transaction commits: a wake-up for every node's edge feed.
  nextVersion:
    "WITH v AS (UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version) SELECT version, pg_notify('certplane_config', version::text) FROM v",
  currentVersion: 'SELECT version FROM config_version WHERE id = 1',
  // For src/storage/copy.ts (ahead of the port: added to TenancyRepo / Repos by whoever lands copy.ts).
  listMeta: 'SELECT key, value FROM meta ORDER BY key',
  advisoryLock: 'SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))',
  tryAdvisoryLock: 'SELECT pg_try_advisory_xact_lock(hashtextextended($1::text, 0)) AS locked',
  advanceVersionTo: 'UPDATE config_version SET version = GREATEST(version, $1::bigint) WHERE id = 1',
} as const;

/** The arrays of a bulk statement over `unnest(...)`: one array per field, in the rows' order. */
const columns = <T>(list: T[], ...fields: ((row: T) => unknown)[]): unknown[][] => fields.map((f) => list.map(f));

export function createPostgresRepos(db: Queryable, opts: PostgresReposOptions = {}): Repos {
  const prepared = opts.preparedStatements !== false;
  const run = async (text: string, values: unknown[] = []): Promise<Row[]> => {
    const info = infoOf(text);
    if (info.matchesOnly && values.some(hasNul)) values = withoutNul(values);
    const config: QueryConfig = prepared ? { name: info.name, text, values } : { text, values };
    return (await db.query<Row>(config)).rows;
  };
  const exec = async (text: string, values: unknown[]): Promise<void> => {
    await run(text, values);
  };
  const one = async <T>(text: string, map: (r: Row) => T, values: unknown[]): Promise<T | null> => {
    const rows = await run(text, values);
    return rows.length > 0 ? map(rows[0]) : null;
  };
  const all = async <T>(text: string, map: (r: Row) => T, values: unknown[] = []): Promise<T[]> =>
    (await run(text, values)).map(map);
  const count = async (text: string, values: unknown[]): Promise<number> => num((await run(text, values))[0].n);

  const tenancy: TenancyRepo = {
    insertAccount: (a) => exec(SQL.insertAccount, [a.id, a.name, ts(a.createdAt)]),
    getAccount: (id) => one(SQL.getAccount, mappers.toAccount, [id]),
    listAccounts: () => all(SQL.listAccounts, mappers.toAccount),

    insertZone: (z) => exec(SQL.insertZone, zoneParams(z)),
    updateZone: (z) =>
      exec(SQL.updateZone, [z.id, z.name, z.accountId, z.chinaNetwork, z.aopEnabled, z.status, ts(z.modifiedAt)]),
    getZone: (id) => one(SQL.getZone, mappers.toZone, [id]),
    getZoneByName: (name) => one(SQL.getZoneByName, mappers.toZone, [name]),
    getZonesByNames: (names) => all(SQL.getZonesByNames, mappers.toZone, [names]),
    async listZones(zq: ZoneQuery, page: PageRequest): Promise<Page<Zone>> {
      const params = [zq.name === undefined || zq.name === null, zq.name ?? null, zq.accountIds ?? null, zq.zoneIds ?? null];
      return {
        totalCount: await count(SQL.countZones, params),
        items: await all(SQL.listZones, mappers.toZone, [...params, page.perPage, offset(page)]),
      };
    },

    insertUser: (u) => exec(SQL.insertUser, [u.id, u.email, u.apiKeyHash, ts(u.createdAt)]),
    getUser: (id) => one(SQL.getUser, mappers.toUser, [id]),
    getUserByEmail: (email) => one(SQL.getUserByEmail, mappers.toUser, [email]),
    listUsers: () => all(SQL.listUsers, mappers.toUser),
    addMembership: (accountId, userId) => exec(SQL.addMembership, [accountId, userId]),
    listMemberships: (userId) => all(SQL.listMemberships, (r) => r.account_id as string, [userId]),

    insertToken: (t) => exec(SQL.insertToken, [...tokenParams(t), ts(t.createdAt), tsOrNull(t.revokedAt)]),
    updateToken: (t) => exec(SQL.updateToken, [...tokenParams(t), tsOrNull(t.revokedAt)]),
    getToken: (id) => one(SQL.getToken, mappers.toToken, [id]),
    getTokenBySecretHash: (hash) => one(SQL.getTokenBySecretHash, mappers.toToken, [hash]),
    listTokens: () => all(SQL.listTokens, mappers.toToken),

    getMeta: (key) => one(SQL.getMeta, (r) => r.value as string, [key]),
    setMeta: (key, value) => exec(SQL.setMeta, [key, value]),
    listMeta: () => all(SQL.listMeta, (r): [string, string] => [r.key as string, r.value as string]),
  };

  const aop: AopRepo = {
    insertCertificate: (c) => exec(SQL.insertAopCert, aopParams(c)),
    updateCertificate: (c) => exec(SQL.updateAopCert, aopParams(c)),
    getCertificate: (zoneId, kind, id) => one(SQL.getAopCert, mappers.toAopCert, [id, zoneId, kind]),
    findCertificateById: (id) => one(SQL.findAopCert, mappers.toAopCert, [id]),
    getCertificateByFingerprint: (zoneId, kind, fp) => one(SQL.getAopCertByFingerprint, mappers.toAopCert, [zoneId, kind, fp]),
    listCertificates: (zoneId, kind, exclude) => all(SQL.listAopCerts, mappers.toAopCert, [zoneId, kind, exclude]),
    countCertificates: (zoneId, kind, exclude) => count(SQL.countAopCerts, [zoneId, kind, exclude]),
    purgeCertificate: (id) => exec(SQL.purgeAopCert, [id]),
    listCertificatesAfter: (afterId, limit) => all(SQL.aopCertsAfter, mappers.toAopCert, [afterId, limit]),

    getAssociation: (zoneId, hostname) => one(SQL.getAssociation, mappers.toAssociation, [zoneId, hostname]),
    getAssociations: (zoneId, hostnames) => all(SQL.getAssociations, mappers.toAssociation, [zoneId, hostnames]),
    async upsertAssociations(list) {
      if (list.length === 0) return;
      await exec(
        SQL.upsertAssociations,
        columns(list, (a) => a.zoneId, (a) => a.hostname, (a) => a.certId, (a) => a.enabled, (a) => a.status,
          (a) => ts(a.statusChangedAt), (a) => a.version, (a) => ts(a.createdAt), (a) => ts(a.updatedAt)),
      );
    },
    // One statement for one row or many.
    upsertAssociation: (a) => aop.upsertAssociations([a]),
    purgeAssociation: (zoneId, hostname) => exec(SQL.purgeAssociation, [zoneId, hostname]),
    async listAssociations(zoneId, statuses, page) {
      const params = [zoneId, statuses ?? null];
      return {
        totalCount: await count(SQL.countAssociations, params),
        items: await all(SQL.listAssociations, mappers.toAssociation, [...params, page.perPage, offset(page)]),
      };
    },
    countLiveAssociations: (certId) => count(SQL.countLiveAssociations, [certId]),
    listCertificatesInStatus: (statuses, before, limit) =>
      all(SQL.certsInStatus, mappers.toAopCert, [statuses, ts(before), limit]),
    listAssociationsInStatus: (statuses, before, limit) =>
      all(SQL.associationsInStatus, mappers.toAssociation, [statuses, ts(before), limit]),
  };

  const access: AccessRepo = {
    insertCertificate: (c) =>
      exec(SQL.insertAccessCert, [
        c.id,
        c.scopeType,
        c.scopeId,
        c.accountId,
        c.name,
        c.certificate,
        c.fingerprintSha256,
        c.fingerprintMd5,
        JSON.stringify(c.associatedHostnames),
        ts(c.expiresOn),
        ts(c.createdAt),
        ts(c.updatedAt),
        c.version,
      ]),
    updateCertificate: (c) =>
      exec(SQL.updateAccessCert, [c.id, c.name, JSON.stringify(c.associatedHostnames), ts(c.updatedAt), c.version]),
    deleteCertificate: (id) => exec(SQL.deleteAccessCert, [id]),
    getCertificate: (scopeType, scopeId, id) => one(SQL.getAccessCert, mappers.toAccessCert, [id, scopeType, scopeId]),
    getCertificateByFingerprint: (scopeType, scopeId, fp) =>
      one(SQL.getAccessCertByFingerprint, mappers.toAccessCert, [scopeType, scopeId, fp]),
    async listCertificates(scopeType, scopeId, page) {
      return {
        totalCount: await count(SQL.countAccessCerts, [scopeType, scopeId]),
        items: await all(SQL.listAccessCerts, mappers.toAccessCert, [scopeType, scopeId, page.perPage, offset(page)]),
      };
    },
    countAccountCertificates: (accountId) => count(SQL.countAccountAccessCerts, [accountId]),

    listSettings: (scopeType, scopeId) => all(SQL.listSettings, mappers.toSetting, [scopeType, scopeId]),
    upsertSetting: (s) =>
      exec(SQL.upsertSetting, [
        s.scopeType,
        s.scopeId,
        s.hostname,
        s.chinaNetwork,
        s.clientCertificateForwarding,
        ts(s.updatedAt),
        s.version,
      ]),
    deleteSetting: (scopeType, scopeId, hostname) => exec(SQL.deleteSetting, [scopeType, scopeId, hostname]),
    getSettingsRollout: (scopeType, scopeId) => one(SQL.getRollout, mappers.toRollout, [scopeType, scopeId]),
    putSettingsRollout: (r) => exec(SQL.putRollout, [r.scopeType, r.scopeId, r.status, ts(r.statusChangedAt), r.version]),
    listSettingsRolloutsInStatus: (status, before, limit) =>
      all(SQL.rolloutsInStatus, mappers.toRollout, [status, ts(before), limit]),
  };

  const events: EventRepo = {
    async record(list) {
      if (list.length === 0) return;
      await exec(
        SQL.recordEvents,
        columns(list, (e) => e.subjectKind, (e) => e.subjectId, (e) => e.fromStatus, (e) => e.toStatus, (e) => e.version, (e) => ts(e.at)),
      );
    },
    listForSubject: (kind, id) => all(SQL.listEvents, mappers.toEvent, [kind, id]),
  };

  const edge: EdgeRepo = {
    upsertHostname: (h) => exec(SQL.upsertEdgeHostname, edgeHostnameParams(h)),
    getHostname: (hostname) => one(SQL.getEdgeHostname, mappers.toEdgeHostname, [hostname]),
    deleteHostname: (hostname) => exec(SQL.deleteEdgeHostname, [hostname]),
    listHostnames: () => all(SQL.listEdgeHostnames, mappers.toEdgeHostname),
    listHostnamesOfZone: (zoneId) => all(SQL.listEdgeHostnamesOfZone, mappers.toEdgeHostname, [zoneId]),

    insertNode: (n) => exec(SQL.insertEdgeNode, edgeNodeParams(n)),
    updateNode: (n) => exec(SQL.updateEdgeNode, edgeNodeParams(n)),
    getNode: (id) => one(SQL.getEdgeNode, mappers.toEdgeNode, [id]),
    getNodeBySecretHash: (hash) => one(SQL.getEdgeNodeBySecretHash, mappers.toEdgeNode, [hash]),
    listNodes: () => all(SQL.listEdgeNodes, mappers.toEdgeNode),

    async putFailures(edgeId, version, failures) {
      await exec(SQL.deleteEdgeFailures, [edgeId]);
      if (failures.length === 0) return;
      await exec(SQL.insertEdgeFailures, [edgeId, version, failures.map((f) => f.hostname), failures.map((f) => f.reason)]);
    },
    listFailures: (edgeId) => all(SQL.listEdgeFailures, mappers.toEdgeFailure, [edgeId]),

    recordChange: (c) => exec(SQL.recordChange, [c.version, c.scopeType, c.scopeId]),
    listChanges: (after, upTo) => all(SQL.listChanges, mappers.toChange, [after, upTo]),
  };

  /** Advisory locks keyed by (kind, id), released at commit or rollback; they need no row to exist. */
  const lock = (kind: string) => async (id: string) => {
    await run(SQL.advisoryLock, [`${kind}:${id}`]);
  };

  return {
    advanceVersionTo: (version: number): Promise<void> => exec(SQL.advanceVersionTo, [version]),
    locks: {
      zone: lock('zone'),
      tryZone: async (id: string) => (await run(SQL.tryAdvisoryLock, [`zone:${id}`]))[0].locked === true,
      account: lock('account'),
      named: lock('named'),
    },
    tenancy,
    aop,
    access,
    events,
    edge,
    nextVersion: async () => num((await run(SQL.nextVersion))[0].version),
    currentVersion: async () => num((await run(SQL.currentVersion))[0].version),
  };
}

function zoneParams(z: Zone): unknown[] {
  return [z.id, z.name, z.accountId, z.chinaNetwork, z.aopEnabled, z.status, ts(z.createdAt), ts(z.modifiedAt)];
}

/** id, name, secret_hash, status, policies, not_before, expires_on (shared by insert and update). */
function tokenParams(t: ApiToken): unknown[] {
  return [t.id, t.name, t.secretHash, t.status, JSON.stringify(t.policies), tsOrNull(t.notBefore), tsOrNull(t.expiresOn)];
}

function aopParams(c: AopCertificate): unknown[] {
  return [
    c.id,
    c.zoneId,
    c.kind,
    c.certificate,
    c.privateKeySealed,
    c.fingerprintSha256,
    c.issuer,
    c.serialNumber,
    c.signature,
    ts(c.expiresOn),
    ts(c.uploadedOn),
    ts(c.updatedAt),
    c.status,
    ts(c.statusChangedAt),
    c.version,
  ];
}

function edgeHostnameParams(h: EdgeHostname): unknown[] {
  return [
    h.hostname,
    h.zoneId,
    h.originAddress,
    h.originPort,
    h.originTls,
    h.originSni,
    h.originCaPem,
    h.serverCertificate,
    h.serverKeySealed,
    ts(h.createdAt),
    ts(h.updatedAt),
    h.version,
  ];
}

/** id, name, secret_hash, registered_at, last_seen_at, acked_version, revoked_at, healthy, health_reason (insert and update). */
function edgeNodeParams(n: EdgeNode): unknown[] {
  return [n.id, n.name, n.secretHash, ts(n.registeredAt), tsOrNull(n.lastSeenAt), n.ackedVersion, tsOrNull(n.revokedAt), n.healthy, n.healthReason];
}

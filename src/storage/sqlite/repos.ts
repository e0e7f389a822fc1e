/** SQLite implementations of the domain's repositories: plain SQL, statements prepared once. */
import type Database from 'better-sqlite3';
import type {
  AccessCertificate,
  Account,
  ApiToken,
  AopCertificate,
  EdgeHostname,
  EdgeNode,
  Page,
  PageRequest,
  Zone,
} from '../../domain/model.js';
import type { AccessRepo, AopRepo, EdgeRepo, EventRepo, Repos, TenancyRepo, ZoneQuery } from '../../domain/ports.js';
import { createRowMappers, offset, type Row } from '../rows.js';
import { parseIso, toIso } from '../../util/time.js';

const iso = toIso;
const isoOrNull = (d: Date | null): string | null => (d ? toIso(d) : null);

/** SQLite gives times as ISO text, booleans as 0/1, JSON columns as text and integers as numbers. */
const bool = (v: unknown): boolean => v === 1 || v === true;
const mappers = createRowMappers({
  date: (v) => parseIso(v as string),
  bool,
  boolOrNull: (v) => (v === null ? null : bool(v)),
  json: <T>(v: unknown): T => JSON.parse(v as string) as T,
  num: (v) => v as number,
});

/** Prepares each SQL text once and reuses it. */
function statements(db: Database.Database) {
  const cache = new Map<string, Database.Statement>();
  return (sql: string): Database.Statement => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
}

/** `IN (...)` over a list of statuses, as a JSON array so one prepared statement serves any list. */
const IN_STATUSES = 'IN (SELECT value FROM json_each(:statuses))';

/**
 * Prepares each query once, in raw mode (rows as arrays), with a function that turns a row into a `Row` object.
 * better-sqlite3 builds row objects through V8's C++ API, one property at a time; building them in JavaScript from
 * the arrays is faster (rows of a page of 1,000 associations: 2.9 → 1.7 ms; one row: 5.0 → 4.2 µs).
 */
function readers(db: Database.Database) {
  const cache = new Map<string, { stmt: Database.Statement; toRow: (values: unknown[]) => Row }>();
  return (sql: string) => {
    let r = cache.get(sql);
    if (!r) {
      const stmt = db.prepare(sql).raw(true);
      const names = stmt.columns().map((c) => c.name);
      const toRow = (values: unknown[]): Row => {
        const row: Row = {};
        for (let i = 0; i < names.length; i++) row[names[i]] = values[i];
        return row;
      };
      r = { stmt, toRow };
      cache.set(sql, r);
    }
    return r;
  };
}

export function createSqliteRepos(db: Database.Database): Repos {
  const q = statements(db);
  const read = readers(db);
  const one = <T>(sql: string, map: (r: Row) => T, params: unknown = {}): T | null => {
    const { stmt, toRow } = read(sql);
    const values = stmt.get(params) as unknown[] | undefined;
    return values ? map(toRow(values)) : null;
  };
  const all = <T>(sql: string, map: (r: Row) => T, params: unknown = {}): T[] => {
    const { stmt, toRow } = read(sql);
    return (stmt.all(params) as unknown[][]).map((values) => map(toRow(values)));
  };
  const count = (sql: string, params: unknown): number => (read(sql).stmt.get(params) as [number])[0];

  const tenancy: TenancyRepo = {
    async insertAccount(a: Account) {
      q('INSERT INTO accounts (id, name, created_at) VALUES (:id, :name, :created_at)').run({
        id: a.id,
        name: a.name,
        created_at: iso(a.createdAt),
      });
    },
    getAccount: async (id) => one('SELECT * FROM accounts WHERE id = :id', mappers.toAccount, { id }),
    listAccounts: async () => all('SELECT * FROM accounts ORDER BY created_at, id', mappers.toAccount),

    async insertZone(z) {
      q(`INSERT INTO zones (id, name, account_id, china_network, aop_enabled, status, created_at, modified_at)
         VALUES (:id, :name, :account_id, :china_network, :aop_enabled, :status, :created_at, :modified_at)`).run(zoneParams(z));
    },
    async updateZone(z) {
      q(`UPDATE zones SET name = :name, account_id = :account_id, china_network = :china_network,
         aop_enabled = :aop_enabled, status = :status, modified_at = :modified_at WHERE id = :id`).run(zoneParams(z));
    },
    getZone: async (id) => one('SELECT * FROM zones WHERE id = :id', mappers.toZone, { id }),
    getZoneByName: async (name) => one('SELECT * FROM zones WHERE name = :name', mappers.toZone, { name }),
    getZonesByNames: async (names) =>
      all('SELECT * FROM zones WHERE name IN (SELECT value FROM json_each(:names))', mappers.toZone, {
        names: JSON.stringify(names),
      }),
    async listZones(zq: ZoneQuery, page: PageRequest): Promise<Page<Zone>> {
      const where = `WHERE (:name IS NULL OR name = :name)
        AND ((:accounts IS NULL AND :zones IS NULL)
          OR account_id IN (SELECT value FROM json_each(coalesce(:accounts, '[]')))
          OR id IN (SELECT value FROM json_each(coalesce(:zones, '[]'))))`;
      const params = {
        name: zq.name ?? null,
        accounts: zq.accountIds ? JSON.stringify(zq.accountIds) : null,
        zones: zq.zoneIds ? JSON.stringify(zq.zoneIds) : null,
      };
      return {
        totalCount: count(`SELECT count(*) AS n FROM zones ${where}`, params),
        items: all(`SELECT * FROM zones ${where} ORDER BY name LIMIT :limit OFFSET :offset`, mappers.toZone, {
          ...params,
          limit: page.perPage,
          offset: offset(page),
        }),
      };
    },

    async insertUser(u) {
      q('INSERT INTO users (id, email, api_key_hash, created_at) VALUES (:id, :email, :api_key_hash, :created_at)').run({
        id: u.id,
        email: u.email,
        api_key_hash: u.apiKeyHash,
        created_at: iso(u.createdAt),
      });
    },
    getUser: async (id) => one('SELECT * FROM users WHERE id = :id', mappers.toUser, { id }),
    getUserByEmail: async (email) => one('SELECT * FROM users WHERE email = :email', mappers.toUser, { email }),
    listUsers: async () => all('SELECT * FROM users ORDER BY email', mappers.toUser),
    async addMembership(accountId, userId) {
      q('INSERT OR IGNORE INTO memberships (account_id, user_id) VALUES (:a, :u)').run({ a: accountId, u: userId });
    },
    listMemberships: async (userId) =>
      all('SELECT account_id FROM memberships WHERE user_id = :u ORDER BY account_id', (r) => r.account_id as string, { u: userId }),

    async insertToken(t) {
      q(`INSERT INTO tokens (id, name, secret_hash, status, policies, not_before, expires_on, created_at, revoked_at)
         VALUES (:id, :name, :secret_hash, :status, :policies, :not_before, :expires_on, :created_at, :revoked_at)`).run(tokenParams(t));
    },
    async updateToken(t) {
      q(`UPDATE tokens SET name = :name, secret_hash = :secret_hash, status = :status, policies = :policies,
         not_before = :not_before, expires_on = :expires_on, revoked_at = :revoked_at WHERE id = :id`).run(tokenParams(t));
    },
    getToken: async (id) => one('SELECT * FROM tokens WHERE id = :id', mappers.toToken, { id }),
    getTokenBySecretHash: async (hash) => one('SELECT * FROM tokens WHERE secret_hash = :hash', mappers.toToken, { hash }),
    listTokens: async () => all('SELECT * FROM tokens ORDER BY created_at, id', mappers.toToken),

    getMeta: async (key) => one('SELECT value FROM meta WHERE key = :key', (r) => r.value as string, { key }),
    listMeta: async () => all('SELECT key, value FROM meta ORDER BY key', (r): [string, string] => [r.key as string, r.value as string]),
    async setMeta(key, value) {
      q('INSERT INTO meta (key, value) VALUES (:key, :value) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run({ key, value });
    },
  };

  const aop: AopRepo = {
    async insertCertificate(c) {
      q(`INSERT INTO aop_certificates (id, zone_id, kind, certificate, private_key_sealed, fingerprint_sha256, issuer,
           serial_number, signature, expires_on, uploaded_on, updated_at, status, status_changed_at, version)
         VALUES (:id, :zone_id, :kind, :certificate, :private_key_sealed, :fingerprint_sha256, :issuer,
           :serial_number, :signature, :expires_on, :uploaded_on, :updated_at, :status, :status_changed_at, :version)`).run(aopParams(c));
    },
    async updateCertificate(c) {
      q(`UPDATE aop_certificates SET certificate = :certificate, private_key_sealed = :private_key_sealed,
           fingerprint_sha256 = :fingerprint_sha256, issuer = :issuer, serial_number = :serial_number,
           signature = :signature, expires_on = :expires_on, uploaded_on = :uploaded_on, updated_at = :updated_at,
           status = :status, status_changed_at = :status_changed_at, version = :version
         WHERE id = :id AND zone_id = :zone_id AND kind = :kind`).run(aopParams(c));
    },
    getCertificate: async (zoneId, kind, id) =>
      one('SELECT * FROM aop_certificates WHERE id = :id AND zone_id = :zone AND kind = :kind', mappers.toAopCert, {
        id,
        zone: zoneId,
        kind,
      }),
    findCertificateById: async (id) => one('SELECT * FROM aop_certificates WHERE id = :id', mappers.toAopCert, { id }),
    getCertificateByFingerprint: async (zoneId, kind, fp) =>
      one(
        'SELECT * FROM aop_certificates WHERE zone_id = :zone AND kind = :kind AND fingerprint_sha256 = :fp',
        mappers.toAopCert,
        { zone: zoneId, kind, fp },
      ),
    listCertificates: async (zoneId, kind, exclude) =>
      all(
        `SELECT * FROM aop_certificates WHERE zone_id = :zone AND kind = :kind
           AND status NOT IN (SELECT value FROM json_each(:statuses)) ORDER BY uploaded_on DESC, id`,
        mappers.toAopCert,
        { zone: zoneId, kind, statuses: JSON.stringify(exclude) },
      ),
    countCertificates: async (zoneId, kind, exclude) =>
      count(
        `SELECT count(*) AS n FROM aop_certificates WHERE zone_id = :zone AND kind = :kind
           AND status NOT IN (SELECT value FROM json_each(:statuses))`,
        { zone: zoneId, kind, statuses: JSON.stringify(exclude) },
      ),
    async purgeCertificate(id) {
      q('DELETE FROM aop_certificates WHERE id = :id').run({ id });
    },
    listCertificatesAfter: async (afterId, limit) =>
      all('SELECT * FROM aop_certificates WHERE id > :after ORDER BY id LIMIT :limit', mappers.toAopCert, {
        after: afterId,
        limit,
      }),

    getAssociation: async (zoneId, hostname) =>
      one('SELECT * FROM aop_associations WHERE zone_id = :zone AND hostname = :hostname', mappers.toAssociation, {
        zone: zoneId,
        hostname,
      }),
    getAssociations: async (zoneId, hostnames) =>
      all(
        'SELECT * FROM aop_associations WHERE zone_id = :zone AND hostname IN (SELECT value FROM json_each(:hostnames))',
        mappers.toAssociation,
        { zone: zoneId, hostnames: JSON.stringify(hostnames) },
      ),
    // In-process statements: a loop of one prepared upsert is as fast as one statement would be.
    async upsertAssociations(list) {
      for (const a of list) await aop.upsertAssociation(a);
    },
    async upsertAssociation(a) {
      q(`INSERT INTO aop_associations (zone_id, hostname, cert_id, enabled, status, status_changed_at, version, created_at, updated_at)
         VALUES (:zone_id, :hostname, :cert_id, :enabled, :status, :status_changed_at, :version, :created_at, :updated_at)
         ON CONFLICT (zone_id, hostname) DO UPDATE SET cert_id = excluded.cert_id, enabled = excluded.enabled,
           status = excluded.status, status_changed_at = excluded.status_changed_at, version = excluded.version,
           created_at = excluded.created_at, updated_at = excluded.updated_at`).run({
        zone_id: a.zoneId,
        hostname: a.hostname,
        cert_id: a.certId,
        enabled: a.enabled === null ? null : a.enabled ? 1 : 0,
        status: a.status,
        status_changed_at: iso(a.statusChangedAt),
        version: a.version,
        created_at: iso(a.createdAt),
        updated_at: iso(a.updatedAt),
      });
    },
    async purgeAssociation(zoneId, hostname) {
      q('DELETE FROM aop_associations WHERE zone_id = :zone AND hostname = :hostname').run({ zone: zoneId, hostname });
    },
    async listAssociations(zoneId, statuses, page) {
      // A statement per shape rather than `(:statuses IS NULL OR …)`: with the OR, SQLite cannot seek the
      // (zone_id, status, hostname) index and tests the status of every row of the zone (EXPLAIN QUERY PLAN; the
      // count took 2.2x as long). One status (the default filter is `active`) walks that index in hostname order, so
      // the rows an OFFSET skips are skipped in the index, without reading the table (page 20 of 50: 350 → 160 µs).
      const single = statuses?.length === 1;
      const params = !statuses ? { zone: zoneId } : single ? { zone: zoneId, status: statuses[0] } : { zone: zoneId, statuses: JSON.stringify(statuses) };
      const where = !statuses ? 'WHERE zone_id = :zone' : single ? 'WHERE zone_id = :zone AND status = :status' : `WHERE zone_id = :zone AND status ${IN_STATUSES}`;
      return {
        totalCount: count(`SELECT count(*) AS n FROM aop_associations ${where}`, params),
        items: all(
          `SELECT * FROM aop_associations ${where} ORDER BY hostname LIMIT :limit OFFSET :offset`,
          mappers.toAssociation,
          { ...params, limit: page.perPage, offset: offset(page) },
        ),
      };
    },
    countLiveAssociations: async (certId) =>
      count(
        `SELECT count(*) AS n FROM aop_associations WHERE cert_id = :cert AND enabled IS NOT NULL
           AND status NOT IN ('pending_deletion', 'deleted')`,
        { cert: certId },
      ),
    listCertificatesInStatus: async (statuses, before, limit) =>
      all(
        `SELECT * FROM aop_certificates WHERE status ${IN_STATUSES} AND status_changed_at <= :before
           ORDER BY status_changed_at LIMIT :limit`,
        mappers.toAopCert,
        { statuses: JSON.stringify(statuses), before: iso(before), limit },
      ),
    listAssociationsInStatus: async (statuses, before, limit) =>
      all(
        `SELECT * FROM aop_associations WHERE status ${IN_STATUSES} AND status_changed_at <= :before
           ORDER BY status_changed_at LIMIT :limit`,
        mappers.toAssociation,
        { statuses: JSON.stringify(statuses), before: iso(before), limit },
      ),
  };

  const access: AccessRepo = {
    async insertCertificate(c) {
      q(`INSERT INTO access_certificates (id, scope_type, scope_id, account_id, name, certificate, fingerprint_sha256,
           fingerprint_md5, associated_hostnames, expires_on, created_at, updated_at, version)
         VALUES (:id, :scope_type, :scope_id, :account_id, :name, :certificate, :fingerprint_sha256,
           :fingerprint_md5, :associated_hostnames, :expires_on, :created_at, :updated_at, :version)`).run(accessParams(c));
    },
    async updateCertificate(c) {
      q(`UPDATE access_certificates SET name = :name, associated_hostnames = :associated_hostnames,
           updated_at = :updated_at, version = :version WHERE id = :id`).run(accessParams(c));
    },
    async deleteCertificate(id) {
      q('DELETE FROM access_certificates WHERE id = :id').run({ id });
    },
    getCertificate: async (scopeType, scopeId, id) =>
      one(
        'SELECT * FROM access_certificates WHERE id = :id AND scope_type = :t AND scope_id = :s',
        mappers.toAccessCert,
        { id, t: scopeType, s: scopeId },
      ),
    getCertificateByFingerprint: async (scopeType, scopeId, fp) =>
      one(
        'SELECT * FROM access_certificates WHERE scope_type = :t AND scope_id = :s AND fingerprint_sha256 = :fp',
        mappers.toAccessCert,
        { t: scopeType, s: scopeId, fp },
      ),
    async listCertificates(scopeType, scopeId, page) {
      const params = { t: scopeType, s: scopeId };
      return {
        totalCount: count('SELECT count(*) AS n FROM access_certificates WHERE scope_type = :t AND scope_id = :s', params),
        items: all(
          `SELECT * FROM access_certificates WHERE scope_type = :t AND scope_id = :s
             ORDER BY created_at, id LIMIT :limit OFFSET :offset`,
          mappers.toAccessCert,
          { ...params, limit: page.perPage, offset: offset(page) },
        ),
      };
    },
    countAccountCertificates: async (accountId) =>
      count('SELECT count(*) AS n FROM access_certificates WHERE account_id = :a', { a: accountId }),

    listSettings: async (scopeType, scopeId) =>
      all('SELECT * FROM access_settings WHERE scope_type = :t AND scope_id = :s ORDER BY hostname', mappers.toSetting, {
        t: scopeType,
        s: scopeId,
      }),
    async upsertSetting(s) {
      q(`INSERT INTO access_settings (scope_type, scope_id, hostname, china_network, client_certificate_forwarding, updated_at, version)
         VALUES (:t, :s, :hostname, :china, :fwd, :updated_at, :version)
         ON CONFLICT (scope_type, scope_id, hostname) DO UPDATE SET china_network = excluded.china_network,
           client_certificate_forwarding = excluded.client_certificate_forwarding, updated_at = excluded.updated_at,
           version = excluded.version`).run({
        t: s.scopeType,
        s: s.scopeId,
        hostname: s.hostname,
        china: s.chinaNetwork ? 1 : 0,
        fwd: s.clientCertificateForwarding ? 1 : 0,
        updated_at: iso(s.updatedAt),
        version: s.version,
      });
    },
    async deleteSetting(scopeType, scopeId, hostname) {
      q('DELETE FROM access_settings WHERE scope_type = :t AND scope_id = :s AND hostname = :h').run({
        t: scopeType,
        s: scopeId,
        h: hostname,
      });
    },
    getSettingsRollout: async (scopeType, scopeId) =>
      one('SELECT * FROM access_settings_rollouts WHERE scope_type = :t AND scope_id = :s', mappers.toRollout, {
        t: scopeType,
        s: scopeId,
      }),
    async putSettingsRollout(r) {
      q(`INSERT INTO access_settings_rollouts (scope_type, scope_id, status, status_changed_at, version)
         VALUES (:t, :s, :status, :changed, :version)
         ON CONFLICT (scope_type, scope_id) DO UPDATE SET status = excluded.status,
           status_changed_at = excluded.status_changed_at, version = excluded.version`).run({
        t: r.scopeType,
        s: r.scopeId,
        status: r.status,
        changed: iso(r.statusChangedAt),
        version: r.version,
      });
    },
    listSettingsRolloutsInStatus: async (status, before, limit) =>
      all(
        `SELECT * FROM access_settings_rollouts WHERE status = :status AND status_changed_at <= :before
           ORDER BY status_changed_at LIMIT :limit`,
        mappers.toRollout,
        { status, before: iso(before), limit },
      ),
  };

  const events: EventRepo = {
    async record(list) {
      const insert = q(`INSERT INTO lifecycle_events (subject_kind, subject_id, from_status, to_status, version, at)
         VALUES (:kind, :id, :from, :to, :version, :at)`);
      for (const e of list) {
        insert.run({ kind: e.subjectKind, id: e.subjectId, from: e.fromStatus, to: e.toStatus, version: e.version, at: iso(e.at) });
      }
    },
    listForSubject: async (kind, id) =>
      all(
        'SELECT * FROM lifecycle_events WHERE subject_kind = :kind AND subject_id = :id ORDER BY id',
        mappers.toEvent,
        { kind, id },
      ),
  };

  const edge: EdgeRepo = {
    async upsertHostname(h) {
      q(`INSERT INTO edge_hostnames (hostname, zone_id, origin_address, origin_port, origin_tls, origin_sni, origin_ca_pem,
           server_certificate, server_key_sealed, created_at, updated_at, version)
         VALUES (:hostname, :zone_id, :origin_address, :origin_port, :origin_tls, :origin_sni, :origin_ca_pem,
           :server_certificate, :server_key_sealed, :created_at, :updated_at, :version)
         ON CONFLICT (hostname) DO UPDATE SET zone_id = excluded.zone_id, origin_address = excluded.origin_address,
           origin_port = excluded.origin_port, origin_tls = excluded.origin_tls, origin_sni = excluded.origin_sni,
           origin_ca_pem = excluded.origin_ca_pem, server_certificate = excluded.server_certificate,
           server_key_sealed = excluded.server_key_sealed, created_at = excluded.created_at,
           updated_at = excluded.updated_at, version = excluded.version`).run(edgeHostnameParams(h));
    },
    getHostname: async (hostname) =>
      one('SELECT * FROM edge_hostnames WHERE hostname = :hostname', mappers.toEdgeHostname, { hostname }),
    async deleteHostname(hostname) {
      q('DELETE FROM edge_hostnames WHERE hostname = :hostname').run({ hostname });
    },
    listHostnames: async () => all('SELECT * FROM edge_hostnames ORDER BY hostname', mappers.toEdgeHostname),
    listHostnamesOfZone: async (zoneId) =>
      all('SELECT * FROM edge_hostnames WHERE zone_id = :zone ORDER BY hostname', mappers.toEdgeHostname, { zone: zoneId }),

    async insertNode(n) {
      q(`INSERT INTO edge_nodes (id, name, secret_hash, registered_at, last_seen_at, acked_version, revoked_at, healthy, health_reason)
         VALUES (:id, :name, :secret_hash, :registered_at, :last_seen_at, :acked_version, :revoked_at, :healthy, :health_reason)`).run(edgeNodeParams(n));
    },
    async updateNode(n) {
      q(`UPDATE edge_nodes SET name = :name, secret_hash = :secret_hash, registered_at = :registered_at,
           last_seen_at = :last_seen_at, acked_version = :acked_version, revoked_at = :revoked_at, healthy = :healthy,
           health_reason = :health_reason WHERE id = :id`).run(
        edgeNodeParams(n),
      );
    },
    getNode: async (id) => one('SELECT * FROM edge_nodes WHERE id = :id', mappers.toEdgeNode, { id }),
    getNodeBySecretHash: async (hash) => one('SELECT * FROM edge_nodes WHERE secret_hash = :hash', mappers.toEdgeNode, { hash }),
    listNodes: async () => all('SELECT * FROM edge_nodes ORDER BY registered_at, id', mappers.toEdgeNode),

    async putFailures(edgeId, version, failures) {
      q('DELETE FROM edge_failures WHERE edge_id = :edge').run({ edge: edgeId });
      for (const f of failures) {
        q('INSERT INTO edge_failures (edge_id, version, hostname, reason) VALUES (:edge, :version, :hostname, :reason)').run({
          edge: edgeId,
          version,
          hostname: f.hostname,
          reason: f.reason,
        });
      }
    },
    listFailures: async (edgeId) =>
      all('SELECT * FROM edge_failures WHERE edge_id = :edge ORDER BY hostname', mappers.toEdgeFailure, { edge: edgeId }),

    async recordChange(c) {
      q('INSERT INTO config_changes (version, scope_type, scope_id) VALUES (:version, :scope_type, :scope_id)').run({
        version: c.version,
        scope_type: c.scopeType,
        scope_id: c.scopeId,
      });
    },
    listChanges: async (after, upTo) =>
      all(
        'SELECT version, scope_type, scope_id FROM config_changes WHERE version > :after AND version <= :upto ORDER BY version, id',
        mappers.toChange,
        { after, upto: upTo },
      ),
  };

  // One writer at a time already (BEGIN IMMEDIATE behind the store's queue): nothing more to lock.
  const noLock = async () => undefined;

  return {
    tenancy,
    aop,
    access,
    events,
    edge,
    locks: { zone: noLock, tryZone: async () => true, account: noLock, named: noLock },
    async advanceVersionTo(version) {
      q('UPDATE config_version SET version = max(version, :v) WHERE id = 1').run({ v: version });
    },
    async nextVersion() {
      return (q('UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version').get() as { version: number })
        .version;
    },
    currentVersion: async () => (q('SELECT version FROM config_version WHERE id = 1').get() as { version: number }).version,
  };
}

function zoneParams(z: Zone) {
  return {
    id: z.id,
    name: z.name,
    account_id: z.accountId,
    china_network: z.chinaNetwork ? 1 : 0,
    aop_enabled: z.aopEnabled ? 1 : 0,
    status: z.status,
    created_at: iso(z.createdAt),
    modified_at: iso(z.modifiedAt),
  };
}

function tokenParams(t: ApiToken) {
  return {
    id: t.id,
    name: t.name,
    secret_hash: t.secretHash,
    status: t.status,
    policies: JSON.stringify(t.policies),
    not_before: isoOrNull(t.notBefore),
    expires_on: isoOrNull(t.expiresOn),
    created_at: iso(t.createdAt),
    revoked_at: isoOrNull(t.revokedAt),
  };
}

function aopParams(c: AopCertificate) {
  return {
    id: c.id,
    zone_id: c.zoneId,
    kind: c.kind,
    certificate: c.certificate,
    private_key_sealed: c.privateKeySealed,
    fingerprint_sha256: c.fingerprintSha256,
    issuer: c.issuer,
    serial_number: c.serialNumber,
    signature: c.signature,
    expires_on: iso(c.expiresOn),
    uploaded_on: iso(c.uploadedOn),
    updated_at: iso(c.updatedAt),
    status: c.status,
    status_changed_at: iso(c.statusChangedAt),
    version: c.version,
  };
}

function accessParams(c: AccessCertificate) {
  return {
    id: c.id,
    scope_type: c.scopeType,
    scope_id: c.scopeId,
    account_id: c.accountId,
    name: c.name,
    certificate: c.certificate,
    fingerprint_sha256: c.fingerprintSha256,
    fingerprint_md5: c.fingerprintMd5,
    associated_hostnames: JSON.stringify(c.associatedHostnames),
    expires_on: iso(c.expiresOn),
    created_at: iso(c.createdAt),
    updated_at: iso(c.updatedAt),
    version: c.version,
  };
}

function edgeHostnameParams(h: EdgeHostname) {
  return {
    hostname: h.hostname,
    zone_id: h.zoneId,
    origin_address: h.originAddress,
    origin_port: h.originPort,
    origin_tls: h.originTls ? 1 : 0,
    origin_sni: h.originSni,
    origin_ca_pem: h.originCaPem,
    server_certificate: h.serverCertificate,
    server_key_sealed: h.serverKeySealed,
    created_at: iso(h.createdAt),
    updated_at: iso(h.updatedAt),
    version: h.version,
  };
}

function edgeNodeParams(n: EdgeNode) {
  return {
    id: n.id,
    name: n.name,
    secret_hash: n.secretHash,
    registered_at: iso(n.registeredAt),
    last_seen_at: isoOrNull(n.lastSeenAt),
    acked_version: n.ackedVersion,
    revoked_at: isoOrNull(n.revokedAt),
    healthy: n.healthy ? 1 : 0,
    health_reason: n.healthReason,
  };
}

/**
 * Row → domain-object mappers shared by the SQLite and PostgreSQL adapters. The two differ only in how a column
 * value comes back from the driver (ISO text or Date, 0/1 or boolean, JSON text or parsed JSON, ...): each adapter
 * passes its own decoders, and the mapping itself is written once here.
 */
import type {
  AccessCertificate,
  AccessHostnameSetting,
  Account,
  ApiToken,
  AopCertificate,
  ConfigChange,
  EdgeFailure,
  EdgeHostname,
  EdgeNode,
  HostnameAssociation,
  LifecycleStatus,
  PageRequest,
  TokenPolicy,
  User,
  Zone,
} from '../domain/model.js';
import type { LifecycleEvent, SettingsRollout } from '../domain/ports.js';

/** A row as the driver returns it: column name → value. */
export type Row = Record<string, unknown>;

/** Rows to skip for a page (1-based pages). */
export const offset = (p: PageRequest): number => (p.page - 1) * p.perPage;

/** How one dialect decodes a column value of each kind. */
export interface ColumnDecoders {
  /** A non-null timestamp column. (A nullable one is NULL → null, otherwise `date`.) */
  date(v: unknown): Date;
  /** A non-null boolean column. */
  bool(v: unknown): boolean;
  /** A nullable boolean column. */
  boolOrNull(v: unknown): boolean | null;
  /** A JSON column. */
  json<T>(v: unknown): T;
  /** An integer column. */
  num(v: unknown): number;
  /** The tokens' `policies` JSON column (default: `json`). */
  policies?(v: unknown): TokenPolicy[];
}

export function createRowMappers(decode: ColumnDecoders) {
  const { date, bool, boolOrNull, json, num } = decode;
  const dateOrNull = (v: unknown): Date | null => (v === null || v === undefined ? null : date(v));
  const policies = decode.policies ?? ((v: unknown) => json<TokenPolicy[]>(v));

  return {
    toAccount: (r: Row): Account => ({ id: r.id as string, name: r.name as string, createdAt: date(r.created_at) }),

    toZone: (r: Row): Zone => ({
      id: r.id as string,
      name: r.name as string,
      accountId: r.account_id as string,
      chinaNetwork: bool(r.china_network),
      aopEnabled: bool(r.aop_enabled),
      status: 'active',
      createdAt: date(r.created_at),
      modifiedAt: date(r.modified_at),
    }),

    toToken: (r: Row): ApiToken => ({
      id: r.id as string,
      name: r.name as string,
      secretHash: r.secret_hash as string,
      status: r.status as ApiToken['status'],
      policies: policies(r.policies),
      notBefore: dateOrNull(r.not_before),
      expiresOn: dateOrNull(r.expires_on),
      createdAt: date(r.created_at),
      revokedAt: dateOrNull(r.revoked_at),
    }),

    toUser: (r: Row): User => ({
      id: r.id as string,
      email: r.email as string,
      apiKeyHash: r.api_key_hash as string,
      createdAt: date(r.created_at),
    }),

    toAopCert: (r: Row): AopCertificate => ({
      id: r.id as string,
      zoneId: r.zone_id as string,
      kind: r.kind as AopCertificate['kind'],
      certificate: r.certificate as string,
      privateKeySealed: r.private_key_sealed as string,
      fingerprintSha256: r.fingerprint_sha256 as string,
      issuer: r.issuer as string,
      serialNumber: r.serial_number as string,
      signature: r.signature as string,
      expiresOn: date(r.expires_on),
      uploadedOn: date(r.uploaded_on),
      updatedAt: date(r.updated_at),
      status: r.status as LifecycleStatus,
      statusChangedAt: date(r.status_changed_at),
      version: num(r.version),
    }),

    toAssociation: (r: Row): HostnameAssociation => ({
      zoneId: r.zone_id as string,
      hostname: r.hostname as string,
      certId: r.cert_id as string,
      enabled: boolOrNull(r.enabled),
      status: r.status as LifecycleStatus,
      statusChangedAt: date(r.status_changed_at),
      version: num(r.version),
      createdAt: date(r.created_at),
      updatedAt: date(r.updated_at),
    }),

    toAccessCert: (r: Row): AccessCertificate => ({
      id: r.id as string,
      scopeType: r.scope_type as AccessCertificate['scopeType'],
      scopeId: r.scope_id as string,
      accountId: r.account_id as string,
      name: r.name as string,
      certificate: r.certificate as string,
      fingerprintSha256: r.fingerprint_sha256 as string,
      fingerprintMd5: r.fingerprint_md5 as string,
      associatedHostnames: json<string[]>(r.associated_hostnames),
      expiresOn: date(r.expires_on),
      createdAt: date(r.created_at),
      updatedAt: date(r.updated_at),
      version: num(r.version),
    }),

    toSetting: (r: Row): AccessHostnameSetting => ({
      scopeType: r.scope_type as AccessHostnameSetting['scopeType'],
      scopeId: r.scope_id as string,
      hostname: r.hostname as string,
      chinaNetwork: bool(r.china_network),
      clientCertificateForwarding: bool(r.client_certificate_forwarding),
      updatedAt: date(r.updated_at),
      version: num(r.version),
    }),

    toRollout: (r: Row): SettingsRollout => ({
      scopeType: r.scope_type as SettingsRollout['scopeType'],
      scopeId: r.scope_id as string,
      status: r.status as LifecycleStatus,
      statusChangedAt: date(r.status_changed_at),
      version: num(r.version),
    }),

    toEvent: (r: Row): LifecycleEvent => ({
      subjectKind: r.subject_kind as LifecycleEvent['subjectKind'],
      subjectId: r.subject_id as string,
      fromStatus: r.from_status as LifecycleStatus,
      toStatus: r.to_status as LifecycleStatus,
      version: num(r.version),
      at: date(r.at),
    }),

    toEdgeHostname: (r: Row): EdgeHostname => ({
      hostname: r.hostname as string,
      zoneId: r.zone_id as string,
      originAddress: r.origin_address as string,
      originPort: num(r.origin_port),
      originTls: bool(r.origin_tls),
      originSni: (r.origin_sni ?? null) as string | null,
      originCaPem: (r.origin_ca_pem ?? null) as string | null,
      serverCertificate: r.server_certificate as string,
      serverKeySealed: r.server_key_sealed as string,
      createdAt: date(r.created_at),
      updatedAt: date(r.updated_at),
      version: num(r.version),
    }),

    toEdgeNode: (r: Row): EdgeNode => ({
      id: r.id as string,
      name: r.name as string,
      secretHash: r.secret_hash as string,
      registeredAt: date(r.registered_at),
      lastSeenAt: dateOrNull(r.last_seen_at),
      ackedVersion: num(r.acked_version),
      revokedAt: dateOrNull(r.revoked_at),
      healthy: bool(r.healthy),
      healthReason: (r.health_reason as string | null) ?? null,
    }),

    toEdgeFailure: (r: Row): EdgeFailure => ({
      edgeId: r.edge_id as string,
      version: num(r.version),
      hostname: r.hostname as string,
      reason: r.reason as string,
    }),

    toChange: (r: Row): ConfigChange => ({
      version: num(r.version),
      scopeType: r.scope_type as ConfigChange['scopeType'],
      scopeId: r.scope_id as string,
    }),
  };
}

export type RowMappers = ReturnType<typeof createRowMappers>;

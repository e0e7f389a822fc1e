/**
 * Domain model: the entities certplane stores, independent of HTTP and of any database.
 * Times are `Date` here; presenters format them for the wire.
 */

/** Deployment lifecycle shared by certificates and hostname associations (Cloudflare's enum). */
export const LIFECYCLE_STATUSES = [
  'initializing',
  'pending_deployment',
  'pending_deletion',
  'active',
  'deleted',
  'deployment_timed_out',
  'deletion_timed_out',
] as const;
export type LifecycleStatus = (typeof LIFECYCLE_STATUSES)[number];

export interface Account {
  id: string; // 32 lowercase hex
  name: string;
  createdAt: Date;
}

export interface Zone {
  id: string; // 32 lowercase hex
  name: string; // apex, lowercase, no trailing dot
  accountId: string;
  chinaNetwork: boolean;
  aopEnabled: boolean; // zone-level AOP setting (origin_tls_client_auth/settings.enabled)
  status: 'active';
  createdAt: Date;
  modifiedAt: Date;
}

export interface User {
  id: string; // 32 lowercase hex
  email: string; // lowercase
  apiKeyHash: string; // sha256 hex of the global API key
  createdAt: Date;
}

/** Permission groups a token can carry (Cloudflare's names). */
export const PERMISSION_GROUPS = {
  'SSL and Certificates Read': 'ssl:read',
  'SSL and Certificates Write': 'ssl:write',
  'Access: Mutual TLS Certificates Read': 'access-certificate:read',
  'Access: Mutual TLS Certificates Write': 'access-certificate:write',
} as const;
export type PermissionGroupName = keyof typeof PERMISSION_GROUPS;
export type Permission = (typeof PERMISSION_GROUPS)[PermissionGroupName];

/** What a token policy covers: every resource, one account (and its zones), or one zone. */
export type Scope = { type: 'all' } | { type: 'account'; id: string } | { type: 'zone'; id: string };

export interface TokenPolicy {
  permissions: Permission[];
  scopes: Scope[];
}

export interface ApiToken {
  id: string; // 32 lowercase hex
  name: string;
  secretHash: string; // sha256 hex of the secret; the secret itself is never stored
  status: 'active' | 'disabled' | 'expired';
  policies: TokenPolicy[];
  notBefore: Date | null;
  expiresOn: Date | null;
  createdAt: Date;
  revokedAt: Date | null;
}

/** Zone-level or hostname-level AOP client certificate. Two separate id namespaces (kind). */
export type AopCertificateKind = 'zone' | 'hostname';

export interface AopCertificate {
  id: string; // UUID
  zoneId: string;
  kind: AopCertificateKind;
  certificate: string; // PEM of the leaf as uploaded (normalised)
  privateKeySealed: string; // key-vault envelope; never leaves the server
  fingerprintSha256: string; // of the leaf DER, for duplicate detection
  issuer: string;
  serialNumber: string;
  signature: string;
  expiresOn: Date;
  uploadedOn: Date;
  updatedAt: Date;
  status: LifecycleStatus;
  statusChangedAt: Date;
  version: number; // configuration version at which the current status began
}

/** Per-hostname association: a hostname pinned to a hostname certificate. */
export interface HostnameAssociation {
  zoneId: string;
  hostname: string;
  certId: string;
  enabled: boolean | null; // null = voided
  status: LifecycleStatus;
  statusChangedAt: Date;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export type AccessScopeType = 'account' | 'zone';

export interface AccessCertificate {
  id: string; // UUID
  scopeType: AccessScopeType;
  scopeId: string;
  accountId: string; // owning account (the zone's account for zone scope)
  name: string;
  certificate: string; // PEM chain as uploaded (normalised); never returned by the API
  fingerprintSha256: string; // of the first certificate, for duplicate detection
  fingerprintMd5: string; // "MD5 Fingerprint=XX:XX:..."
  associatedHostnames: string[];
  expiresOn: Date;
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

export interface AccessHostnameSetting {
  scopeType: AccessScopeType;
  scopeId: string;
  hostname: string;
  chinaNetwork: boolean;
  clientCertificateForwarding: boolean;
  updatedAt: Date;
  version: number;
}

export interface Page<T> {
  items: T[];
  totalCount: number;
}

export interface PageRequest {
  page: number; // 1-based
  perPage: number;
}

/** A hostname the edge serves: its origin and its visitor-facing certificate (managed with the CLI). */
export interface EdgeHostname {
  hostname: string; // lowercase FQDN, belongs to `zoneId`
  zoneId: string;
  originAddress: string;
  originPort: number;
  originTls: boolean;
  /** SNI sent to the origin; null = the hostname itself. */
  originSni: string | null;
  /** CA bundle the edge verifies the origin with; null = not verified. */
  originCaPem: string | null;
  /** Visitor-facing certificate chain (PEM) and its sealed private key. */
  serverCertificate: string;
  serverKeySealed: string;
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

/** An edge node registered with the control plane, with its own credential (not a user's API token). */
export interface EdgeNode {
  id: string; // 32 lowercase hex
  name: string;
  secretHash: string; // sha256 hex of the credential
  registeredAt: Date;
  lastSeenAt: Date | null;
  /** The configuration version this edge has acknowledged as live (0 = none yet). */
  ackedVersion: number;
  revokedAt: Date | null;
  /** What the edge last reported about its data plane: false while it is not serving (e.g. HAProxy restarting). */
  healthy: boolean;
  /** Why it is not healthy (null when healthy). */
  healthReason: string | null;
}

/** What an edge reported it could not apply at a version. */
export interface EdgeFailure {
  edgeId: string;
  version: number;
  hostname: string;
  reason: string;
}

/** A configuration change, recorded in the change log under the version it was committed with. */
export interface ConfigChange {
  version: number;
  scopeType: 'zone' | 'account' | 'hostname';
  scopeId: string;
}

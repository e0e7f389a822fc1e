/**
 * Ports: what the domain needs from the outside world. Storage adapters (SQLite now, PostgreSQL later) implement
 * `Store`; the composition root supplies a clock, id generation and the key vault.
 * Every repository method is async so the same domain code runs over synchronous and networked drivers.
 */
import type {
  Account,
  AccessCertificate,
  AccessHostnameSetting,
  AccessScopeType,
  ApiToken,
  AopCertificate,
  AopCertificateKind,
  ConfigChange,
  EdgeFailure,
  EdgeHostname,
  EdgeNode,
  HostnameAssociation,
  LifecycleStatus,
  Page,
  PageRequest,
  User,
  Zone,
} from './model.js';

export interface Clock {
  now(): Date;
}

export interface Ids {
  /** 32 lowercase hex characters (accounts, zones, users, tokens). */
  hex32(): string;
  /** RFC 4122 v4 UUID (certificates). */
  uuid(): string;
}

/** Seals private keys before they reach storage; opens them only for the data plane. */
export interface Sealer {
  seal(recordId: string, plaintext: string): string;
  open(recordId: string, envelope: string): string;
  /** Id of the key that seals now. */
  readonly keyId: string;
  /** Id of the key an envelope was sealed with. */
  keyIdOf(envelope: string): string | null;
}

export interface ZoneQuery {
  name?: string;
  /** Visibility: zones of these accounts OR with these ids. Both undefined = every zone. */
  accountIds?: string[];
  zoneIds?: string[];
}

export interface TenancyRepo {
  insertAccount(a: Account): Promise<void>;
  getAccount(id: string): Promise<Account | null>;
  listAccounts(): Promise<Account[]>;

  insertZone(z: Zone): Promise<void>;
  getZone(id: string): Promise<Zone | null>;
  getZoneByName(name: string): Promise<Zone | null>;
  /** The zones among these names (any order; names that are no zone are simply absent). */
  getZonesByNames(names: string[]): Promise<Zone[]>;
  listZones(q: ZoneQuery, page: PageRequest): Promise<Page<Zone>>;
  updateZone(z: Zone): Promise<void>;

  insertUser(u: User): Promise<void>;
  getUser(id: string): Promise<User | null>;
  getUserByEmail(email: string): Promise<User | null>;
  listUsers(): Promise<User[]>;
  addMembership(accountId: string, userId: string): Promise<void>;
  listMemberships(userId: string): Promise<string[]>;

  insertToken(t: ApiToken): Promise<void>;
  getToken(id: string): Promise<ApiToken | null>;
  getTokenBySecretHash(hash: string): Promise<ApiToken | null>;
  listTokens(): Promise<ApiToken[]>;
  updateToken(t: ApiToken): Promise<void>;

  /** Small key/value store for installation metadata (bootstrap marker, vault verification token). */
  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;
  listMeta(): Promise<[string, string][]>;
}

export interface AopRepo {
  insertCertificate(c: AopCertificate): Promise<void>;
  updateCertificate(c: AopCertificate): Promise<void>;
  getCertificate(zoneId: string, kind: AopCertificateKind, id: string): Promise<AopCertificate | null>;
  /** Any certificate by id, whatever its zone or kind (to tell "wrong kind" from "unknown"). */
  findCertificateById(id: string): Promise<AopCertificate | null>;
  getCertificateByFingerprint(zoneId: string, kind: AopCertificateKind, fingerprintSha256: string): Promise<AopCertificate | null>;
  /** Certificates of a zone and kind, newest upload first, excluding the given statuses. */
  listCertificates(zoneId: string, kind: AopCertificateKind, excludeStatuses: LifecycleStatus[]): Promise<AopCertificate[]>;
  countCertificates(zoneId: string, kind: AopCertificateKind, excludeStatuses: LifecycleStatus[]): Promise<number>;
  purgeCertificate(id: string): Promise<void>;
  /** Every certificate, in id order, `limit` at a time after `afterId` (key rotation, copying between databases). */
  listCertificatesAfter(afterId: string, limit: number): Promise<AopCertificate[]>;

  getAssociation(zoneId: string, hostname: string): Promise<HostnameAssociation | null>;
  /** The zone's associations among these hostnames (any order; absent hostnames are simply missing). */
  getAssociations(zoneId: string, hostnames: string[]): Promise<HostnameAssociation[]>;
  upsertAssociation(a: HostnameAssociation): Promise<void>;
  /** upsertAssociation for each, in one statement where the database allows (a PUT of 100 is one round trip). */
  upsertAssociations(list: HostnameAssociation[]): Promise<void>;
  purgeAssociation(zoneId: string, hostname: string): Promise<void>;
  /** Associations of a zone, hostname order; statuses undefined = all. */
  listAssociations(zoneId: string, statuses: LifecycleStatus[] | undefined, page: PageRequest): Promise<Page<HostnameAssociation>>;
  /** Associations that still reference the certificate (enabled true or false, not voided). */
  countLiveAssociations(certId: string): Promise<number>;

  /** Lifecycle work for the deployer: rows in a status that began at or before `changedBefore`. */
  listCertificatesInStatus(statuses: LifecycleStatus[], changedBefore: Date, limit: number): Promise<AopCertificate[]>;
  listAssociationsInStatus(statuses: LifecycleStatus[], changedBefore: Date, limit: number): Promise<HostnameAssociation[]>;
}

export interface AccessRepo {
  insertCertificate(c: AccessCertificate): Promise<void>;
  updateCertificate(c: AccessCertificate): Promise<void>;
  deleteCertificate(id: string): Promise<void>;
  getCertificate(scopeType: AccessScopeType, scopeId: string, id: string): Promise<AccessCertificate | null>;
  getCertificateByFingerprint(scopeType: AccessScopeType, scopeId: string, fingerprintSha256: string): Promise<AccessCertificate | null>;
  listCertificates(scopeType: AccessScopeType, scopeId: string, page: PageRequest): Promise<Page<AccessCertificate>>;
  /** Every Access certificate of the account: account-scoped and those of the account's zones. */
  countAccountCertificates(accountId: string): Promise<number>;

  listSettings(scopeType: AccessScopeType, scopeId: string): Promise<AccessHostnameSetting[]>;
  upsertSetting(s: AccessHostnameSetting): Promise<void>;
  deleteSetting(scopeType: AccessScopeType, scopeId: string, hostname: string): Promise<void>;

  /** Deployment state of the last settings update of a scope (for Cloudflare's 409 "still being updated"). */
  getSettingsRollout(scopeType: AccessScopeType, scopeId: string): Promise<SettingsRollout | null>;
  putSettingsRollout(r: SettingsRollout): Promise<void>;
  listSettingsRolloutsInStatus(status: LifecycleStatus, changedBefore: Date, limit: number): Promise<SettingsRollout[]>;
}

export interface SettingsRollout {
  scopeType: AccessScopeType;
  scopeId: string;
  status: LifecycleStatus; // pending_deployment | active | deployment_timed_out
  statusChangedAt: Date;
  version: number;
}

/** A status change made by the deployer, kept as an audit trail (and proof that each happens exactly once). */
export interface LifecycleEvent {
  subjectKind: 'aop_certificate' | 'association' | 'access_settings';
  /** Certificate id, `zoneId/hostname` for associations, `scopeType/scopeId` for settings. */
  subjectId: string;
  fromStatus: LifecycleStatus;
  toStatus: LifecycleStatus;
  version: number;
  at: Date;
}

export interface EventRepo {
  /** Records the events in the order given (the deployer writes a pass's transitions together). */
  record(events: LifecycleEvent[]): Promise<void>;
  /** Events of one subject, oldest first. */
  listForSubject(subjectKind: LifecycleEvent['subjectKind'], subjectId: string): Promise<LifecycleEvent[]>;
}

export interface EdgeRepo {
  upsertHostname(h: EdgeHostname): Promise<void>;
  getHostname(hostname: string): Promise<EdgeHostname | null>;
  deleteHostname(hostname: string): Promise<void>;
  listHostnames(): Promise<EdgeHostname[]>;
  listHostnamesOfZone(zoneId: string): Promise<EdgeHostname[]>;

  insertNode(n: EdgeNode): Promise<void>;
  updateNode(n: EdgeNode): Promise<void>;
  getNode(id: string): Promise<EdgeNode | null>;
  getNodeBySecretHash(hash: string): Promise<EdgeNode | null>;
  listNodes(): Promise<EdgeNode[]>;

  /** Replaces what an edge reported as failed at a version (empty list = nothing failed). */
  putFailures(edgeId: string, version: number, failures: EdgeFailure[]): Promise<void>;
  listFailures(edgeId: string): Promise<EdgeFailure[]>;

  /** The change log: which scopes changed at which version. */
  recordChange(c: ConfigChange): Promise<void>;
  /** Changes with after < version <= upTo, oldest first. */
  listChanges(after: number, upTo: number): Promise<ConfigChange[]>;
}

/**
 * Transaction-scoped exclusive locks on aggregates, held until the transaction ends. Every write that checks an
 * invariant of an aggregate takes its lock first: all AOP changes of a zone (limits, one association per hostname,
 * delete-versus-associate), all Access changes of an account (its 50-certificate limit, settings rollouts).
 * On a database with a single writer (SQLite) they cost nothing; on PostgreSQL they serialise exactly the
 * transactions that could break an invariant, and nothing else.
 */
export interface Locks {
  zone(zoneId: string): Promise<void>;
  /** Takes the zone's lock only if nobody holds it (the deployer never waits for an API request). */
  tryZone(zoneId: string): Promise<boolean>;
  account(accountId: string): Promise<void>;
  /** Installation-wide operations (bootstrap). */
  named(name: string): Promise<void>;
}

export interface Repos {
  tenancy: TenancyRepo;
  aop: AopRepo;
  access: AccessRepo;
  events: EventRepo;
  edge: EdgeRepo;
  locks: Locks;
  /** Raises the configuration version to at least `version` (copying an installation). */
  advanceVersionTo(version: number): Promise<void>;
  /** Allocates the next configuration version (monotonic, one per committed change). */
  nextVersion(): Promise<number>;
  currentVersion(): Promise<number>;
}

/**
 * What an answer built from stored data depends on (both kept by triggers, whoever writes): the tenancy version
 * (credentials, accounts, zones) and one zone's
 * data version (its AOP certificates and associations; -1 when asked for no zone or an unknown one). Equal versions
 * mean nothing the answer was built from has changed since.
 */
export interface DataVersions {
  tenancy: number;
  zone: number;
}

export interface Store {
  /** Runs `fn` as one atomic transaction: every write in it happens, or none does. */
  write<T>(fn: (r: Repos) => Promise<T>): Promise<T>;
  /**
   * Runs reads. Each statement sees only committed data; with `snapshot`, all of them see the same committed state,
   * as of the first (for a result assembled from many statements that must not straddle a commit, such as the edge
   * feed: otherwise a bulk PUT committing meanwhile would show on some of its hostnames only).
   */
  read<T>(fn: (r: Repos) => Promise<T>, opts?: { snapshot?: boolean }): Promise<T>;
  close(): Promise<void>;
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * The current versions (see DataVersions), as committed by any process before this call began: a change committed
   * before it is always reflected. Cheap enough for every request: SQLite answers the probes of one event-loop turn
   * with one `data_version` pragma and re-reads the rows only when it or a local commit says something changed;
   * PostgreSQL answers the probes of concurrent requests with one query started after the last of them arrived.
   */
  versions(zoneId: string | null): Promise<DataVersions>;
  /**
   * Calls `listener` after a transaction that changed the configuration version commits — on this process, or on
   * any process sharing the database where the database can tell (PostgreSQL LISTEN/NOTIFY). A wake-up only: it
   * carries no data and may be missed, so waiters also re-check periodically. Returns the unsubscribe function.
   */
  onConfigChange(listener: () => void): () => void;
}

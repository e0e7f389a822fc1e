/**
 * Tenancy and credentials: accounts, zones, users with a global API key, and API tokens with Cloudflare's
 * permission groups. Secrets are generated here, shown once, and stored only as SHA-256 hashes (they are random
 * and long, so a slow password hash would add nothing but latency to every request).
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { DomainError } from './errors.js';
import { isZoneApex, normalizeHostname } from './hostnames.js';
import {
  PERMISSION_GROUPS,
  type Account,
  type ApiToken,
  type Permission,
  type PermissionGroupName,
  type Scope,
  type TokenPolicy,
  type User,
  type Zone,
} from './model.js';
import type { Clock, DataVersions, Ids, Repos, Store } from './ports.js';

/** SHA-256, hex. `crypto.hash` (one call, no Hash object) costs a quarter of `createHash` for a 40-character token. */
export const hashSecret = (secret: string): string => hash('sha256', secret, 'hex');

/** Cloudflare API tokens are 40 characters of [A-Za-z0-9_-]. */
export const TOKEN_RE = /^[A-Za-z0-9_-]{40}$/;
/** Cloudflare global API keys are 37 lowercase hex characters. */
export const API_KEY_RE = /^[0-9a-f]{37}$/;
const EMAIL_RE = /^[^\s@]{1,64}@[^\s@]{1,255}$/;

const TOKEN_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export function generateTokenSecret(): string {
  const bytes = randomBytes(40);
  let s = '';
  for (const b of bytes) s += TOKEN_ALPHABET[b & 63];
  return s;
}

export const generateApiKey = (): string => randomBytes(19).toString('hex').slice(0, 37);

export const ALL_PERMISSIONS: Permission[] = Object.values(PERMISSION_GROUPS);

export function permissionsFromGroups(names: string[]): Permission[] {
  return names.map((n) => {
    const p = PERMISSION_GROUPS[n as PermissionGroupName];
    if (!p) {
      throw new DomainError(
        'validation',
        `unknown permission group "${n}"; known: ${Object.keys(PERMISSION_GROUPS).join(', ')}`,
      );
    }
    return p;
  });
}

/** Who is calling: a token, or a user authenticated with email + global API key. */
export type Principal =
  | { type: 'token'; token: ApiToken }
  | { type: 'user'; user: User; accountIds: string[] };

/** What a request acts on. */
export type Resource = { type: 'zone'; zone: Zone } | { type: 'account'; accountId: string };

const implied = (granted: Permission, wanted: Permission): boolean =>
  granted === wanted || (wanted.endsWith(':read') && granted === wanted.replace(':read', ':write'));

function scopeCovers(scope: Scope, resource: Resource): boolean {
  if (scope.type === 'all') return true;
  if (resource.type === 'zone') {
    return scope.type === 'zone' ? scope.id === resource.zone.id : scope.id === resource.zone.accountId;
  }
  return scope.type === 'account' && scope.id === resource.accountId;
}

/** True when the principal may use `permission` on the resource. */
export function isAllowed(principal: Principal, permission: Permission, resource: Resource): boolean {
  if (principal.type === 'user') {
    const accountId = resource.type === 'zone' ? resource.zone.accountId : resource.accountId;
    return principal.accountIds.includes(accountId);
  }
  return principal.token.policies.some(
    (p) => p.permissions.some((g) => implied(g, permission)) && p.scopes.some((s) => scopeCovers(s, resource)),
  );
}

/** True when the principal can see the zone at all (any permission), for GET /zones. */
export function canSeeZone(principal: Principal, zone: Zone): boolean {
  return ALL_PERMISSIONS.some((p) => isAllowed(principal, p, { type: 'zone', zone }));
}

export type TokenCheck =
  | { ok: true; token: ApiToken }
  | { ok: false; reason: 'unknown' | 'disabled' | 'expired' | 'not_yet_valid' };

export type TenancyService = ReturnType<typeof createTenancyService>;

/** The lookups one API request makes to authenticate its caller and authorise it on a zone or account. */
export interface CredentialLookups {
  checkToken(secret: string): Promise<TokenCheck>;
  checkApiKey(email: string, apiKey: string): Promise<Principal | null>;
  getZone(id: string): Promise<Zone | null>;
  getAccount(id: string): Promise<Account | null>;
}

/** Entries kept per kind before the cache starts again from empty (a bound on memory, not a tuning knob). */
const CACHE_LIMIT = 10_000;

export function createTenancyService(deps: { store: Store; clock: Clock; ids: Ids }) {
  const { store, clock, ids } = deps;

  /** Runs `fn` in the caller's transaction when given one, else in a transaction of its own. */
  const inTx = <T>(tx: Repos | undefined, fn: (r: Repos) => Promise<T>): Promise<T> => (tx ? fn(tx) : store.write(fn));

  /**
   * Tokens, users (with their memberships), zones and accounts as last read, valid while the database's tenancy
   * version (raised by triggers on every change, by any process) is the one they were read at. Only rows that exist
   * are kept, so unknown secrets cannot fill it. Expiry and not-before are checked on every use, not cached.
   */
  const cache = {
    version: -1,
    tokens: new Map<string, ApiToken>(),
    users: new Map<string, { user: User; accountIds: string[] }>(),
    zones: new Map<string, Zone>(),
    accounts: new Map<string, Account>(),
  };
  async function cached<T>(map: Map<string, T>, key: string, version: number, load: () => Promise<T | null>): Promise<T | null> {
    const hit = map.get(key);
    if (hit !== undefined) return hit;
    const value = await load();
    // Only under the version it was read at: a lookup that raced with a change must not outlive that change.
    if (value !== null && cache.version === version) {
      if (map.size >= CACHE_LIMIT) map.clear();
      map.set(key, value);
    }
    return value;
  }

  function checkTokenRow(token: ApiToken | null): TokenCheck {
    if (!token) return { ok: false, reason: 'unknown' };
    const now = clock.now();
    if (token.status !== 'active') return { ok: false, reason: 'disabled' };
    if (token.expiresOn && token.expiresOn.getTime() <= now.getTime()) return { ok: false, reason: 'expired' };
    if (token.notBefore && token.notBefore.getTime() > now.getTime()) return { ok: false, reason: 'not_yet_valid' };
    return { ok: true, token };
  }

  function checkUserKey(entry: { user: User; accountIds: string[] } | null, apiKey: string): Principal | null {
    if (!entry) return null;
    const a = Buffer.from(entry.user.apiKeyHash, 'hex');
    const b = Buffer.from(hashSecret(apiKey), 'hex');
    if (a.length !== b.length || !timingSafeEqual(a, b)) return null;
    return { type: 'user', user: entry.user, accountIds: entry.accountIds };
  }

  const loadUser = (email: string) =>
    store.read(async (r) => {
      const user = await r.tenancy.getUserByEmail(email);
      return user ? { user, accountIds: await r.tenancy.listMemberships(user.id) } : null;
    });

  function zoneName(name: string): string {
    const r = normalizeHostname(name);
    if (!r.ok || !isZoneApex(r.hostname)) throw new DomainError('zone_name_invalid', r.ok ? r.hostname : r.message);
    return r.hostname;
  }

  return {
    async createAccount(name: string, tx?: Repos): Promise<Account> {
      if (name.trim() === '' || name.length > 255 || /[\u0000-\u001f\u007f]/.test(name)) {
        throw new DomainError('validation', 'an account name is 1-255 characters, without control characters');
      }
      const account: Account = { id: ids.hex32(), name, createdAt: clock.now() };
      await inTx(tx, (r) => r.tenancy.insertAccount(account));
      return account;
    },

    async createZone(input: { name: string; accountId: string; chinaNetwork?: boolean; id?: string }, tx?: Repos): Promise<Zone> {
      const name = zoneName(input.name);
      return inTx(tx, async (r) => {
        if (!(await r.tenancy.getAccount(input.accountId))) throw new DomainError('account_not_found', input.accountId);
        if (await r.tenancy.getZoneByName(name)) throw new DomainError('zone_exists', name);
        const now = clock.now();
        const zone: Zone = {
          id: input.id ?? ids.hex32(),
          name,
          accountId: input.accountId,
          chinaNetwork: input.chinaNetwork ?? false,
          aopEnabled: false,
          status: 'active',
          createdAt: now,
          modifiedAt: now,
        };
        await r.tenancy.insertZone(zone);
        return zone;
      });
    },

    async setZoneChinaNetwork(zoneId: string, enabled: boolean): Promise<Zone> {
      return store.write(async (r) => {
        const zone = await r.tenancy.getZone(zoneId);
        if (!zone) throw new DomainError('zone_not_found', zoneId);
        const next = { ...zone, chinaNetwork: enabled, modifiedAt: clock.now() };
        await r.tenancy.updateZone(next);
        return next;
      });
    },

    /** Creates a user with a fresh global API key (or the given one), returned once. */
    async createUser(
      input: { email: string; accountIds: string[]; apiKey?: string },
      tx?: Repos,
    ): Promise<{ user: User; apiKey: string }> {
      const email = input.email.trim().toLowerCase();
      if (!EMAIL_RE.test(email)) throw new DomainError('validation', `invalid email address "${input.email}"`);
      const apiKey = input.apiKey ?? generateApiKey();
      if (!API_KEY_RE.test(apiKey)) throw new DomainError('validation', 'a global API key is 37 lowercase hex characters');
      return inTx(tx, async (r) => {
        if (await r.tenancy.getUserByEmail(email)) throw new DomainError('user_exists', email);
        const user: User = { id: ids.hex32(), email, apiKeyHash: hashSecret(apiKey), createdAt: clock.now() };
        await r.tenancy.insertUser(user);
        for (const accountId of input.accountIds) {
          if (!(await r.tenancy.getAccount(accountId))) throw new DomainError('account_not_found', accountId);
          await r.tenancy.addMembership(accountId, user.id);
        }
        return { user, apiKey };
      });
    },

    async addMembership(email: string, accountId: string): Promise<void> {
      await store.write(async (r) => {
        const user = await r.tenancy.getUserByEmail(email.toLowerCase());
        if (!user) throw new DomainError('user_not_found', email);
        if (!(await r.tenancy.getAccount(accountId))) throw new DomainError('account_not_found', accountId);
        await r.tenancy.addMembership(accountId, user.id);
      });
    },

    /** Creates a token; the secret is returned once and only its hash is stored. */
    async createToken(
      input: {
        name: string;
        policies: TokenPolicy[];
        expiresOn?: Date | null;
        notBefore?: Date | null;
        secret?: string;
      },
      tx?: Repos,
    ): Promise<{ token: ApiToken; secret: string }> {
      const secret = input.secret ?? generateTokenSecret();
      if (!TOKEN_RE.test(secret)) throw new DomainError('validation', 'an API token is 40 characters of A-Z, a-z, 0-9, "-" and "_"');
      if (input.policies.length === 0 || input.policies.some((p) => p.permissions.length === 0 || p.scopes.length === 0)) {
        throw new DomainError('validation', 'a token needs at least one permission group and one scope');
      }
      return inTx(tx, async (r) => {
        for (const p of input.policies) {
          for (const s of p.scopes) {
            if (s.type === 'account' && !(await r.tenancy.getAccount(s.id))) throw new DomainError('account_not_found', s.id);
            if (s.type === 'zone' && !(await r.tenancy.getZone(s.id))) throw new DomainError('zone_not_found', s.id);
          }
        }
        const hash = hashSecret(secret);
        if (await r.tenancy.getTokenBySecretHash(hash)) throw new DomainError('validation', 'that token secret is already in use');
        const token: ApiToken = {
          id: ids.hex32(),
          name: input.name,
          secretHash: hash,
          status: 'active',
          policies: input.policies,
          notBefore: input.notBefore ?? null,
          expiresOn: input.expiresOn ?? null,
          createdAt: clock.now(),
          revokedAt: null,
        };
        await r.tenancy.insertToken(token);
        return { token, secret };
      });
    },

    async revokeToken(id: string): Promise<ApiToken> {
      return store.write(async (r) => {
        const token = await r.tenancy.getToken(id);
        if (!token) throw new DomainError('token_not_found', id);
        const next: ApiToken = { ...token, status: 'disabled', revokedAt: token.revokedAt ?? clock.now() };
        await r.tenancy.updateToken(next);
        return next;
      });
    },

    /** Looks a bearer secret up by hash and checks it is usable now. */
    async checkToken(secret: string): Promise<TokenCheck> {
      return checkTokenRow(await store.read((r) => r.tenancy.getTokenBySecretHash(hashSecret(secret))));
    },

    /** Email + global API key; null when either is wrong. */
    async checkApiKey(email: string, apiKey: string): Promise<Principal | null> {
      return checkUserKey(await loadUser(email.trim().toLowerCase()), apiKey);
    },

    /**
     * The same lookups as checkToken, checkApiKey, getZone and getAccount, for one request: the tenancy version is
     * read once (with the data version of `zoneId`, which the caller may use to judge its own cached answers), and rows
     * read at that version are answered from memory. A change committed before this call, by this process or any
     * other, is always seen.
     */
    async lookups(zoneId: string | null = null): Promise<CredentialLookups & { versions: DataVersions }> {
      const versions = await store.versions(zoneId);
      const version = versions.tenancy;
      if (version !== cache.version) {
        cache.version = version;
        for (const m of [cache.tokens, cache.users, cache.zones, cache.accounts]) m.clear();
      }
      return {
        versions,
        checkToken: async (secret) => {
          const hash = hashSecret(secret);
          return checkTokenRow(await cached(cache.tokens, hash, version, () => store.read((r) => r.tenancy.getTokenBySecretHash(hash))));
        },
        checkApiKey: async (email, apiKey) => {
          const e = email.trim().toLowerCase();
          return checkUserKey(await cached(cache.users, e, version, () => loadUser(e)), apiKey);
        },
        getZone: (id) => cached(cache.zones, id, version, () => store.read((r) => r.tenancy.getZone(id))),
        getAccount: (id) => cached(cache.accounts, id, version, () => store.read((r) => r.tenancy.getAccount(id))),
      };
    },

    /** The current versions (`Store.versions`), for a caller that decides with `peek` alone. */
    versions: (zoneId: string | null) => store.versions(zoneId),

    /**
     * What `lookups` would answer, when it can be told from the rows kept for exactly `version` (the tenancy version a
     * probe just read), without a read or a promise; undefined when it cannot, and the caller asks `lookups`. Expiry
     * and not-before are checked now, as on every use.
     */
    peek: {
      /** `secretHash`: the token's `hashSecret`, which the caller may have kept from an earlier request. */
      token(secretHash: string, version: number): TokenCheck | undefined {
        if (cache.version !== version) return undefined;
        const token = cache.tokens.get(secretHash);
        return token && checkTokenRow(token);
      },
      apiKey(email: string, apiKey: string, version: number): Principal | null | undefined {
        if (cache.version !== version) return undefined;
        const entry = cache.users.get(email.trim().toLowerCase());
        return entry && checkUserKey(entry, apiKey);
      },
      zone(id: string, version: number): Zone | undefined {
        return cache.version === version ? cache.zones.get(id) : undefined;
      },
    },

    getZone: (id: string) => store.read((r) => r.tenancy.getZone(id)),
    getAccount: (id: string) => store.read((r) => r.tenancy.getAccount(id)),
    listAccounts: () => store.read((r) => r.tenancy.listAccounts()),
    listUsers: () => store.read((r) => r.tenancy.listUsers()),
    listTokens: () => store.read((r) => r.tenancy.listTokens()),
    listZones: (q: import('./ports.js').ZoneQuery, page: import('./model.js').PageRequest) =>
      store.read((r) => r.tenancy.listZones(q, page)),
  };
}

/**
 * Authentication (who is calling) and authorisation (may they touch this zone or account), Cloudflare's way:
 * `Authorization: Bearer <token>` or `X-Auth-Email` + `X-Auth-Key`.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Permission, Zone } from '../domain/model.js';
import { API_KEY_RE, hashSecret, isAllowed, type CredentialLookups, type Principal, type Resource, type TenancyService } from '../domain/tenancy.js';
import { ApiError } from './errors.js';

/** The scheme name is case-insensitive (RFC 9110 §11.1). */
const BEARER_RE = /^Bearer ([A-Za-z0-9_-]{1,200})$/i;
const EMAIL_RE = /^[^\s@]{1,64}@[^\s@]{1,255}$/;

const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

const bearerSecret = (authorization: string): string | undefined => BEARER_RE.exec(authorization.trim())?.[1];

/** The credential a request's headers carry, Cloudflare's way. */
export type Credential = { type: 'token'; secret: string } | { type: 'key'; email: string; key: string };

/** Reads the credential from the headers; throws the error Cloudflare answers when it is missing or malformed. */
export function readCredential(headers: IncomingHttpHeaders): Credential {
  const authorization = header(headers, 'authorization');
  const email = header(headers, 'x-auth-email');
  const key = header(headers, 'x-auth-key');

  // A bearer token wins when both schemes are sent (documented in docs/compatibility.md).
  if (authorization !== undefined) {
    const secret = bearerSecret(authorization);
    if (secret === undefined) throw new ApiError('auth.bad_header_authorization');
    return { type: 'token', secret };
  }
  if (email === undefined || key === undefined || email === '' || key === '') throw new ApiError('auth.missing');
  if (!EMAIL_RE.test(email.trim())) throw new ApiError('auth.bad_header_email');
  if (!API_KEY_RE.test(key.trim())) throw new ApiError('auth.bad_header_key');
  return { type: 'key', email, key: key.trim() };
}

export async function authenticate(tenancy: CredentialLookups, headers: IncomingHttpHeaders): Promise<Principal> {
  const c = readCredential(headers);
  if (c.type === 'token') {
    const check = await tenancy.checkToken(c.secret);
    if (!check.ok) throw new ApiError('auth.invalid_token');
    return { type: 'token', token: check.token };
  }
  const principal = await tenancy.checkApiKey(c.email, c.key);
  if (!principal) throw new ApiError('auth.invalid_key');
  return principal;
}

/**
 * The token digests (`hashSecret`) of the bearer credentials connections last sent, for the answer-from-memory step.
 * A keep-alive client sends the same Authorization header with every request; remembering, per connection, the header
 * and its token's digest spares that step the header's parse and a SHA-256 (under callgrind, about 4k of its
 * instructions a request). Only that reading is remembered: whether the token is valid, unexpired and allowed is
 * decided again on every request. The header is held by the connection that sent it, only while it is open, as an
 * HTTP/2 connection holds it in its header table; nothing is kept across connections.
 */
export type BearerDigests = WeakMap<object, { authorization: string; digest: string }>;

/** The digest of the bearer token in `authorization`; undefined when the header is not a well-formed bearer one. */
function bearerDigest(seen: BearerDigests, connection: object, authorization: string): string | undefined {
  const last = seen.get(connection);
  if (last !== undefined && last.authorization === authorization) return last.digest;
  const secret = bearerSecret(authorization);
  if (secret === undefined) return undefined;
  const digest = hashSecret(secret);
  seen.set(connection, { authorization, digest });
  return digest;
}

/**
 * The principal `authenticate` would find, when the rows kept for tenancy version `version` tell it without a read
 * (`TenancyService.peek`); undefined when they do not, or when `authenticate` would refuse the request: the caller
 * then takes the full path, which answers it.
 */
export function authenticateFromMemory(tenancy: TenancyService, req: IncomingMessage, version: number, seen: BearerDigests): Principal | undefined {
  const authorization = header(req.headers, 'authorization');
  // A bearer token wins when both schemes are sent, as in readCredential.
  if (authorization !== undefined) {
    const digest = bearerDigest(seen, req.socket, authorization);
    const check = digest === undefined ? undefined : tenancy.peek.token(digest, version);
    return check?.ok ? { type: 'token', token: check.token } : undefined;
  }
  let c: Credential;
  try {
    c = readCredential(req.headers);
  } catch {
    return undefined;
  }
  return c.type === 'key' ? (tenancy.peek.apiKey(c.email, c.key, version) ?? undefined) : undefined;
}

/** The zone `authorizeZone` would allow, from the rows kept for `version`; undefined when it cannot tell or would refuse. */
export function authorizeZoneFromMemory(
  tenancy: TenancyService,
  principal: Principal,
  zoneId: string,
  permission: Permission,
  version: number,
): Zone | undefined {
  const zone = tenancy.peek.zone(zoneId, version);
  return zone && isAllowed(principal, permission, { type: 'zone', zone }) ? zone : undefined;
}

/**
 * Loads the zone and checks the permission. An unknown zone and a zone the credential may not touch get the same
 * 403, so ids cannot be probed.
 */
export async function authorizeZone(
  tenancy: CredentialLookups,
  principal: Principal,
  zoneId: string,
  permission: Permission,
): Promise<Zone> {
  const zone = await tenancy.getZone(zoneId);
  if (!zone || !isAllowed(principal, permission, { type: 'zone', zone })) throw new ApiError('auth.forbidden');
  return zone;
}

export async function authorizeAccount(
  tenancy: CredentialLookups,
  principal: Principal,
  accountId: string,
  permission: Permission,
): Promise<void> {
  const account = await tenancy.getAccount(accountId);
  const resource: Resource = { type: 'account', accountId };
  if (!account || !isAllowed(principal, permission, resource)) throw new ApiError('auth.forbidden');
}

/**
 * Authentication (who is calling) and authorisation (may they touch this zone or account), Cloudflare's way:
 * `Authorization: Bearer <token>` or `X-Auth-Email` + `X-Auth-Key`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Permission, Zone } from '../domain/model.js';
import { API_KEY_RE, isAllowed, type CredentialLookups, type Principal, type Resource } from '../domain/tenancy.js';
import { ApiError } from './errors.js';

/** The scheme name is case-insensitive (RFC 9110 §11.1). */
const BEARER_RE = /^Bearer ([A-Za-z0-9_-]{1,200})$/i;
const EMAIL_RE = /^[^\s@]{1,64}@[^\s@]{1,255}$/;

const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

export async function authenticate(tenancy: CredentialLookups, headers: IncomingHttpHeaders): Promise<Principal> {
  const authorization = header(headers, 'authorization');
  const email = header(headers, 'x-auth-email');
  const key = header(headers, 'x-auth-key');

  // A bearer token wins when both schemes are sent (documented in docs/compatibility.md).
  if (authorization !== undefined) {
    const m = BEARER_RE.exec(authorization.trim());
    if (!m) throw new ApiError('auth.bad_header_authorization');
    const check = await tenancy.checkToken(m[1]);
    if (!check.ok) throw new ApiError('auth.invalid_token');
    return { type: 'token', token: check.token };
  }
  if (email === undefined || key === undefined || email === '' || key === '') throw new ApiError('auth.missing');
  if (!EMAIL_RE.test(email.trim())) throw new ApiError('auth.bad_header_email');
  if (!API_KEY_RE.test(key.trim())) throw new ApiError('auth.bad_header_key');
  const principal = await tenancy.checkApiKey(email, key.trim());
  if (!principal) throw new ApiError('auth.invalid_key');
  return principal;
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

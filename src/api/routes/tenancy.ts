/** Supporting routes real clients call: token verification and zone lookup. */
import { canSeeZone, type Principal } from '../../domain/tenancy.js';
import type { ZoneQuery } from '../../domain/ports.js';
import { resultInfo } from '../envelope.js';
import { ApiError } from '../errors.js';
import { tokenVerification, zone as presentZone } from '../presenters.js';
import { pageRequest, stringParam } from '../query.js';
import type { ApiServices, CertplaneServer } from '../server.js';
import { normalizeHostname } from '../../domain/hostnames.js';

/** The zones a principal may see, as a query restriction (never a scan of every zone). */
function visibility(principal: Principal): Pick<ZoneQuery, 'accountIds' | 'zoneIds'> {
  if (principal.type === 'user') return { accountIds: principal.accountIds };
  const scopes = principal.token.policies.filter((p) => p.permissions.length > 0).flatMap((p) => p.scopes);
  if (scopes.some((s) => s.type === 'all')) return {};
  return {
    accountIds: scopes.filter((s) => s.type === 'account').map((s) => s.id),
    zoneIds: scopes.filter((s) => s.type === 'zone').map((s) => s.id),
  };
}

export function registerTenancyRoutes(app: CertplaneServer, services: ApiServices): void {
  const { tenancy } = services;

  app.defineRoute({
    method: 'GET',
    url: '/user/tokens/verify',
    family: 'generic',
    // cloudflare-behavior.md §4.4: a bad token at this route is 401/1000 "Invalid API Token", not 9109.
    invalidTokenError: 'auth.verify_invalid_token',
    handler: async ({ principal }) => {
      if (principal.type !== 'token') throw new ApiError('auth.verify_invalid_token');
      return {
        result: tokenVerification(principal.token),
        messages: [{ code: 10000, message: 'This API Token is valid and active', type: null }],
      };
    },
  });

  app.defineRoute({
    method: 'GET',
    url: '/zones',
    family: 'generic',
    handler: async ({ principal, query }) => {
      const page = pageRequest(query, 'generic', { perPage: 20, maxPerPage: 50 });
      const rawName = stringParam(query, 'name', 'generic');
      let name: string | undefined;
      if (rawName !== undefined && rawName !== '') {
        const n = normalizeHostname(rawName);
        // A name that cannot be a zone matches nothing (Cloudflare answers an empty list).
        name = n.ok ? n.hostname : '\u0000';
      }
      const { items, totalCount } = await tenancy.listZones({ name, ...visibility(principal) }, page);
      const accounts = new Map<string, Awaited<ReturnType<typeof tenancy.getAccount>>>();
      const result = [];
      for (const z of items) {
        if (!accounts.has(z.accountId)) accounts.set(z.accountId, await tenancy.getAccount(z.accountId));
        result.push(presentZone(z, accounts.get(z.accountId) ?? null));
      }
      return { result, resultInfo: resultInfo(page.page, page.perPage, result.length, totalCount) };
    },
  });

  app.defineRoute({
    method: 'GET',
    url: '/zones/:zone_id',
    family: 'generic',
    handler: async ({ principal, params }) => {
      const zone = await tenancy.getZone(params.zone_id);
      if (!zone || !canSeeZone(principal, zone)) throw new ApiError('auth.forbidden');
      return { result: presentZone(zone, await tenancy.getAccount(zone.accountId)) };
    },
  });

}

/**
 * The authorization matrix, generated from the route table (`app.routeSpecs`), so a route added later cannot be
 * forgotten: every route that acts on a zone or an account × every kind of credential gives the expected status and
 * code. Credentials are judged before anything else (the body is `{}` and the ids need not exist): the cases that
 * must pass authorization only have to get past it (any answer but an authentication or authorization error).
 * Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Permission } from '../src/domain/model.js';
import { assertError, startServer, type ApiResponse, type TestServer } from './helpers/harness.js';

const UNKNOWN_TOKEN = 'A'.repeat(20) + 'b'.repeat(19) + '_';
const keyHeaders = (email: string, key: string) => ({ 'X-Auth-Email': email, 'X-Auth-Key': key });

/** Not an authentication or authorization refusal: the request reached the route's own checks. */
function pastAuth(res: ApiResponse, what: string): void {
  const codes = (res.body?.errors ?? []).map((e: { code: number }) => e.code);
  const refused = res.status === 401 || (res.status === 403 && codes.some((c: number) => [10000, 9103, 9109].includes(c))) || codes.includes(9106) || codes.includes(6003);
  assert.equal(refused, false, `${what}: refused with ${res.status} ${res.text}`);
  assert.ok(res.status < 500, `${what}: ${res.status} ${res.text}`);
}

describe('authorization matrix, generated from the route table', () => {
  let s: TestServer;
  let secondZone: string;
  let otherAccount: string;
  let otherZone: string;
  const tokens: Record<string, string> = {};
  let outsider: Record<string, string>;

  before(async () => {
    s = await startServer();
    const t = s.cp.services.tenancy;
    secondZone = (await t.createZone({ name: 'second.example.org', accountId: s.accountId })).id;
    otherAccount = (await t.createAccount('Another account')).id;
    otherZone = (await t.createZone({ name: 'other.example.net', accountId: otherAccount })).id;
    const all: Permission[] = ['ssl:read', 'ssl:write', 'access-certificate:read', 'access-certificate:write'];
    tokens.allHere = await s.makeToken(all, [{ type: 'account', id: s.accountId }]);
    tokens.otherZoneSameAccount = await s.makeToken(all, [{ type: 'zone', id: secondZone }]);
    tokens.otherAccount = await s.makeToken(all, [{ type: 'account', id: otherAccount }]);
    tokens.sslRead = await s.makeToken(['ssl:read'], [{ type: 'all' }]);
    tokens.sslWrite = await s.makeToken(['ssl:write'], [{ type: 'all' }]);
    tokens.accessRead = await s.makeToken(['access-certificate:read'], [{ type: 'all' }]);
    tokens.accessWrite = await s.makeToken(['access-certificate:write'], [{ type: 'all' }]);
    tokens.expired = await s.makeToken(all, [{ type: 'all' }], { expiresOn: new Date(s.clock.now().getTime() - 60_000) });
    const { token, secret } = await t.createToken({ name: 'revoked', policies: [{ permissions: all, scopes: [{ type: 'all' }] }] });
    await t.revokeToken(token.id);
    tokens.revoked = secret;
    const { apiKey } = await t.createUser({ email: 'outsider@example.net', accountIds: [otherAccount] });
    outsider = keyHeaders('outsider@example.net', apiKey);
  });
  after(() => s?.close());

  test('every route acting on a zone or an account, with every kind of credential', async () => {
    const routes = s.cp.app.routeSpecs.filter((r) => r.permission && /:(zone|account)_id/.test(r.url));
    // The table has both features' routes (a route registered outside defineRoute would not be here).
    assert.ok(routes.filter((r) => r.url.includes('origin_tls_client_auth')).length >= 13, 'AOP routes');
    assert.ok(routes.filter((r) => r.url.includes('/access/certificates')).length >= 14, 'Access routes');
    let checked = 0;
    for (const r of routes) {
      const path = r.url
        .replace(':zone_id', s.zoneId)
        .replace(':account_id', s.accountId)
        .replace(':certificate_id', '0123456789abcdef0123456789abcdef')
        .replace(':hostname', 'app.example.com');
      const what = `${r.method} ${r.url}`;
      const write = r.method !== 'GET';
      const body = write ? {} : undefined;
      const family = r.permission!.startsWith('ssl') ? 'ssl' : 'access';
      const call = (o: { token?: string | null; headers?: Record<string, string> }) => s.request(r.method, path, { ...o, body });

      assertError(await call({ token: null }), 400, 9106, 'Missing X-Auth-Key, X-Auth-Email or Authorization headers');
      assertError(await call({ token: null, headers: { authorization: `Token ${tokens.allHere}` } }), 400, 6003, 'Invalid request headers');
      for (const t of [UNKNOWN_TOKEN, tokens.expired, tokens.revoked]) assertError(await call({ token: t }), 401, 9109, 'Invalid access token');
      // Scope: a token for another zone of the same account (zone routes) or for another account.
      if (r.url.includes(':zone_id')) assertError(await call({ token: tokens.otherZoneSameAccount }), 403, 10000, 'Authentication error');
      assertError(await call({ token: tokens.otherAccount }), 403, 10000, 'Authentication error');
      // Permission: the other feature's tokens, and a read-only token on a write route.
      for (const t of family === 'ssl' ? [tokens.accessRead, tokens.accessWrite] : [tokens.sslRead, tokens.sslWrite]) {
        assertError(await call({ token: t }), 403, 10000, 'Authentication error');
      }
      const readOnly = family === 'ssl' ? tokens.sslRead : tokens.accessRead;
      if (write) assertError(await call({ token: readOnly }), 403, 10000, 'Authentication error');
      else pastAuth(await call({ token: readOnly }), `${what} with a read-only token`);
      pastAuth(await call({ token: write ? (family === 'ssl' ? tokens.sslWrite : tokens.accessWrite) : readOnly }), `${what} with its own permission`);
      pastAuth(await call({ token: tokens.allHere }), `${what} with an account token`);
      // Email + global key: the installation's user (a member of the account) passes; another account's user does not.
      pastAuth(await call({ token: null, headers: keyHeaders(s.email, s.apiKey) }), `${what} with email + key`);
      assertError(await call({ token: null, headers: outsider }), 403, 10000, 'Authentication error');
      assertError(await call({ token: null, headers: keyHeaders(s.email, '0123456789abcdef0123456789abcdef01234') }), 403, 9103);
      checked++;
    }
    assert.equal(checked, routes.length);
  });

  test('the same token is refused on another account’s zone for every route, whatever its permissions', async () => {
    for (const r of s.cp.app.routeSpecs.filter((x) => x.permission && x.url.includes(':zone_id'))) {
      const path = r.url.replace(':zone_id', otherZone).replace(':certificate_id', '0123456789abcdef0123456789abcdef').replace(':hostname', 'app.example.com');
      assertError(await s.request(r.method, path, { token: tokens.allHere, body: r.method === 'GET' ? undefined : {} }), 403, 10000, 'Authentication error');
    }
  });
});

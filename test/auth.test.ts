/**
 * Authentication and authorisation over real HTTP: Bearer tokens and email + global API key, Cloudflare's error
 * codes for each failure (cloudflare-behavior.md §4.4, §5), token scopes and permissions, no zone enumeration,
 * /user/tokens/verify, GET /zones and GET /zones/{id}, and secrets stored only as hashes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { assertError, assertOk, startServer, type ApiResponse, type TestServer } from './helpers/harness.js';
import { openTestStore, storedText } from './helpers/store.js';
import type { Store } from '../src/domain/ports.js';
import { createTenancyService } from '../src/domain/tenancy.js';
import { randomIds } from '../src/main.js';
import type { Account, Zone } from '../src/domain/model.js';

const HOUR = 3_600_000;
/** Well-formed (40 characters of the token alphabet) but never issued. */
const UNKNOWN_TOKEN = 'A'.repeat(20) + 'b'.repeat(19) + '_';
/** Well-formed (37 lowercase hex) but nobody's key. */
const UNKNOWN_KEY = '0123456789abcdef0123456789abcdef01234';
/** Well-formed but nonexistent object id. */
const NO_SUCH_ID = 'f'.repeat(32);

let s: TestServer;
/** The bootstrap account's second zone, and an unrelated account with its own zone. */
let second: Zone;
let other: Account;
let otherZone: Zone;
/** An account with six zones, for pagination. */
let paged: Account;
const pagedNames = ['p1.example', 'p2.example', 'p3.example', 'p4.example', 'p5.example', 'p6.example'];
/** Every secret this file creates, to look for in the database afterwards. */
const secrets: string[] = [];

const settings = (zoneId: string) => `/zones/${zoneId}/origin_tls_client_auth/settings`;
const keyHeaders = (email: string, key: string) => ({ 'X-Auth-Email': email, 'X-Auth-Key': key });

function assertJson(res: ApiResponse): void {
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
}

/** Asserts the exact failure body, error_chain included. */
function assertExactError(res: ApiResponse, status: number, error: Record<string, unknown>): void {
  assert.equal(res.status, status, res.text);
  assertJson(res);
  assert.deepEqual(res.body, { success: false, errors: [error], messages: [], result: null });
}

const MISSING = { code: 9106, message: 'Missing X-Auth-Key, X-Auth-Email or Authorization headers' };
const BAD_AUTHORIZATION = {
  code: 6003,
  message: 'Invalid request headers',
  error_chain: [{ code: 6111, message: 'Invalid format for Authorization header' }],
};
const BAD_EMAIL = {
  code: 6003,
  message: 'Invalid request headers',
  error_chain: [{ code: 6102, message: 'Invalid format for X-Auth-Email header' }],
};
const BAD_KEY = {
  code: 6003,
  message: 'Invalid request headers',
  error_chain: [{ code: 6103, message: 'Invalid format for X-Auth-Key header' }],
};
const INVALID_TOKEN = { code: 9109, message: 'Invalid access token' };
const UNKNOWN_KEY_ERROR = { code: 9103, message: 'Unknown X-Auth-Key or X-Auth-Email' };
const FORBIDDEN = { code: 10000, message: 'Authentication error' };
const VERIFY_INVALID = { code: 1000, message: 'Invalid API Token' };

function assertForbidden(res: ApiResponse): void {
  assertExactError(res, 403, FORBIDDEN);
}

async function token(...args: Parameters<TestServer['makeToken']>): Promise<string> {
  const secret = await s.makeToken(...args);
  secrets.push(secret);
  return secret;
}

before(async () => {
  s = await startServer();
  secrets.push(s.token, s.apiKey);
  const t = s.cp.services.tenancy;
  second = await t.createZone({ name: 'example.org', accountId: s.accountId });
  other = await t.createAccount('Other account');
  otherZone = await t.createZone({ name: 'example.net', accountId: other.id });
  paged = await t.createAccount('Paged account');
  // Created out of order: the list is ordered by name.
  for (const name of [...pagedNames].reverse()) await t.createZone({ name, accountId: paged.id });
});

after(async () => {
  await s?.close();
});

describe('missing and malformed credentials', () => {
  test('no credentials at all → 400 9106 on every kind of route', async () => {
    for (const path of [
      settings(s.zoneId),
      `/accounts/${s.accountId}/access/certificates`,
      `/zones/${s.zoneId}/access/certificates`,
      '/zones',
      `/zones/${s.zoneId}`,
      '/user/tokens/verify',
    ]) {
      assertExactError(await s.request('GET', path, { token: null }), 400, MISSING);
    }
    // A write without credentials is refused before its body is looked at.
    assertExactError(await s.request('PUT', settings(s.zoneId), { token: null, body: { enabled: true } }), 400, MISSING);
    // Credentials are checked before the body is parsed: malformed JSON from nobody is still 9106.
    assertExactError(await s.request('PUT', settings(s.zoneId), { token: null, raw: '{not json' }), 400, MISSING);
    assertExactError(
      await s.request('PUT', settings(s.zoneId), { token: UNKNOWN_TOKEN, raw: '{not json' }),
      401,
      INVALID_TOKEN,
    );
  });

  test('malformed Authorization header → 400 6003 with error_chain 6111', async () => {
    const bad = [
      s.token, // no scheme
      `Token ${s.token}`,
      `Basic ${Buffer.from('user:pass').toString('base64')}`,
      'Bearer',
      'Bearer ',
      `Bearer ${s.token.slice(0, 20)}!${s.token.slice(21)}`, // a character outside [A-Za-z0-9_-]
      `Bearer ${s.token.slice(0, 20)}.${s.token.slice(21)}`,
      `Bearer ${s.token} extra`,
      `Bearer ${'a'.repeat(201)}`,
      '',
    ];
    for (const authorization of bad) {
      const res = await s.request('GET', settings(s.zoneId), { headers: { authorization } });
      assertExactError(res, 400, BAD_AUTHORIZATION);
    }
    assertExactError(await s.request('GET', '/zones', { headers: { authorization: 'Bearer' } }), 400, BAD_AUTHORIZATION);
    // The scheme name itself is case-insensitive.
    for (const scheme of ['bearer', 'BEARER']) {
      assertOk(await s.request('GET', settings(s.zoneId), { headers: { authorization: `${scheme} ${s.token}` } }));
    }
    assertExactError(
      await s.request('GET', '/user/tokens/verify', { headers: { authorization: 'Bearer a+b' } }),
      400,
      BAD_AUTHORIZATION,
    );
  });

  test('email and key: only one of the two headers, or an empty one → 400 9106', async () => {
    for (const headers of <Record<string, string>[]>[
      { 'X-Auth-Email': s.email },
      { 'X-Auth-Key': s.apiKey },
      { 'X-Auth-Email': s.email, 'X-Auth-Key': '' },
      { 'X-Auth-Email': '', 'X-Auth-Key': s.apiKey },
    ]) {
      assertExactError(await s.request('GET', settings(s.zoneId), { token: null, headers }), 400, MISSING);
    }
  });

  test('malformed X-Auth-Email → 400 6003 with error_chain 6102', async () => {
    for (const email of ['admin', 'admin@', '@example.com', 'ad min@example.com', 'a@b@c']) {
      const res = await s.request('GET', settings(s.zoneId), { token: null, headers: keyHeaders(email, s.apiKey) });
      assertExactError(res, 400, BAD_EMAIL);
    }
    // The email is checked first: both malformed → 6102.
    const res = await s.request('GET', settings(s.zoneId), { token: null, headers: keyHeaders('nope', 'nope') });
    assertExactError(res, 400, BAD_EMAIL);
  });

  test('malformed X-Auth-Key → 400 6003 with error_chain 6103', async () => {
    for (const key of [
      'abc',
      s.apiKey.slice(0, 36), // 36 characters
      `${s.apiKey}0`, // 38 characters
      s.apiKey.toUpperCase().replace(/^[0-9]/, 'A'), // upper-case hex (forced to contain a letter)
      `${s.apiKey.slice(0, 36)}g`, // not hex
      `v1.0-${'a'.repeat(32)}`, // an Origin CA service key is not a global key
    ]) {
      const res = await s.request('GET', settings(s.zoneId), { token: null, headers: keyHeaders(s.email, key) });
      assertExactError(res, 400, BAD_KEY);
    }
  });
});

describe('bearer tokens', () => {
  test('the bootstrap token works on AOP, Access, zones and verify routes', async () => {
    assert.deepEqual(assertOk(await s.request('GET', settings(s.zoneId))), { enabled: false });
    assertOk(await s.request('GET', `/accounts/${s.accountId}/access/certificates`));
    assertOk(await s.request('GET', `/zones/${s.zoneId}/access/certificates`));
    assertOk(await s.request('GET', `/zones/${s.zoneId}`));
  });

  test('a well-formed but unknown token → 401 9109', async () => {
    for (const secret of [UNKNOWN_TOKEN, 'abc', 'x'.repeat(200)]) {
      assertExactError(await s.request('GET', settings(s.zoneId), { token: secret }), 401, INVALID_TOKEN);
      assertExactError(await s.request('GET', '/zones', { token: secret }), 401, INVALID_TOKEN);
    }
    // A token differing from a real one in its last character is unknown.
    const near = s.token.slice(0, 39) + (s.token[39] === 'a' ? 'b' : 'a');
    assertExactError(await s.request('GET', settings(s.zoneId), { token: near }), 401, INVALID_TOKEN);
  });

  test('a revoked token → 401 9109 (it worked before)', async () => {
    const { token: t, secret } = await s.cp.services.tenancy.createToken({
      name: 'to revoke',
      policies: [{ permissions: ['ssl:read'], scopes: [{ type: 'all' }] }],
    });
    secrets.push(secret);
    assertOk(await s.request('GET', settings(s.zoneId), { token: secret }));
    const revoked = await s.cp.services.tenancy.revokeToken(t.id);
    assert.equal(revoked.status, 'disabled');
    assertExactError(await s.request('GET', settings(s.zoneId), { token: secret }), 401, INVALID_TOKEN);
    assertExactError(await s.request('GET', '/zones', { token: secret }), 401, INVALID_TOKEN);
    // Revoking again keeps it revoked.
    await s.cp.services.tenancy.revokeToken(t.id);
    assertExactError(await s.request('GET', settings(s.zoneId), { token: secret }), 401, INVALID_TOKEN);
  });

  test('an expired token → 401 9109, both when created expired and when the clock passes expires_on', async () => {
    const now = s.clock.now().getTime();
    const past = await token(['ssl:read'], [{ type: 'all' }], { expiresOn: new Date(now - 1000) });
    assertExactError(await s.request('GET', settings(s.zoneId), { token: past }), 401, INVALID_TOKEN);

    const soon = await token(['ssl:read'], [{ type: 'all' }], { expiresOn: new Date(now + HOUR) });
    assertOk(await s.request('GET', settings(s.zoneId), { token: soon }));
    s.clock.advance(HOUR - 1);
    assertOk(await s.request('GET', settings(s.zoneId), { token: soon }));
    s.clock.advance(1); // exactly expires_on: expired
    assertExactError(await s.request('GET', settings(s.zoneId), { token: soon }), 401, INVALID_TOKEN);
    // The bootstrap token never expires.
    assertOk(await s.request('GET', settings(s.zoneId)));
  });

  test('a not-yet-valid token → 401 9109 until not_before', async () => {
    const now = s.clock.now().getTime();
    const later = await token(['ssl:read'], [{ type: 'all' }], { notBefore: new Date(now + HOUR) });
    assertExactError(await s.request('GET', settings(s.zoneId), { token: later }), 401, INVALID_TOKEN);
    s.clock.advance(HOUR - 1);
    assertExactError(await s.request('GET', settings(s.zoneId), { token: later }), 401, INVALID_TOKEN);
    s.clock.advance(1); // exactly not_before: valid
    assertOk(await s.request('GET', settings(s.zoneId), { token: later }));
  });

  test('a bearer token wins when both schemes are sent (implemented choice)', async () => {
    // Valid token + wrong key: the token decides.
    const res = await s.request('GET', settings(s.zoneId), { headers: { authorization: `Bearer ${s.token}`, ...keyHeaders(s.email, UNKNOWN_KEY) } });
    assertOk(res);
    // Unknown token + valid key: the token decides.
    const res2 = await s.request('GET', settings(s.zoneId), {
      headers: { authorization: `Bearer ${UNKNOWN_TOKEN}`, ...keyHeaders(s.email, s.apiKey) },
    });
    assertExactError(res2, 401, INVALID_TOKEN);
  });
});

describe('email + global API key', () => {
  test('works on AOP (read and write) and Access (account and zone) routes', async () => {
    const headers = keyHeaders(s.email, s.apiKey);
    assert.deepEqual(assertOk(await s.request('GET', settings(s.zoneId), { token: null, headers })), { enabled: false });
    assert.deepEqual(
      assertOk(await s.request('PUT', settings(s.zoneId), { token: null, headers, body: { enabled: true } })),
      { enabled: true },
    );
    assert.deepEqual(
      assertOk(await s.request('PUT', settings(s.zoneId), { token: null, headers, body: { enabled: false } })),
      { enabled: false },
    );
    assertOk(await s.request('GET', `/zones/${s.zoneId}/origin_tls_client_auth/hostnames`, { token: null, headers }));
    assert.deepEqual(assertOk(await s.request('GET', `/accounts/${s.accountId}/access/certificates`, { token: null, headers })), []);
    assert.deepEqual(assertOk(await s.request('GET', `/zones/${s.zoneId}/access/certificates`, { token: null, headers })), []);
    assert.deepEqual(
      assertOk(await s.request('GET', `/accounts/${s.accountId}/access/certificates/settings`, { token: null, headers })),
      [],
    );
    // The second zone of the same account too.
    assertOk(await s.request('GET', settings(second.id), { token: null, headers }));
  });

  test('the email is case-insensitive', async () => {
    const res = await s.request('GET', settings(s.zoneId), { token: null, headers: keyHeaders(s.email.toUpperCase(), s.apiKey) });
    assertOk(res);
  });

  test('a wrong key, or an unknown email → 403 9103', async () => {
    assertExactError(
      await s.request('GET', settings(s.zoneId), { token: null, headers: keyHeaders(s.email, UNKNOWN_KEY) }),
      403,
      UNKNOWN_KEY_ERROR,
    );
    assertExactError(
      await s.request('GET', settings(s.zoneId), { token: null, headers: keyHeaders('nobody@example.com', s.apiKey) }),
      403,
      UNKNOWN_KEY_ERROR,
    );
    assertExactError(
      await s.request('GET', '/zones', { token: null, headers: keyHeaders(s.email, UNKNOWN_KEY) }),
      403,
      UNKNOWN_KEY_ERROR,
    );
  });

  test('a user who is not a member of the zone’s account → 403 10000; its own account works', async () => {
    const { apiKey } = await s.cp.services.tenancy.createUser({ email: 'outsider@example.net', accountIds: [other.id] });
    secrets.push(apiKey);
    const headers = keyHeaders('outsider@example.net', apiKey);
    assertForbidden(await s.request('GET', settings(s.zoneId), { token: null, headers }));
    assertForbidden(await s.request('PUT', settings(s.zoneId), { token: null, headers, body: { enabled: true } }));
    assertForbidden(await s.request('GET', `/zones/${s.zoneId}/access/certificates`, { token: null, headers }));
    assertForbidden(await s.request('GET', `/accounts/${s.accountId}/access/certificates`, { token: null, headers }));
    assertForbidden(await s.request('GET', `/zones/${s.zoneId}`, { token: null, headers }));
    assertOk(await s.request('GET', settings(otherZone.id), { token: null, headers }));
    assertOk(await s.request('GET', `/accounts/${other.id}/access/certificates`, { token: null, headers }));
    // The bootstrap admin, in turn, is not a member of the other account.
    const admin = keyHeaders(s.email, s.apiKey);
    assertForbidden(await s.request('GET', settings(otherZone.id), { token: null, headers: admin }));
    assertForbidden(await s.request('GET', `/accounts/${other.id}/access/certificates`, { token: null, headers: admin }));
    // The setting of the bootstrap zone was not changed by the refused PUT.
    assert.deepEqual(assertOk(await s.request('GET', settings(s.zoneId))), { enabled: false });
  });
});

describe('token scopes and permissions', () => {
  test('a zone-scoped token works on its zone only (403 10000 elsewhere, even in the same account)', async () => {
    const t = await token(['ssl:write', 'access-certificate:write'], [{ type: 'zone', id: s.zoneId }]);
    assertOk(await s.request('GET', settings(s.zoneId), { token: t }));
    assertOk(await s.request('GET', `/zones/${s.zoneId}/access/certificates`, { token: t }));
    assertForbidden(await s.request('GET', settings(second.id), { token: t }));
    assertForbidden(await s.request('PUT', settings(second.id), { token: t, body: { enabled: true } }));
    assertForbidden(await s.request('GET', settings(otherZone.id), { token: t }));
    assertForbidden(await s.request('GET', `/zones/${otherZone.id}/access/certificates`, { token: t }));
    // A zone scope does not reach the account-level Access routes of the zone's account.
    assertForbidden(await s.request('GET', `/accounts/${s.accountId}/access/certificates`, { token: t }));
  });

  test('an account-scoped token works on every zone of its account, 403 10000 on another account', async () => {
    const t = await token(['ssl:read', 'access-certificate:read'], [{ type: 'account', id: s.accountId }]);
    assertOk(await s.request('GET', settings(s.zoneId), { token: t }));
    assertOk(await s.request('GET', settings(second.id), { token: t }));
    assertOk(await s.request('GET', `/accounts/${s.accountId}/access/certificates`, { token: t }));
    assertOk(await s.request('GET', `/zones/${second.id}/access/certificates`, { token: t }));
    assertForbidden(await s.request('GET', settings(otherZone.id), { token: t }));
    assertForbidden(await s.request('GET', `/zones/${otherZone.id}/access/certificates`, { token: t }));
    assertForbidden(await s.request('GET', `/accounts/${other.id}/access/certificates`, { token: t }));
  });

  test('several policies: each permission applies only to its own scopes', async () => {
    const { secret } = await s.cp.services.tenancy.createToken({
      name: 'two policies',
      policies: [
        { permissions: ['ssl:write'], scopes: [{ type: 'zone', id: s.zoneId }] },
        { permissions: ['ssl:read'], scopes: [{ type: 'zone', id: second.id }] },
      ],
    });
    secrets.push(secret);
    assertOk(await s.request('PUT', settings(s.zoneId), { token: secret, body: { enabled: false } }));
    assertOk(await s.request('GET', settings(second.id), { token: secret }));
    assertForbidden(await s.request('PUT', settings(second.id), { token: secret, body: { enabled: true } }));
  });

  test('a read-only token (ssl:read) can GET but not PUT, POST or DELETE → 403 10000', async () => {
    const t = await token(['ssl:read'], [{ type: 'zone', id: s.zoneId }]);
    const z = `/zones/${s.zoneId}/origin_tls_client_auth`;
    assertOk(await s.request('GET', settings(s.zoneId), { token: t }));
    assertOk(await s.request('GET', z, { token: t }));
    assertOk(await s.request('GET', `${z}/hostnames`, { token: t }));
    assertOk(await s.request('GET', `${z}/hostnames/certificates`, { token: t }));
    assertForbidden(await s.request('PUT', settings(s.zoneId), { token: t, body: { enabled: true } }));
    // Permission is checked before the body: even an invalid body is a 403.
    assertForbidden(await s.request('POST', z, { token: t, body: { certificate: 'x', private_key: 'y' } }));
    assertForbidden(await s.request('POST', `${z}/hostnames/certificates`, { token: t, body: {} }));
    assertForbidden(await s.request('PUT', `${z}/hostnames`, { token: t, body: { config: [] } }));
    assertForbidden(await s.request('PUT', settings(s.zoneId), { token: t, raw: '{not json' }));
    assertForbidden(await s.request('PUT', settings(s.zoneId), { token: t }));
    const certId = '3b7c5d4e-1f2a-4b6c-8d9e-0a1b2c3d4e5f';
    assertForbidden(await s.request('DELETE', `${z}/${certId}`, { token: t }));
    assertForbidden(await s.request('DELETE', `${z}/hostnames/certificates/${certId}`, { token: t }));
    // And no access at all to Access routes.
    assertForbidden(await s.request('GET', `/zones/${s.zoneId}/access/certificates`, { token: t }));
    assert.deepEqual(assertOk(await s.request('GET', settings(s.zoneId))), { enabled: false });
  });

  test('a write permission implies the matching read permission, and only that one', async () => {
    const t = await token(['ssl:write'], [{ type: 'zone', id: s.zoneId }]);
    assertOk(await s.request('GET', settings(s.zoneId), { token: t }));
    assert.deepEqual(assertOk(await s.request('PUT', settings(s.zoneId), { token: t, body: { enabled: true } })), { enabled: true });
    assert.deepEqual(assertOk(await s.request('PUT', settings(s.zoneId), { token: t, body: { enabled: false } })), { enabled: false });
    assertForbidden(await s.request('GET', `/zones/${s.zoneId}/access/certificates`, { token: t }));

    const a = await token(['access-certificate:read'], [{ type: 'account', id: s.accountId }]);
    assertOk(await s.request('GET', `/accounts/${s.accountId}/access/certificates`, { token: a }));
    assertForbidden(await s.request('POST', `/accounts/${s.accountId}/access/certificates`, { token: a, body: {} }));
    assertForbidden(await s.request('PUT', `/accounts/${s.accountId}/access/certificates/settings`, { token: a, body: { settings: [] } }));
    assertForbidden(await s.request('GET', settings(s.zoneId), { token: a }));
  });

  test('a well-formed but nonexistent zone or account id → 403 10000, exactly like a forbidden one (no enumeration)', async () => {
    const zoneScoped = await token(['ssl:read'], [{ type: 'zone', id: s.zoneId }]);
    for (const t of [s.token, zoneScoped]) {
      const missing = await s.request('GET', settings(NO_SUCH_ID), { token: t });
      assertForbidden(missing);
      const forbidden = await s.request('GET', settings(otherZone.id), { token: zoneScoped });
      assert.equal(missing.text, forbidden.text);
      assertForbidden(await s.request('PUT', settings(NO_SUCH_ID), { token: t, body: { enabled: true } }));
      assertForbidden(await s.request('GET', `/zones/${NO_SUCH_ID}/access/certificates`, { token: t }));
      assertForbidden(await s.request('GET', `/zones/${NO_SUCH_ID}`, { token: t }));
    }
    assertForbidden(await s.request('GET', `/accounts/${NO_SUCH_ID}/access/certificates`));
    const headers = keyHeaders(s.email, s.apiKey);
    assertForbidden(await s.request('GET', settings(NO_SUCH_ID), { token: null, headers }));
    assertForbidden(await s.request('GET', `/accounts/${NO_SUCH_ID}/access/certificates`, { token: null, headers }));
  });
});

describe('GET /user/tokens/verify', () => {
  const VALID = [{ code: 10000, message: 'This API Token is valid and active', type: null }];

  test('a valid token → exact body with id and status', async () => {
    const res = await s.request('GET', '/user/tokens/verify');
    assert.equal(res.status, 200);
    assertJson(res);
    assert.deepEqual(res.body, {
      success: true,
      errors: [],
      messages: VALID,
      result: { id: s.cp.bootstrap!.tokenId, status: 'active' },
    });
  });

  test('expires_on and not_before are included when the token has them', async () => {
    const now = s.clock.now().getTime();
    const expiresOn = new Date(now + 30 * 24 * HOUR);
    const notBefore = new Date(now - HOUR);
    const { token: t, secret } = await s.cp.services.tenancy.createToken({
      name: 'dated',
      policies: [{ permissions: ['ssl:read'], scopes: [{ type: 'zone', id: s.zoneId }] }],
      expiresOn,
      notBefore,
    });
    secrets.push(secret);
    const res = await s.request('GET', '/user/tokens/verify', { token: secret });
    assert.deepEqual(res.body, {
      success: true,
      errors: [],
      messages: VALID,
      result: { id: t.id, status: 'active', not_before: notBefore.toISOString(), expires_on: expiresOn.toISOString() },
    });

    const onlyExpiry = await s.cp.services.tenancy.createToken({
      name: 'expiring',
      policies: [{ permissions: ['ssl:read'], scopes: [{ type: 'zone', id: s.zoneId }] }],
      expiresOn,
    });
    secrets.push(onlyExpiry.secret);
    const res2 = await s.request('GET', '/user/tokens/verify', { token: onlyExpiry.secret });
    assert.deepEqual(assertOk(res2), { id: onlyExpiry.token.id, status: 'active', expires_on: expiresOn.toISOString() });
  });

  test('an unknown, revoked, expired or not-yet-valid token → 401 1000 "Invalid API Token"', async () => {
    assertExactError(await s.request('GET', '/user/tokens/verify', { token: UNKNOWN_TOKEN }), 401, VERIFY_INVALID);

    const { token: t, secret } = await s.cp.services.tenancy.createToken({
      name: 'verify then revoke',
      policies: [{ permissions: ['ssl:read'], scopes: [{ type: 'all' }] }],
    });
    secrets.push(secret);
    assertOk(await s.request('GET', '/user/tokens/verify', { token: secret }));
    await s.cp.services.tenancy.revokeToken(t.id);
    assertExactError(await s.request('GET', '/user/tokens/verify', { token: secret }), 401, VERIFY_INVALID);

    const now = s.clock.now().getTime();
    const expired = await token(['ssl:read'], [{ type: 'all' }], { expiresOn: new Date(now - 1) });
    assertExactError(await s.request('GET', '/user/tokens/verify', { token: expired }), 401, VERIFY_INVALID);
    const early = await token(['ssl:read'], [{ type: 'all' }], { notBefore: new Date(now + HOUR) });
    assertExactError(await s.request('GET', '/user/tokens/verify', { token: early }), 401, VERIFY_INVALID);
  });

  test('email + global key → 401 1000 (verify is for tokens); a wrong key is still 403 9103', async () => {
    assertExactError(
      await s.request('GET', '/user/tokens/verify', { token: null, headers: keyHeaders(s.email, s.apiKey) }),
      401,
      VERIFY_INVALID,
    );
    assertExactError(
      await s.request('GET', '/user/tokens/verify', { token: null, headers: keyHeaders(s.email, UNKNOWN_KEY) }),
      403,
      UNKNOWN_KEY_ERROR,
    );
  });
});

describe('GET /zones and GET /zones/{id}', () => {
  const names = (res: ApiResponse) => (res.body.result as { name: string }[]).map((z) => z.name);

  test('GET /zones/{id} → the zone object', async () => {
    const res = await s.request('GET', `/zones/${s.zoneId}`);
    const zone = (await s.cp.services.tenancy.getZone(s.zoneId))!;
    assert.equal(res.status, 200);
    assertJson(res);
    assert.deepEqual(res.body, {
      success: true,
      errors: [],
      messages: [],
      result: {
        id: s.zoneId,
        name: 'example.com',
        status: 'active',
        paused: false,
        type: 'full',
        development_mode: 0,
        name_servers: [],
        original_name_servers: null,
        original_registrar: null,
        original_dnshost: null,
        created_on: zone.createdAt.toISOString(),
        modified_on: zone.modifiedAt.toISOString(),
        activated_on: zone.createdAt.toISOString(),
        meta: { china_network_enabled: false },
        owner: { id: null, type: 'user', email: null },
        account: { id: s.accountId, name: 'Default account' },
        permissions: [],
      },
    });
    const o = assertOk(await s.request('GET', `/zones/${otherZone.id}`));
    assert.equal(o.name, 'example.net');
    assert.deepEqual(o.account, { id: other.id, name: 'Other account' });
  });

  test('GET /zones/{id}: visible to a token with any permission on it, 403 10000 otherwise', async () => {
    const access = await token(['access-certificate:read'], [{ type: 'zone', id: second.id }]);
    assert.equal(assertOk(await s.request('GET', `/zones/${second.id}`, { token: access })).name, 'example.org');
    assertForbidden(await s.request('GET', `/zones/${s.zoneId}`, { token: access }));
    assertForbidden(await s.request('GET', `/zones/${otherZone.id}`, { token: access }));
    assertForbidden(await s.request('GET', `/zones/${NO_SUCH_ID}`, { token: access }));
    const headers = keyHeaders(s.email, s.apiKey);
    assert.equal(assertOk(await s.request('GET', `/zones/${second.id}`, { token: null, headers })).name, 'example.org');
    assertForbidden(await s.request('GET', `/zones/${otherZone.id}`, { token: null, headers }));
  });

  test('GET /zones lists only the zones the credential can see, ordered by name', async () => {
    const all = await s.request('GET', '/zones');
    assert.deepEqual(names(all), ['example.com', 'example.net', 'example.org', ...pagedNames]);
    assert.deepEqual(all.body.result_info, { page: 1, per_page: 20, count: 9, total_count: 9, total_pages: 1 });

    const zoneScoped = await token(['ssl:read'], [{ type: 'zone', id: second.id }]);
    assert.deepEqual(names(await s.request('GET', '/zones', { token: zoneScoped })), ['example.org']);

    const accountScoped = await token(['ssl:read'], [{ type: 'account', id: s.accountId }]);
    assert.deepEqual(names(await s.request('GET', '/zones', { token: accountScoped })), ['example.com', 'example.org']);

    const mixed = await token(['access-certificate:read'], [{ type: 'account', id: other.id }, { type: 'zone', id: s.zoneId }]);
    assert.deepEqual(names(await s.request('GET', '/zones', { token: mixed })), ['example.com', 'example.net']);

    const admin = keyHeaders(s.email, s.apiKey);
    assert.deepEqual(names(await s.request('GET', '/zones', { token: null, headers: admin })), ['example.com', 'example.org']);
  });

  test('GET /zones?name= is an exact, case-insensitive match, and never reveals invisible zones', async () => {
    for (const q of ['example.com', 'EXAMPLE.com', 'Example.Com.']) {
      const res = await s.request('GET', `/zones?name=${encodeURIComponent(q)}`);
      assert.deepEqual(names(res), ['example.com'], q);
      assert.deepEqual(res.body.result_info, { page: 1, per_page: 20, count: 1, total_count: 1, total_pages: 1 });
    }
    for (const q of ['example', 'com', 'www.example.com', 'xample.com', 'p1.exampl', '%', 'bad name!', '..']) {
      const res = await s.request('GET', `/zones?name=${encodeURIComponent(q)}`);
      assert.deepEqual(assertOk(res), [], q);
      assert.deepEqual(res.body.result_info, { page: 1, per_page: 20, count: 0, total_count: 0, total_pages: 0 });
    }
    // An empty name is no filter.
    assert.equal((await s.request('GET', '/zones?name=')).body.result.length, 9);
    // Another account's zone looks exactly like a zone that does not exist.
    const zoneScoped = await token(['ssl:read'], [{ type: 'zone', id: s.zoneId }]);
    const hidden = await s.request('GET', '/zones?name=example.net', { token: zoneScoped });
    const absent = await s.request('GET', '/zones?name=nothing-here.example', { token: zoneScoped });
    assert.deepEqual(assertOk(hidden), []);
    assert.equal(hidden.text, absent.text);
  });

  test('GET /zones paginates with result_info', async () => {
    const t = await token(['ssl:read'], [{ type: 'account', id: paged.id }]);
    const page = async (q: string) => s.request('GET', `/zones?${q}`, { token: t });

    const p1 = await page('per_page=4');
    assert.deepEqual(names(p1), pagedNames.slice(0, 4));
    assert.deepEqual(p1.body.result_info, { page: 1, per_page: 4, count: 4, total_count: 6, total_pages: 2 });
    const p2 = await page('per_page=4&page=2');
    assert.deepEqual(names(p2), pagedNames.slice(4));
    assert.deepEqual(p2.body.result_info, { page: 2, per_page: 4, count: 2, total_count: 6, total_pages: 2 });
    const p3 = await page('per_page=4&page=3');
    assert.deepEqual(assertOk(p3), []);
    assert.deepEqual(p3.body.result_info, { page: 3, per_page: 4, count: 0, total_count: 6, total_pages: 2 });

    const max = await page('per_page=50');
    assert.equal(max.body.result.length, 6);
    assert.deepEqual(max.body.result_info, { page: 1, per_page: 50, count: 6, total_count: 6, total_pages: 1 });
    const one = await page('per_page=1&page=6&name=p6.example');
    assert.deepEqual(assertOk(one), []);
    assert.deepEqual(one.body.result_info, { page: 6, per_page: 1, count: 0, total_count: 1, total_pages: 1 });
  });

  test('GET /zones rejects per_page over 50 and malformed paging → 400 1001', async () => {
    assertError(await s.request('GET', '/zones?per_page=51'), 400, 1001, 'Invalid request: per_page must be between 1 and 50');
    assertError(await s.request('GET', '/zones?per_page=0'), 400, 1001, 'Invalid request: per_page must be between 1 and 50');
    assertError(await s.request('GET', '/zones?per_page=ten'), 400, 1001, 'Invalid request: per_page must be a whole number');
    assertError(await s.request('GET', '/zones?page=0'), 400, 1001, 'Invalid request: page must be between 1 and 1000000');
    assertError(await s.request('GET', '/zones?page=-1'), 400, 1001, 'Invalid request: page must be a whole number');
    assertError(
      await s.request('GET', '/zones?name=a.example&name=b.example'),
      400,
      1001,
      'Invalid request: query parameter name must be given once',
    );
  });
});

describe('secrets at rest', () => {
  test('no table holds a token secret or a global API key, only their SHA-256 hashes', async () => {
    // A fresh token created last, so every kind of secret is in the database.
    await token(['ssl:read'], [{ type: 'all' }]);
    assert.ok(secrets.length >= 10);
    // Everything the database holds (SQLite: the raw database and WAL files; PostgreSQL: a data dump).
    const everything = await storedText(s.dir);
    assert.ok(everything.length > 0);
    for (const secret of secrets) {
      assert.equal(everything.includes(secret), false, 'a secret is stored in clear');
      assert.equal(everything.toLowerCase().includes(secret.toLowerCase()), false);
    }
    // The hashes are what is stored (so the check above looked at the right data).
    for (const secret of [s.token, s.apiKey]) {
      const hash = createHash('sha256').update(secret, 'utf8').digest('hex');
      assert.ok(everything.includes(hash), 'the SHA-256 hash of a secret is stored');
    }
  });
});

describe('credential and zone cache: changes made through another connection are seen at once', () => {
  let srv: TestServer;
  let other: Store;
  before(async () => {
    srv = await startServer();
    // Another connection to the same database, as the CLI (another process) or another API node has.
    other = await openTestStore(srv.dir);
  });
  after(async () => {
    await other.close();
    await srv.close();
  });

  test('a token revoked through another connection is refused on the next request', async () => {
    const elsewhere = createTenancyService({ store: other, clock: srv.clock, ids: randomIds });
    const { token, secret } = await elsewhere.createToken({ name: 'revoked elsewhere', policies: [{ permissions: ['ssl:read'], scopes: [{ type: 'all' }] }] });
    const path = `/zones/${srv.zoneId}/origin_tls_client_auth/settings`;
    // Twice: the second answer comes from the cache.
    assertOk(await srv.request('GET', path, { token: secret }));
    assertOk(await srv.request('GET', path, { token: secret }));
    await elsewhere.revokeToken(token.id);
    assertError(await srv.request('GET', path, { token: secret }), 401, 9109);
  });

  test('a zone changed through another connection is seen on the next request', async () => {
    const path = `/zones/${srv.zoneId}/origin_tls_client_auth/settings`;
    assert.equal(assertOk(await srv.request('GET', path)).enabled, false);
    assert.equal(assertOk(await srv.request('GET', path)).enabled, false);
    await other.write(async (r) => {
      const zone = await r.tenancy.getZone(srv.zoneId);
      await r.tenancy.updateZone({ ...zone!, aopEnabled: true });
    });
    assert.equal(assertOk(await srv.request('GET', path)).enabled, true);
  });
});

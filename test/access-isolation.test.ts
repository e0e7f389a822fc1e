/**
 * Access certificates and hostname settings belong to the account (or zone) they were created in: through another
 * account — its API token or its user's email + global key, on its own paths or on the first account's — they can
 * be neither seen (not listed, 404 by id, 403 on the first account's paths, and uploading the same CA does not reveal
 * it exists) nor changed (every update, delete and settings change is refused, and the first account's view is the
 * same afterwards, byte for byte). Both path forms (`/accounts/{id}` and `/zones/{id}`). Runs on SQLite and
 * PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeCA } from './helpers/certs.js';
import { assertError, assertOk, startServer, type ApiResponse, type RequestOptions, type TestServer } from './helpers/harness.js';

const NOT_FOUND = 'access.api.error.not_found: certificate not found';
const notInDomain = (h: string) => `access.api.error.hostnames_must_belong_to_your_domain: ${h}`;
const setting = (hostname: string) => ({ hostname, china_network: false, client_certificate_forwarding: true });

describe('Access objects of one account, seen through another', () => {
  let s: TestServer;
  /** Account A (the bootstrap account, zone example.com) and account B (zone b-example.test). */
  let a: { account: string; zone: string; token: string };
  let b: { account: string; zone: string };
  /** B's credentials: an all-permissions token for B, and B's user. */
  let asB: { name: string; opts: RequestOptions }[];
  /** A's objects: one certificate per form, and one setting per form. */
  const aCerts: { base: string; id: string; pem: string }[] = [];
  /** Everything A sees, to compare after B's attempts. */
  let aView: Map<string, string>;

  const aPaths = () => [`/accounts/${a.account}`, `/zones/${a.zone}`];
  const bPaths = () => [`/accounts/${b.account}`, `/zones/${b.zone}`];

  async function snapshot(): Promise<Map<string, string>> {
    const view = new Map<string, string>();
    for (const base of aPaths()) {
      for (const path of [`${base}/access/certificates`, `${base}/access/certificates/settings`]) {
        const res = await s.request('GET', path, { token: a.token });
        assertOk(res);
        view.set(path, res.text);
      }
    }
    for (const c of aCerts) {
      const path = `${c.base}/access/certificates/${c.id}`;
      const res = await s.request('GET', path, { token: a.token });
      assertOk(res);
      view.set(path, res.text);
    }
    return view;
  }

  before(async () => {
    s = await startServer({ env: { CERTPLANE_ACCESS_SETTINGS_CONFLICT: 'false' } });
    const t = s.cp.services.tenancy;
    const accountB = await t.createAccount('Account B');
    const zoneB = await t.createZone({ name: 'b-example.test', accountId: accountB.id });
    a = {
      account: s.accountId,
      zone: s.zoneId,
      token: await s.makeToken(['access-certificate:write'], [{ type: 'account', id: s.accountId }]),
    };
    b = { account: accountB.id, zone: zoneB.id };
    const tokenB = await s.makeToken(['access-certificate:write', 'ssl:write'], [{ type: 'account', id: accountB.id }]);
    const { apiKey } = await t.createUser({ email: 'b@example.net', accountIds: [accountB.id] });
    asB = [
      { name: "B's token", opts: { token: tokenB } },
      { name: "B's user key", opts: { token: null, headers: { 'X-Auth-Email': 'b@example.net', 'X-Auth-Key': apiKey } } },
    ];

    for (const [base, hostname] of [
      [`/accounts/${a.account}`, 'app.example.com'],
      [`/zones/${a.zone}`, 'www.example.com'],
    ]) {
      const pem = (await makeCA()).certPem;
      const created = assertOk(
        await s.request('POST', `${base}/access/certificates`, { token: a.token, body: { name: 'A', certificate: pem, associated_hostnames: [hostname] } }),
        201,
      );
      aCerts.push({ base, id: created.id, pem });
      assert.equal((await s.request('PUT', `${base}/access/certificates/settings`, { token: a.token, body: { settings: [setting(hostname)] } })).status, 202);
    }
    aView = await snapshot();
  });
  after(() => s?.close());

  const as = (who: { opts: RequestOptions }, body?: unknown): RequestOptions => ({ ...who.opts, body });

  test("through B's own paths, A's certificates and settings are not there", async () => {
    for (const who of asB) {
      for (const base of bPaths()) {
        const certs = `${base}/access/certificates`;
        assert.deepEqual(assertOk(await s.request('GET', certs, as(who))), [], `${who.name}: ${certs}`);
        assert.deepEqual(assertOk(await s.request('GET', `${certs}/settings`, as(who))), [], `${who.name}: ${certs}/settings`);
        for (const c of aCerts) {
          const path = `${certs}/${c.id}`;
          assertError(await s.request('GET', path, as(who)), 404, 12135, NOT_FOUND);
          assertError(await s.request('PUT', path, as(who, { name: 'taken', associated_hostnames: [] })), 404, 12135, NOT_FOUND);
          assertError(await s.request('DELETE', path, as(who)), 404, 12135, NOT_FOUND);
        }
      }
      // A's hostnames are not B's to configure, in either form.
      for (const [base, hostname] of [
        [`/accounts/${b.account}`, 'app.example.com'],
        [`/zones/${b.zone}`, 'www.example.com'],
      ]) {
        const put = await s.request('PUT', `${base}/access/certificates/settings`, as(who, { settings: [setting(hostname)] }));
        assertError(put, 400, 12036, notInDomain(hostname));
        const post = await s.request('POST', `${base}/access/certificates`, as(who, { name: 'B', certificate: (await makeCA()).certPem, associated_hostnames: [hostname] }));
        assertError(post, 400, 12036, notInDomain(hostname));
      }
    }
    // Uploading A's very CA to B succeeds as B's own certificate: nothing tells B that A has it.
    for (const [i, base] of bPaths().entries()) {
      const mine = assertOk(await s.request('POST', `${base}/access/certificates`, as(asB[0], { name: 'B copy', certificate: aCerts[i].pem })), 201);
      assert.notEqual(mine.id, aCerts[i].id);
      assert.equal(mine.name, 'B copy');
      assert.deepEqual(assertOk(await s.request('DELETE', `${base}/access/certificates/${mine.id}`, as(asB[0]))), { id: mine.id });
    }
  });

  test("on A's paths, B's credentials are refused for every Access route, both forms", async () => {
    const refused = (res: ApiResponse) => assertError(res, 403, 10000, 'Authentication error');
    for (const who of asB) {
      for (const base of aPaths()) {
        const certs = `${base}/access/certificates`;
        refused(await s.request('GET', certs, as(who)));
        refused(await s.request('POST', certs, as(who, { name: 'B', certificate: (await makeCA()).certPem })));
        refused(await s.request('GET', `${certs}/settings`, as(who)));
        refused(await s.request('PUT', `${certs}/settings`, as(who, { settings: [setting('example.com')] })));
        for (const c of aCerts) {
          refused(await s.request('GET', `${certs}/${c.id}`, as(who)));
          refused(await s.request('PUT', `${certs}/${c.id}`, as(who, { name: 'taken', associated_hostnames: [] })));
          refused(await s.request('DELETE', `${certs}/${c.id}`, as(who)));
        }
      }
    }
  });

  test("afterwards A's certificates and settings are exactly as before", async () => {
    assert.equal(aView.size, 6);
    assert.deepEqual(await snapshot(), aView);
    for (const c of aCerts) {
      const got = assertOk(await s.request('GET', `${c.base}/access/certificates/${c.id}`, { token: a.token }));
      assert.equal(got.name, 'A');
    }
  });
});

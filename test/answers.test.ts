/**
 * Answers kept ready to send (src/api/answers.ts, docs/decisions/0010-answers-from-memory.md): a GET answered from memory is
 * byte for byte what the full path answers, every change is seen by the next request (made through this server,
 * by the deployer, or through another connection to the same database, as the CLI or another node makes it), and
 * the credential checks are the full path's. Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createAnswerCache } from '../src/api/answers.js';
import { createAopService } from '../src/domain/aop.js';
import { createTenancyService, hashSecret } from '../src/domain/tenancy.js';
import type { Store } from '../src/domain/ports.js';
import { randomIds } from '../src/main.js';
import { makeLeaf } from './helpers/certs.js';
import { assertError, assertOk, startServer, type ApiResponse, type TestServer } from './helpers/harness.js';
import { openTestStore } from './helpers/store.js';

const HEADERS = ['content-type', 'cache-control', 'content-length'];

function sameAnswer(a: ApiResponse, b: ApiResponse): void {
  assert.equal(b.status, a.status);
  assert.equal(b.text, a.text);
  for (const h of HEADERS) assert.equal(b.headers.get(h), a.headers.get(h), h);
}

describe('answers kept ready to send', () => {
  let s: TestServer;
  let other: Store;
  let certId: string;
  const host = (n: number) => `h${n}.example.com`;
  const base = () => `/zones/${s.zoneId}/origin_tls_client_auth`;
  const hits = () => s.cp.app.answers.hits;

  /** GETs `path` twice: the first fills, the second must come from memory with the very same answer. */
  async function getTwice(path: string, opts = {}): Promise<ApiResponse> {
    const first = await s.request('GET', path, opts);
    const before = hits();
    const second = await s.request('GET', path, opts);
    assert.equal(hits(), before + 1, `second GET ${path} answered from memory`);
    sameAnswer(first, second);
    return second;
  }

  before(async () => {
    s = await startServer();
    const leaf = await makeLeaf({ cn: 'h.example.com' });
    certId = assertOk(
      await s.request('POST', `${base()}/hostnames/certificates`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
    ).id;
    await s.settle();
    const config = [1, 2, 3].map((n) => ({ hostname: host(n), cert_id: certId, enabled: true }));
    assertOk(await s.request('PUT', `${base()}/hostnames`, { body: { config } }));
    await s.settle();
    // Another connection to the same database: what the CLI (another process) or another API node writes through.
    other = await openTestStore(s.dir);
  });
  after(async () => {
    await other?.close();
    await s?.close();
  });

  test('every cacheable route answers the same bytes and headers from memory as through the full path', async () => {
    const routes = s.cp.app.routeSpecs.filter((r) => r.cacheable);
    assert.deepEqual(
      routes.map((r) => r.url).sort(),
      [
        '/zones/:zone_id/origin_tls_client_auth',
        '/zones/:zone_id/origin_tls_client_auth/:certificate_id',
        '/zones/:zone_id/origin_tls_client_auth/hostnames',
        '/zones/:zone_id/origin_tls_client_auth/hostnames/:hostname',
        '/zones/:zone_id/origin_tls_client_auth/hostnames/certificates',
        '/zones/:zone_id/origin_tls_client_auth/hostnames/certificates/:certificate_id',
        '/zones/:zone_id/origin_tls_client_auth/settings',
      ].sort(),
    );
    for (const r of routes) assert.equal(r.method, 'GET');
    const status = await getTwice(`${base()}/hostnames/${host(1)}`);
    assert.equal(status.body.result.status, 'active');
    assert.equal(status.body.result.cert_id, certId);
    await getTwice(`${base()}/hostnames/certificates/${certId}`);
    await getTwice(`${base()}/hostnames/certificates`);
    await getTwice(`${base()}/hostnames?per_page=2&page=2`);
    await getTwice(`${base()}/hostnames`);
    await getTwice(`${base()}/settings`);
    await getTwice(base());
    // The same URL in another spelling is its own entry, with the full path's own answer.
    const upper = await getTwice(`${base()}/hostnames/${host(1).toUpperCase()}`);
    assert.equal(upper.body.result.hostname, host(1));
  });

  test('a change made through this server is in the next answer', async () => {
    const path = `${base()}/hostnames/${host(2)}`;
    await getTwice(path);
    const put = assertOk(await s.request('PUT', `${base()}/hostnames`, { body: { config: [{ hostname: host(2), cert_id: certId, enabled: false }] } }));
    assert.equal(put[0].status, 'pending_deployment');
    const after = await s.request('GET', path);
    assert.equal(after.body.result.enabled, false);
    assert.equal(after.body.result.status, 'pending_deployment');
    // The list of that zone changed too.
    const list = await s.request('GET', `${base()}/hostnames?status=all`);
    assert.equal(list.body.result.find((a: { hostname: string }) => a.hostname === host(2)).enabled, false);
  });

  test('a transition made by the deployer is in the next answer', async () => {
    const path = `${base()}/hostnames/${host(2)}`;
    assert.equal((await getTwice(path)).body.result.status, 'pending_deployment');
    await s.settle();
    assert.equal((await s.request('GET', path)).body.result.status, 'active');
  });

  test('the zone-level setting changed is in the next answer', async () => {
    const path = `${base()}/settings`;
    assert.deepEqual((await getTwice(path)).body.result, { enabled: false });
    assertOk(await s.request('PUT', path, { body: { enabled: true } }));
    assert.deepEqual((await s.request('GET', path)).body.result, { enabled: true });
  });

  test('a change written through another connection to the database is in the next answer', async () => {
    const path = `${base()}/hostnames/${host(3)}`;
    assert.equal((await getTwice(path)).body.result.enabled, true);
    const aop = createAopService({ store: other, clock: s.clock, ids: randomIds, sealer: s.cp.vault, config: s.config.domain });
    const zone = (await other.read((r) => r.tenancy.getZone(s.zoneId)))!;
    await aop.putAssociations(zone, [{ hostname: host(3), cert_id: certId, enabled: false }]);
    const after = await s.request('GET', path);
    assert.equal(after.body.result.enabled, false);
    assert.equal(after.body.result.status, 'pending_deployment');
    // And a certificate deleted there: its GET shows it at once.
    const leaf = await makeLeaf({ cn: 'spare.example.com' });
    const spare = assertOk(
      await s.request('POST', `${base()}/hostnames/certificates`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
    ).id;
    await s.settle();
    const certPath = `${base()}/hostnames/certificates/${spare}`;
    assert.equal((await getTwice(certPath)).body.result.status, 'active');
    await aop.deleteCertificate(zone, 'hostname', spare);
    assert.equal((await s.request('GET', certPath)).body.result.status, 'pending_deletion');
  });

  test('credentials are checked on every answer from memory, as on the full path', async () => {
    const path = `${base()}/hostnames/${host(1)}`;
    // Every credential first (each one a tenancy write), so that the answer kept below is for the current version.
    const accessOnly = await s.makeToken(['access-certificate:read'], [{ type: 'all' }]);
    const otherAccount = await s.cp.services.tenancy.createAccount('another');
    const elsewhere = await s.makeToken(['ssl:read'], [{ type: 'account', id: otherAccount.id }]);
    const later = await s.makeToken(['ssl:read'], [{ type: 'all' }], { notBefore: new Date(s.clock.now().getTime() + 60_000) });
    const expiring = await s.makeToken(['ssl:read'], [{ type: 'all' }], { expiresOn: new Date(s.clock.now().getTime() + 60_000) });
    await getTwice(path);
    // Email + global API key: answered from memory too.
    await getTwice(path, { token: null, headers: { 'X-Auth-Email': s.email, 'X-Auth-Key': s.apiKey } });
    const before = hits();
    // Each refused credential is tried three times: from the second on, its row is kept in memory for the version the
    // kept answer is for, so the checks made from memory (not only the full path's) must refuse it.
    const refused = async (opts: Parameters<typeof s.request>[2], status: number, code: number) => {
      for (let i = 0; i < 3; i++) assertError(await s.request('GET', path, opts), status, code);
    };
    await refused({ token: null }, 400, 9106);
    await refused({ token: 'A'.repeat(40) }, 401, 9109);
    await refused({ token: null, headers: { 'X-Auth-Email': s.email, 'X-Auth-Key': 'f'.repeat(37) } }, 403, 9103);
    await refused({ token: accessOnly }, 403, 10000);
    await refused({ token: elsewhere }, 403, 10000);
    await refused({ token: later }, 401, 9109);
    assert.equal(hits(), before, 'no refused request was answered from memory');
    await getTwice(path, { token: expiring });
    const afterGood = hits();
    assert.equal(afterGood, before + 1);
    s.clock.advance(60_000);
    await refused({ token: expiring }, 401, 9109);
    assert.equal(hits(), afterGood, 'no refused request was answered from memory');
  });

  test('a token revoked through another connection is refused by the next request', async () => {
    const path = `${base()}/hostnames/${host(1)}`;
    const secret = await s.makeToken(['ssl:read'], [{ type: 'all' }]);
    await getTwice(path, { token: secret });
    const tenancy = createTenancyService({ store: other, clock: s.clock, ids: randomIds });
    // Every token the tests made (the one used above among them), not the bootstrap token.
    for (const t of await tenancy.listTokens()) if (t.name === 'test token' && t.status === 'active') await tenancy.revokeToken(t.id);
    const before = hits();
    assertError(await s.request('GET', path, { token: secret }), 401, 9109);
    assert.equal(hits(), before);
    // The bootstrap token still gets the kept answer.
    await getTwice(path);
  });

  test('one keep-alive connection that changes its credential is judged by the credential of each request', async () => {
    const path = `/client/v4${base()}/hostnames/${host(2)}`;
    const good = await s.makeToken(['ssl:read'], [{ type: 'all' }]);
    const accessOnly = await s.makeToken(['access-certificate:read'], [{ type: 'all' }]);
    const revoked = await s.makeToken(['ssl:read'], [{ type: 'all' }]);
    // One connection for every request below: the answer-from-memory step remembers per connection the bearer header
    // it last sent (BearerDigests), so each switch of header on it must be read afresh.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const url = new URL(s.baseUrl);
    const sockets = new Set<unknown>();
    const get = (authorization: string) =>
      new Promise<{ status: number; body: { success: boolean; errors: { code: number }[] } }>((resolve, reject) => {
        const req = http.get({ host: url.hostname, port: url.port, path, agent, headers: { authorization } }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.on('socket', (socket) => sockets.add(socket));
        req.on('error', reject);
      });
    try {
      const expectOk = async (authorization: string) => assert.deepEqual([(await get(authorization)).status], [200], authorization);
      const expectError = async (authorization: string, status: number, code: number) => {
        const r = await get(authorization);
        assert.equal(r.status, status, authorization);
        assert.deepEqual(r.body.errors.map((e) => e.code), [code], authorization);
      };
      await expectOk(`Bearer ${good}`);
      const before = hits();
      await expectOk(`Bearer ${good}`);
      assert.equal(hits(), before + 1, 'answered from memory');
      await expectError(`Bearer ${accessOnly}`, 403, 10000);
      await expectError(`Bearer ${accessOnly}`, 403, 10000);
      await expectOk(`Bearer ${good}`);
      await expectError('Bearer not a token!', 400, 6003);
      await expectError(`Bearer ${'A'.repeat(40)}`, 401, 9109);
      await expectOk(`bearer ${good}`);
      await expectOk(`Bearer ${revoked}`);
      await expectOk(`Bearer ${revoked}`);
      const row = (await s.cp.services.tenancy.listTokens()).find((t) => t.secretHash === hashSecret(revoked))!;
      await s.cp.services.tenancy.revokeToken(row.id);
      const hitsBefore = hits();
      await expectError(`Bearer ${revoked}`, 401, 9109);
      await expectError(`Bearer ${revoked}`, 401, 9109);
      assert.equal(hits(), hitsBefore, 'the revoked token was never answered from memory');
      await expectOk(`Bearer ${good}`);
      assert.equal(sockets.size, 1, 'every request went over the same connection');
    } finally {
      agent.destroy();
    }
  });

  test('many concurrent GETs interleaved with writes never see an answer older than a write they followed', async () => {
    const path = `${base()}/hostnames/${host(1)}`;
    for (let round = 0; round < 20; round++) {
      const enabled = round % 2 === 0 ? false : true;
      assertOk(await s.request('PUT', `${base()}/hostnames`, { body: { config: [{ hostname: host(1), cert_id: certId, enabled }] } }));
      const answers = await Promise.all(Array.from({ length: 25 }, () => s.request('GET', path)));
      for (const a of answers) assert.equal(a.body.result.enabled, enabled, `round ${round}`);
    }
  });
});

test('the answer cache is bounded in bytes and lets the oldest entries go first', () => {
  const cache = createAnswerCache(3 * (1000 + 200 + 2));
  const entry = (n: number) => ({ zoneId: 'z', permission: 'ssl:read' as const, versions: { tenancy: 1, zone: n }, body: Buffer.alloc(1000) });
  for (let i = 0; i < 5; i++) cache.put(`/${i}`, entry(i));
  assert.equal(cache.size, 3);
  assert.equal(cache.get('/0'), undefined);
  assert.equal(cache.get('/1'), undefined);
  assert.equal(cache.get('/4')?.versions.zone, 4);
  assert.ok(cache.bytes <= 3 * 1202);
  // Replacing an entry does not count it twice; an answer larger than the whole budget is not kept.
  cache.put('/4', entry(40));
  assert.equal(cache.size, 3);
  cache.put('/huge', { ...entry(9), body: Buffer.alloc(10_000) });
  assert.equal(cache.get('/huge'), undefined);
  assert.equal(cache.size, 3);
});

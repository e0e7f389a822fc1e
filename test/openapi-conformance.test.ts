/**
 * Drives every operation of Cloudflare's mTLS schema at least once to success and once to a 4XX answer, in one
 * process, and checks that the schema check (test/helpers/openapi.ts, applied to every response of the suite) saw
 * them all. Other test files check the exact bodies; this one guarantees no operation escapes the schema check.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertError, assertOk, startServer, type TestServer } from './helpers/harness.js';
import { OPERATIONS, DEVIATIONS, seen } from './helpers/openapi.js';
import { makeCA, makeLeaf } from './helpers/certs.js';

let s: TestServer;
before(async () => {
  s = await startServer({ env: { CERTPLANE_ACCESS_SETTINGS_CONFLICT: 'false' } });
});
after(() => s.close());

test('every operation answers in the shape of its schema, for success and for failure', async () => {
  const z = `/zones/${s.zoneId}`;
  const ca = await makeCA({ org: 'Conformance CA' });
  const leaf = await makeLeaf({ issuer: ca });
  const zoneLeaf = await makeLeaf({ issuer: ca });
  const bad = { certificate: 'not a pem', private_key: 'nope' };
  const missingId = '00000000-0000-4000-8000-000000000000';

  // Zone-level AOP.
  assertOk(await s.request('GET', `${z}/origin_tls_client_auth`));
  const accessOnly = await s.makeToken(['access-certificate:read'], [{ type: 'all' }]);
  assertError(await s.request('GET', `${z}/origin_tls_client_auth`, { token: accessOnly }), 403, 10000);
  const zc = assertOk(await s.request('POST', `${z}/origin_tls_client_auth`, { body: { certificate: zoneLeaf.certPem, private_key: zoneLeaf.keyPem } }));
  assertError(await s.request('POST', `${z}/origin_tls_client_auth`, { body: bad }), 400, 1408);
  assertOk(await s.request('GET', `${z}/origin_tls_client_auth`));
  assertOk(await s.request('GET', `${z}/origin_tls_client_auth/${zc.id}`));
  assertError(await s.request('GET', `${z}/origin_tls_client_auth/${missingId}`), 404, 1552);
  assertError(await s.request('DELETE', `${z}/origin_tls_client_auth/${zc.id}`), 400, 1434);
  assertOk(await s.request('GET', `${z}/origin_tls_client_auth/settings`));
  assertOk(await s.request('PUT', `${z}/origin_tls_client_auth/settings`, { body: { enabled: true } }));
  assertError(await s.request('PUT', `${z}/origin_tls_client_auth/settings`, { body: { enabled: 'yes' } }), 400, 1001);
  assertError(await s.request('GET', `${z}/origin_tls_client_auth/settings`, { token: 'x'.repeat(40) }), 401, 9109);

  // Hostname-level AOP.
  const hc = assertOk(
    await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
  );
  assertError(await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: bad }), 400, 1408);
  assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates`));
  assertError(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates`, { token: null }), 400, 9106);
  assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates/${hc.id}`));
  assertError(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates/${missingId}`), 404, 1551);
  assertOk(await s.request('PUT', `${z}/origin_tls_client_auth/hostnames`, { body: { config: [{ hostname: 'app.example.com', cert_id: hc.id, enabled: true }] } }));
  assertError(await s.request('PUT', `${z}/origin_tls_client_auth/hostnames`, { body: { config: [{}] } }), 400, 1404);
  assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames?status=all`));
  assertError(await s.request('GET', `${z}/origin_tls_client_auth/hostnames?status=bogus`), 400, 1001);
  assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/app.example.com`));
  assertError(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/nothing.example.com`), 404, 1553);
  await s.settle();
  assertError(await s.request('DELETE', `${z}/origin_tls_client_auth/hostnames/certificates/${hc.id}`), 400, 1433);
  assertOk(await s.request('PUT', `${z}/origin_tls_client_auth/hostnames`, { body: { config: [{ hostname: 'app.example.com', cert_id: hc.id, enabled: null }] } }));
  assertOk(await s.request('DELETE', `${z}/origin_tls_client_auth/hostnames/certificates/${hc.id}`));
  assertOk(await s.request('DELETE', `${z}/origin_tls_client_auth/${zc.id}`));

  // Access, both forms.
  for (const owner of [`/accounts/${s.accountId}`, z]) {
    const base = `${owner}/access/certificates`;
    const created = assertOk(
      await s.request('POST', base, { body: { name: 'ca', certificate: ca.certPem, associated_hostnames: [] } }),
      201,
    );
    assertError(await s.request('POST', base, { body: { name: 'ca', certificate: leaf.certPem } }), 400, 12130);
    assertOk(await s.request('GET', base));
    assertError(await s.request('GET', `${base}?per_page=0`), 400, 12130);
    assertOk(await s.request('GET', `${base}/${created.id}`));
    assertError(await s.request('GET', `${base}/${missingId}`), 404, 12135);
    assertOk(await s.request('PUT', `${base}/${created.id}`, { body: { associated_hostnames: ['admin.example.com'] } }));
    assertError(await s.request('PUT', `${base}/${created.id}`, { body: { associated_hostnames: ['admin.example.net'] } }), 400, 12036);
    assertError(await s.request('DELETE', `${base}/${created.id}`), 400, 12130);
    assertOk(await s.request('PUT', `${base}/${created.id}`, { body: { associated_hostnames: [] } }));
    assertOk(await s.request('DELETE', `${base}/${created.id}`));
    assertOk(await s.request('GET', `${base}/settings`));
    assertError(await s.request('GET', `${base}/settings`, { token: null }), 400, 9106);
    assertOk(
      await s.request('PUT', `${base}/settings`, {
        body: { settings: [{ hostname: 'admin.example.com', china_network: false, client_certificate_forwarding: true }] },
      }),
      202,
    );
    assertError(await s.request('PUT', `${base}/settings`, { body: { settings: [{ hostname: 'admin.example.com' }] } }), 400, 12130);
  }

  const expected = OPERATIONS.flatMap((o) => {
    const success = o.method === 'POST' && o.template.includes('/access/') ? '201' : o.method === 'PUT' && o.template.endsWith('/access/certificates/settings') ? '202' : '200';
    return [`${o.method} ${o.template} ${success}`, `${o.method} ${o.template} 4XX`];
  });
  assert.equal(OPERATIONS.length, 20, 'the reference schema has 20 operations');
  assert.deepEqual(expected.filter((e) => !seen.has(e)), [], 'operations never checked against the schema');
});

test('every documented deviation states its reason', () => {
  for (const d of DEVIATIONS) assert.ok(d.why.length > 40, `deviation ${d.path} needs a reason`);
});

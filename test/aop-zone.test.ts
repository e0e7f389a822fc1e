/**
 * Zone-level Authenticated Origin Pulls over real HTTP: the certificate list (Cloudflare's observed `result: null`
 * when empty, and the `[]` fidelity toggle), upload, get, delete with its lifecycle rules, the zone setting and its
 * body validation, and the separation of the zone-certificate and hostname-certificate id namespaces.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { assertError, assertOk, startServer, type TestServer, withServer } from './helpers/harness.js';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';

const T0 = '2026-01-01T00:00:00.000Z';
const NOT_AFTER = new Date('2027-06-30T12:00:00.000Z');
const CA_ORG = 'Certplane Zone AOP Test CA';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const ca = await makeCA({ org: CA_ORG });

const leaf = (): Promise<Issued> => makeLeaf({ issuer: ca, notAfter: NOT_AFTER });
const zonePath = (s: TestServer, rest = '') => `/zones/${s.zoneId}/origin_tls_client_auth${rest}`;
const hostCertPath = (s: TestServer, rest = '') => `/zones/${s.zoneId}/origin_tls_client_auth/hostnames/certificates${rest}`;
const settingsPath = (s: TestServer) => `/zones/${s.zoneId}/origin_tls_client_auth/settings`;

/** What the API must answer for a certificate made by `leaf()` (ECDSA P-256 signed with SHA-256 by `ca`). */
function expectedCert(l: Issued, id: string, status: string, uploadedOn = T0) {
  return {
    id,
    certificate: l.certPem,
    expires_on: NOT_AFTER.toISOString(),
    issuer: CA_ORG,
    serial_number: BigInt(`0x${l.serialHex}`).toString(10),
    signature: 'ECDSAWithSHA256',
    status,
    uploaded_on: uploadedOn,
  };
}

async function upload(s: TestServer, l: Issued, path = zonePath(s)) {
  const res = await s.request('POST', path, { body: { certificate: l.certPem, private_key: l.keyPem } });
  return assertOk<ReturnType<typeof expectedCert>>(res);
}

/** Uploads and runs the lifecycle until the certificate is active. */
async function uploadActive(s: TestServer, l: Issued, path = zonePath(s)) {
  const c = await upload(s, l, path);
  await s.settle();
  assert.equal(assertOk((await s.request('GET', `${path}/${c.id}`))).status, 'active');
  return c;
}


// ---- list -------------------------------------------------------------------------------------------------------

test('an empty zone certificate list is `result: null` (observed Cloudflare behaviour, the default)', async () => {
  await withServer({}, async (s) => {
    const res = await s.request('GET', zonePath(s));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      success: true,
      errors: [],
      messages: [],
      result: null,
      result_info: { page: 1, per_page: 1, count: 0, total_count: 0, total_pages: 0 },
    });
    // Hostname certificates are a different list, and an empty one is an array.
    assert.deepEqual(assertOk(await s.request('GET', hostCertPath(s))), []);
  });
});

test('with CERTPLANE_EMPTY_ZONE_CERT_LIST_NULL=false an empty list is `[]`', async () => {
  await withServer({ CERTPLANE_EMPTY_ZONE_CERT_LIST_NULL: 'false' }, async (s) => {
    const res = await s.request('GET', zonePath(s));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      success: true,
      errors: [],
      messages: [],
      result: [],
      result_info: { page: 1, per_page: 1, count: 0, total_count: 0, total_pages: 0 },
    });
    // Non-empty lists are the same whatever the toggle.
    const l = await leaf();
    const c = await upload(s, l);
    assert.deepEqual(assertOk(await s.request('GET', zonePath(s))), [expectedCert(l, c.id, 'initializing')]);
  });
});

test('the list is newest first, shows pending_deletion, hides deleted tombstones, and is null again when all are deleted', async () => {
  await withServer({}, async (s) => {
    const leaves = [await leaf(), await leaf(), await leaf()];
    const ids: string[] = [];
    const times: string[] = [];
    for (const l of leaves) {
      times.push(s.clock.now().toISOString());
      ids.push((await upload(s, l)).id);
      s.clock.advance(60_000);
    }
    assert.equal(new Set(ids).size, 3);
    let res = await s.request('GET', zonePath(s));
    assert.deepEqual(res.body.result, [
      expectedCert(leaves[2], ids[2], 'initializing', times[2]),
      expectedCert(leaves[1], ids[1], 'initializing', times[1]),
      expectedCert(leaves[0], ids[0], 'initializing', times[0]),
    ]);
    assert.deepEqual(res.body.result_info, { page: 1, per_page: 3, count: 3, total_count: 3, total_pages: 1 });

    await s.settle();
    // The middle one starts deleting: still listed, as pending_deletion.
    assertOk(await s.request('DELETE', zonePath(s, `/${ids[1]}`)));
    res = await s.request('GET', zonePath(s));
    assert.deepEqual(
      res.body.result.map((c: { id: string; status: string }) => [c.id, c.status]),
      [
        [ids[2], 'active'],
        [ids[1], 'pending_deletion'],
        [ids[0], 'active'],
      ],
    );
    // Once deleted it leaves the list (it stays readable by id: see the delete test).
    await s.settle(s.config.domain.lifecycle.deleteDelayMs);
    res = await s.request('GET', zonePath(s));
    assert.deepEqual(
      res.body.result.map((c: { id: string }) => c.id),
      [ids[2], ids[0]],
    );
    assert.deepEqual(res.body.result_info, { page: 1, per_page: 2, count: 2, total_count: 2, total_pages: 1 });

    assertOk(await s.request('DELETE', zonePath(s, `/${ids[2]}`)));
    assertOk(await s.request('DELETE', zonePath(s, `/${ids[0]}`)));
    await s.settle(s.config.domain.lifecycle.deleteDelayMs);
    res = await s.request('GET', zonePath(s));
    assert.equal(res.body.result, null);
  });
});

// ---- upload and get ---------------------------------------------------------------------------------------------

test('upload answers the certificate (no private key), GET by id answers the same; duplicates get 1406', async () => {
  await withServer({}, async (s) => {
    const l = await leaf();
    const res = await s.request('POST', zonePath(s), {
      body: { certificate: l.certPem, private_key: l.keyPem },
    });
    assert.equal(res.status, 200);
    const c = res.body.result;
    assert.match(c.id, UUID_RE);
    assert.deepEqual(res.body, { success: true, errors: [], messages: [], result: expectedCert(l, c.id, 'initializing') });
    assert.ok(!res.text.includes('PRIVATE KEY'), 'the private key is never echoed');

    const got = await s.request('GET', zonePath(s, `/${c.id}`));
    assert.deepEqual(got.body, { success: true, errors: [], messages: [], result: expectedCert(l, c.id, 'initializing') });

    // The same certificate again, while deploying and once active: 1406.
    const dup = () => s.request('POST', zonePath(s), { body: { certificate: l.certPem, private_key: l.keyPem } });
    assertError(await dup(), 400, 1406, 'This certificate already exists for this zone.');
    await s.settle();
    assertError(await dup(), 400, 1406, 'This certificate already exists for this zone.');
    // Only one certificate exists.
    assert.deepEqual(assertOk(await s.request('GET', zonePath(s))), [expectedCert(l, c.id, 'active')]);
  });
});

test('a duplicate is refused while pending_deletion; once deleted the same PEM comes back under its old id', async () => {
  await withServer({}, async (s) => {
    const l = await leaf();
    const c = await uploadActive(s, l);
    assertOk(await s.request('DELETE', zonePath(s, `/${c.id}`)));
    const dup = () => s.request('POST', zonePath(s), { body: { certificate: l.certPem, private_key: l.keyPem } });
    assertError(await dup(), 400, 1406, 'This certificate already exists for this zone.');

    await s.settle(s.config.domain.lifecycle.deleteDelayMs);
    assert.equal(assertOk(await s.request('GET', zonePath(s, `/${c.id}`))).status, 'deleted');
    const now = s.clock.now().toISOString();
    const again = assertOk(await dup());
    assert.deepEqual(again, expectedCert(l, c.id, 'initializing', now));
    assert.deepEqual(assertOk(await s.request('GET', zonePath(s))), [expectedCert(l, c.id, 'initializing', now)]);
  });
});

test('the zone certificate limit (CERTPLANE_LIMIT_ZONE_CERTIFICATES_PER_ZONE) counts pending deletions, not tombstones', async () => {
  await withServer({ CERTPLANE_LIMIT_ZONE_CERTIFICATES_PER_ZONE: '2' }, async (s) => {
    const a = await uploadActive(s, await leaf());
    await uploadActive(s, await leaf());
    const third = await leaf();
    const over = () => s.request('POST', zonePath(s), { body: { certificate: third.certPem, private_key: third.keyPem } });
    const LIMIT_MESSAGE = 'You have reached the maximum number of certificates for this zone (2)';
    assertError(await over(), 400, 1413, LIMIT_MESSAGE);
    assertOk(await s.request('DELETE', zonePath(s, `/${a.id}`)));
    assertError(await over(), 400, 1413, LIMIT_MESSAGE);
    await s.settle(s.config.domain.lifecycle.deleteDelayMs);
    assert.equal(assertOk(await over()).status, 'initializing');
    // Hostname certificates have a limit of their own (10 by default) and are not counted here.
    assertOk(await s.request('POST', hostCertPath(s), { body: { certificate: third.certPem, private_key: third.keyPem } }));
  });
});

test('GET of an unknown id is 404 1552; a malformed id is 400 1415', async () => {
  await withServer({}, async (s) => {
    await uploadActive(s, await leaf());
    assertError(await s.request('GET', zonePath(s, `/${randomUUID()}`)), 404, 1552, 'Certificate not found');
    for (const bad of ['not-a-uuid', '12345', 'a'.repeat(36), `${randomUUID()}x`, randomUUID().replace(/-/g, '')]) {
      assertError(await s.request('GET', zonePath(s, `/${bad}`)), 400, 1415, 'Invalid Certificate ID');
    }
  });
});

// ---- delete -----------------------------------------------------------------------------------------------------

test('DELETE: 1434 while deploying, 200 pending_deletion when active, then 1414 pending deletion, then 1414 already deleted', async () => {
  await withServer({}, async (s) => {
    const l = await leaf();
    const c = await upload(s, l);
    const del = () => s.request('DELETE', zonePath(s, `/${c.id}`));
    const PENDING = 'Cannot delete resource while in pending deployment state.';

    assertError(await del(), 400, 1434, PENDING); // initializing
    await s.cp.deployer.tick();
    assert.equal(assertOk(await s.request('GET', zonePath(s, `/${c.id}`))).status, 'pending_deployment');
    assertError(await del(), 400, 1434, PENDING);
    s.clock.advance(s.config.domain.lifecycle.deployDelayMs);
    await s.cp.deployer.tick();

    const res = await del();
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { success: true, errors: [], messages: [], result: expectedCert(l, c.id, 'pending_deletion') });
    assert.deepEqual(assertOk(await s.request('GET', zonePath(s, `/${c.id}`))), expectedCert(l, c.id, 'pending_deletion'));
    assertError(await del(), 400, 1414, 'This certificate is pending deletion.');

    await s.settle(s.config.domain.lifecycle.deleteDelayMs);
    // The tombstone stays readable by id.
    assert.deepEqual(assertOk(await s.request('GET', zonePath(s, `/${c.id}`))), expectedCert(l, c.id, 'deleted'));
    assertError(await del(), 400, 1414, 'Certificate is already deleted.');
  });
});

test('DELETE of an unknown id is 404 1552; a malformed id is 400 1415', async () => {
  await withServer({}, async (s) => {
    assertError(await s.request('DELETE', zonePath(s, `/${randomUUID()}`)), 404, 1552, 'Certificate not found');
    assertError(await s.request('DELETE', zonePath(s, '/nope')), 400, 1415, 'Invalid Certificate ID');
  });
});

// ---- the zone setting -------------------------------------------------------------------------------------------

test('settings: false by default; PUT {enabled:true} answers and persists it; PUT false turns it off', async () => {
  await withServer({}, async (s) => {
    const get = () => s.request('GET', settingsPath(s));
    let res = await get();
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { success: true, errors: [], messages: [], result: { enabled: false } });

    res = await s.request('PUT', settingsPath(s), { body: { enabled: true } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { success: true, errors: [], messages: [], result: { enabled: true } });
    assert.deepEqual((await get()).body.result, { enabled: true });
    // Persisted in the store, not only in a cache of the request.
    const zone = await s.cp.services.tenancy.getZone(s.zoneId);
    assert.equal(zone?.aopEnabled, true);

    // Idempotent.
    assert.deepEqual(assertOk(await s.request('PUT', settingsPath(s), { body: { enabled: true } })), { enabled: true });
    assert.deepEqual((await get()).body.result, { enabled: true });

    assert.deepEqual(assertOk(await s.request('PUT', settingsPath(s), { body: { enabled: false } })), { enabled: false });
    assert.deepEqual((await get()).body.result, { enabled: false });
  });
});

test('settings PUT: bad bodies get the catalogue errors and change nothing', async () => {
  await withServer({}, async (s) => {
    assertOk(await s.request('PUT', settingsPath(s), { body: { enabled: true } }));
    const put = (o: { body?: unknown; raw?: string; headers?: Record<string, string> }) =>
      s.request('PUT', settingsPath(s), o);
    const json = { 'content-type': 'application/json' };

    const cases: [string, Awaited<ReturnType<typeof put>>, number, number, string, string | undefined][] = [
      ['missing enabled', await put({ body: {} }), 400, 1001, 'Invalid request: missing required field "enabled"', '/enabled'],
      ['string "true"', await put({ body: { enabled: 'true' } }), 400, 1001, 'Invalid request: enabled must be a boolean', '/enabled'],
      ['number 1', await put({ body: { enabled: 1 } }), 400, 1001, 'Invalid request: enabled must be a boolean', '/enabled'],
      ['null', await put({ body: { enabled: null } }), 400, 1001, 'Invalid request: enabled must be a boolean', '/enabled'],
      ['unknown field', await put({ body: { enabled: true, value: 'on' } }), 400, 1001, 'Invalid request: unknown field "value"', '/value'],
      ['array body', await put({ body: [{ enabled: true }] }), 400, 1001, 'Invalid request: body must be an object', '/'],
      ['string body', await put({ body: 'enabled' }), 400, 1001, 'Invalid request: body must be an object', '/'],
      ['boolean body', await put({ body: true }), 400, 1001, 'Invalid request: body must be an object', '/'],
      ['JSON null body', await put({ raw: 'null', headers: json }), 400, 6007, 'Request body is required and must be a JSON object', undefined],
      ['empty body', await put({ raw: '', headers: json }), 400, 6007, 'Request body is required and must be a JSON object', undefined],
      ['whitespace body', await put({ raw: '  \n', headers: json }), 400, 6007, 'Request body is required and must be a JSON object', undefined],
      ['no body at all', await put({}), 400, 6007, 'Request body is required and must be a JSON object', undefined],
      ['malformed JSON', await put({ raw: '{"enabled":', headers: json }), 400, 6007, 'Malformed JSON in request body', undefined],
      ['single quotes', await put({ raw: "{'enabled': true}", headers: json }), 400, 6007, 'Malformed JSON in request body', undefined],
      ['trailing garbage', await put({ raw: '{"enabled": false} x', headers: json }), 400, 6007, 'Malformed JSON in request body', undefined],
    ];
    for (const [name, res, status, code, message, pointer] of cases) {
      assertError(res, status, code, message);
      const expected: Record<string, unknown> = { code, message };
      if (pointer !== undefined) expected.source = { pointer };
      assert.deepEqual(res.body.errors, [expected], name);
    }
    assert.deepEqual(assertOk(await s.request('GET', settingsPath(s))), { enabled: true });
  });
});

test('the zone setting and the zone certificates are independent', async () => {
  await withServer({}, async (s) => {
    // Enabling without any certificate is accepted (the edge then falls back to the global behaviour).
    assertOk(await s.request('PUT', settingsPath(s), { body: { enabled: true } }));
    const l = await leaf();
    const c = await uploadActive(s, l);
    assert.deepEqual(assertOk(await s.request('GET', settingsPath(s))), { enabled: true });
    assertOk(await s.request('DELETE', zonePath(s, `/${c.id}`)));
    await s.settle(s.config.domain.lifecycle.deleteDelayMs);
    assert.deepEqual(assertOk(await s.request('GET', settingsPath(s))), { enabled: true });
  });
});

// ---- separate id namespaces -------------------------------------------------------------------------------------

test('zone certificate ids are refused by the hostname association PUT (1415) and unknown to hostname routes', async () => {
  await withServer({}, async (s) => {
    const zl = await leaf();
    const z = await uploadActive(s, zl);

    const put = await s.request('PUT', `/zones/${s.zoneId}/origin_tls_client_auth/hostnames`, {
      body: { config: [{ hostname: `app.${s.zoneName}`, cert_id: z.id, enabled: true }] },
    });
    assertError(put, 400, 1415, 'Certificate ID in request is either invalid or the certificate has been deleted');
    assert.deepEqual(put.body.errors[0].source, { pointer: '/config/0/cert_id' });
    assertError(
      await s.request('GET', `/zones/${s.zoneId}/origin_tls_client_auth/hostnames/app.${s.zoneName}`),
      404,
      1553,
      'Authenticated Origin Pulls setting for this hostname not found',
    );

    assertError(await s.request('GET', hostCertPath(s, `/${z.id}`)), 404, 1551, 'Hostname certificate not found');
    assertError(await s.request('DELETE', hostCertPath(s, `/${z.id}`)), 404, 1551, 'Hostname certificate not found');
    assert.deepEqual(assertOk(await s.request('GET', hostCertPath(s))), []);
    // Still there and untouched on its own route.
    assert.deepEqual(assertOk(await s.request('GET', zonePath(s, `/${z.id}`))), expectedCert(zl, z.id, 'active'));
  });
});

test('hostname certificate ids are unknown to zone routes (1552) and absent from the zone list', async () => {
  await withServer({}, async (s) => {
    const hl = await leaf();
    const h = await uploadActive(s, hl, hostCertPath(s));
    assertError(await s.request('GET', zonePath(s, `/${h.id}`)), 404, 1552, 'Certificate not found');
    assertError(await s.request('DELETE', zonePath(s, `/${h.id}`)), 404, 1552, 'Certificate not found');
    assert.equal((await s.request('GET', zonePath(s))).body.result, null);
    assert.deepEqual(assertOk(await s.request('GET', hostCertPath(s, `/${h.id}`))), expectedCert(hl, h.id, 'active'));
  });
});

test('the same certificate may be both a zone certificate and a hostname certificate, under different ids', async () => {
  await withServer({}, async (s) => {
    const l = await leaf();
    const z = await upload(s, l);
    const h = await upload(s, l, hostCertPath(s));
    assert.notEqual(z.id, h.id);
    assert.deepEqual(assertOk(await s.request('GET', zonePath(s))), [expectedCert(l, z.id, 'initializing')]);
    assert.deepEqual(assertOk(await s.request('GET', hostCertPath(s))), [expectedCert(l, h.id, 'initializing')]);
    // Deleting one leaves the other alone.
    await s.settle();
    assertOk(await s.request('DELETE', zonePath(s, `/${z.id}`)));
    await s.settle(s.config.domain.lifecycle.deleteDelayMs);
    assert.equal(assertOk(await s.request('GET', zonePath(s, `/${z.id}`))).status, 'deleted');
    assert.equal(assertOk(await s.request('GET', hostCertPath(s, `/${h.id}`))).status, 'active');
  });
});

test('zone certificates are per zone: another zone\'s certificate id is 1552 here', async () => {
  await withServer({}, async (s) => {
    const other = await s.cp.services.tenancy.createZone({ name: 'other.test', accountId: s.accountId });
    const l = await leaf();
    const c = await upload(s, l, `/zones/${other.id}/origin_tls_client_auth`);
    assertError(await s.request('GET', zonePath(s, `/${c.id}`)), 404, 1552, 'Certificate not found');
    assert.equal((await s.request('GET', zonePath(s))).body.result, null);
    // The same PEM is not a duplicate in another zone.
    assert.equal((await upload(s, l)).status, 'initializing');
  });
});

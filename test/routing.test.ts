/**
 * Routing and request parsing over real HTTP: unknown routes (404 7000), wrong methods (405 10405 + Allow),
 * malformed identifiers (400 7003), body parsing (6007, 6009, per-family validation codes), content types,
 * awkward paths (over-long and undecodable segments, hostname normalisation). Every answer must be Cloudflare's
 * envelope as application/json, never a 500 or a bare framework error.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { makeLeaf } from './helpers/certs.js';
import { assertOk, startServer, type ApiResponse, type RequestOptions, type TestServer } from './helpers/harness.js';

const BODY_LIMIT = 4096;
const CERT_ID = '3b7c5d4e-1f2a-4b6c-8d9e-0a1b2c3d4e5f';

let s: TestServer;
let z: string; // bootstrap zone id
let a: string; // bootstrap account id

const aop = (rest = '') => `/zones/${z}/origin_tls_client_auth${rest}`;
const acc = (rest = '') => `/accounts/${a}/access/certificates${rest}`;
const zacc = (rest = '') => `/zones/${z}/access/certificates${rest}`;

/** Checks the envelope and content type of every answer. */
function assertEnvelope(res: ApiResponse): void {
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, res.text);
  assert.equal(typeof res.body.success, 'boolean');
  assert.ok(Array.isArray(res.body.errors));
  assert.ok(Array.isArray(res.body.messages));
  assert.ok('result' in res.body);
}

async function call(method: string, path: string, opts?: RequestOptions): Promise<ApiResponse> {
  const res = await s.request(method, path, opts);
  assertEnvelope(res);
  return res;
}

/** Asserts the whole failure body: one error with exactly these fields. */
function assertExactError(res: ApiResponse, status: number, error: Record<string, unknown>): void {
  assert.equal(res.status, status, res.text);
  assertEnvelope(res);
  assert.deepEqual(res.body, { success: false, errors: [error], messages: [], result: null });
}

const badId = (path: string) => ({
  code: 7003,
  message: `Could not route to /client/v4${path}, perhaps your object identifier is invalid?`,
});
const NO_ROUTE = { code: 7000, message: 'No route for that URI' };
const MALFORMED = { code: 6007, message: 'Malformed JSON in request body' };
const BODY_REQUIRED = { code: 6007, message: 'Request body is required and must be a JSON object' };
const TOO_LARGE = { code: 6009, message: 'Request body is too large' };
const aopInvalid = (detail: string, pointer: string) => ({
  code: 1001,
  message: `Invalid request: ${detail}`,
  source: { pointer },
});
const accessInvalid = (detail: string, pointer: string) => ({
  code: 12130,
  message: `access.api.error.invalid_request: ${detail}`,
  source: { pointer },
});

/** A raw HTTP request (node:http), for what fetch cannot send: no Content-Type, chunked bodies. */
function rawHttp(
  method: string,
  path: string,
  opts: { headers?: Record<string, string | number>; chunks?: string[] } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any; text: string }> {
  const url = new URL(s.baseUrl + path);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers: { authorization: `Bearer ${s.token}`, ...opts.headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let body: any;
          try {
            body = JSON.parse(text);
          } catch {
            reject(new Error(`non-JSON answer (${res.statusCode}): ${text.slice(0, 200)}`));
            return;
          }
          resolve({ status: res.statusCode!, headers: res.headers, body, text });
        });
      },
    );
    req.on('error', reject);
    for (const c of opts.chunks ?? []) req.write(c);
    req.end();
  });
}

before(async () => {
  s = await startServer({ env: { CERTPLANE_BODY_LIMIT: String(BODY_LIMIT) } });
  z = s.zoneId;
  a = s.accountId;
});

after(async () => {
  await s?.close();
});

describe('unknown routes → 404 7000', () => {
  test('paths that match no route, with or without credentials', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', ''],
      ['GET', '/zones/' + 'a'.repeat(32) + '/nothing'],
      ['POST', '/zones/' + 'a'.repeat(32) + '/nothing'],
      ['GET', aop('/hostnames/app.example.com/extra')],
      ['GET', aop('/settings/more')],
      ['DELETE', '/accounts'],
      ['GET', `/accounts/${a}`],
      ['GET', '/user/tokens'],
      ['GET', '/user/tokens/verify/extra'],
    ]) {
      assertExactError(await call(method, path), 404, NO_ROUTE);
      // Routing comes before authentication: no credentials still gives 404.
      assertExactError(await call(method, path, { token: null }), 404, NO_ROUTE);
    }
  });

  test('paths outside /client/v4 get the same envelope', async () => {
    const origin = s.baseUrl.replace(/\/client\/v4$/, '');
    for (const p of ['/', '/client', '/client/v3/zones', '/zones']) {
      const res = await fetch(origin + p);
      const body = await res.json();
      assert.equal(res.status, 404, p);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(body, { success: false, errors: [NO_ROUTE], messages: [], result: null });
    }
  });

  test('a trailing slash is ignored', async () => {
    assert.deepEqual(assertOk(await call('GET', aop('/settings/'))), { enabled: false });
    assertOk(await call('GET', '/zones/'));
  });
});

describe('wrong method → 405 10405 with an Allow header', () => {
  // {z} = zone id, {a} = account id, {c} = a certificate id.
  const cases: [string, string, string][] = [
    ['PATCH', '/zones/{z}/origin_tls_client_auth/settings', 'GET, PUT'],
    ['POST', '/zones/{z}/origin_tls_client_auth/settings', 'GET, PUT'],
    ['POST', '/zones/{z}/origin_tls_client_auth/hostnames/app.example.com', 'GET'],
    ['PUT', '/zones/{z}/origin_tls_client_auth/hostnames/app.example.com', 'GET'],
    ['DELETE', '/zones/{z}/origin_tls_client_auth/hostnames/app.example.com', 'GET'],
    ['DELETE', '/zones/{z}/origin_tls_client_auth', 'GET, POST'],
    ['PUT', '/zones/{z}/origin_tls_client_auth', 'GET, POST'],
    ['PUT', '/zones/{z}/origin_tls_client_auth/{c}', 'GET, DELETE'],
    // The static route wins over /hostnames/{hostname}: "certificates" is not taken for a hostname.
    ['PUT', '/zones/{z}/origin_tls_client_auth/hostnames/certificates', 'GET, POST'],
    ['DELETE', '/zones/{z}/origin_tls_client_auth/hostnames/certificates', 'GET, POST'],
    ['POST', '/zones/{z}/origin_tls_client_auth/hostnames', 'PUT, GET'],
    ['PATCH', '/zones/{z}/origin_tls_client_auth/hostnames/certificates/{c}', 'GET, DELETE'],
    ['PATCH', '/accounts/{a}/access/certificates', 'GET, POST'],
    ['PATCH', '/accounts/{a}/access/certificates/{c}', 'GET, PUT, DELETE'],
    ['POST', '/accounts/{a}/access/certificates/settings', 'GET, PUT'],
    ['PATCH', '/zones/{z}/access/certificates/settings', 'GET, PUT'],
    ['POST', '/user/tokens/verify', 'GET'],
    ['POST', '/zones', 'GET'],
    ['DELETE', '/zones/{z}', 'GET'],
  ];
  const fill = (p: string) => p.replace('{z}', z).replace('{a}', a).replace('{c}', CERT_ID);
  for (const [method, template, allow] of cases) {
    test(`${method} ${template} → Allow: ${allow}`, async () => {
      for (const token of [undefined, null]) {
        const res = await call(method, fill(template), { token });
        assertExactError(res, 405, {
          code: 10405,
          message: `Method not allowed for this endpoint: ${method} (allowed: ${allow})`,
        });
        assert.equal(res.headers.get('allow'), allow);
      }
    });
  }

  test('DELETE on a .../settings path is a 405, not a DELETE of a certificate whose id is "settings"', async () => {
    for (const [path, allow] of [
      [aop('/settings'), 'GET, PUT'],
      [zacc('/settings'), 'GET, PUT'],
    ] as const) {
      const res = await call('DELETE', path);
      assertExactError(res, 405, { code: 10405, message: `Method not allowed for this endpoint: DELETE (allowed: ${allow})` });
      assert.equal(res.headers.get('allow'), allow);
    }
  });

  test('a 405 does not change anything', async () => {
    await call('POST', aop('/settings'), { body: { enabled: true } });
    assert.deepEqual(assertOk(await call('GET', aop('/settings'))), { enabled: false });
  });
});

describe('malformed object identifiers → 400 7003', () => {
  test('zone ids that are not 32 lowercase hex characters', async () => {
    for (const id of ['ABC', z.toUpperCase(), z.slice(0, 31), `${z}0`, 'g'.repeat(32), 'example.com', `${z.slice(0, 31)}Z`]) {
      for (const rest of ['/origin_tls_client_auth/settings', '/origin_tls_client_auth', '/origin_tls_client_auth/hostnames/app.example.com', '/access/certificates', '']) {
        const path = `/zones/${id}${rest}`;
        assertExactError(await call('GET', path), 400, badId(path));
      }
    }
  });

  test('account ids too, and the query string is not part of the message', async () => {
    const path = `/accounts/not-an-account/access/certificates`;
    assertExactError(await call('GET', `${path}?page=2`), 400, badId(path));
    assertExactError(await call('POST', path, { body: { name: 'x', certificate: 'y' } }), 400, badId(path));
    const zpath = `/zones/XYZ/origin_tls_client_auth/hostnames`;
    assertExactError(await call('GET', `${zpath}?status=all`), 400, badId(zpath));
  });

  test('the identifier is checked before credentials and before the body', async () => {
    const path = '/zones/nope/origin_tls_client_auth/settings';
    assertExactError(await call('GET', path, { token: null }), 400, badId(path));
    assertExactError(await call('GET', path, { token: 'A'.repeat(40) }), 400, badId(path));
    assertExactError(await call('PUT', path, { body: { nonsense: 1 } }), 400, badId(path));
  });
});

describe('request bodies', () => {
  test('malformed JSON → 400 6007', async () => {
    for (const raw of ['{bad', '{"enabled": tru', '{"enabled": true,}', "{'enabled': true}", '{"enabled": true}}', 'undefined']) {
      assertExactError(await call('PUT', aop('/settings'), { raw, headers: { 'content-type': 'application/json' } }), 400, MALFORMED);
    }
    assertExactError(await call('POST', acc(), { raw: '{"name":', headers: { 'content-type': 'application/json' } }), 400, MALFORMED);
    assertExactError(await call('PUT', aop('/hostnames'), { raw: '[{]' }), 400, MALFORMED);
  });

  test('empty body on POST/PUT → 400 6007 "Request body is required and must be a JSON object"', async () => {
    const targets: [string, string][] = [
      ['PUT', aop('/settings')],
      ['POST', aop()],
      ['POST', aop('/hostnames/certificates')],
      ['PUT', aop('/hostnames')],
      ['POST', acc()],
      ['POST', zacc()],
      ['PUT', acc('/settings')],
      ['PUT', acc(`/${CERT_ID}`)],
    ];
    for (const [method, path] of targets) {
      assertExactError(await call(method, path), 400, BODY_REQUIRED); // no body at all
      assertExactError(await call(method, path, { raw: '' }), 400, BODY_REQUIRED);
      assertExactError(await call(method, path, { raw: ' \n\t ', headers: { 'content-type': 'application/json' } }), 400, BODY_REQUIRED);
      assertExactError(await call(method, path, { raw: 'null', headers: { 'content-type': 'application/json' } }), 400, BODY_REQUIRED);
    }
  });

  test('a JSON array, string, number or boolean as the body → the route family’s validation error', async () => {
    for (const raw of ['[]', '[{"enabled":true}]', '"enabled"', '42', 'true']) {
      const headers = { 'content-type': 'application/json' };
      assertExactError(await call('PUT', aop('/settings'), { raw, headers }), 400, aopInvalid('body must be an object', '/'));
      assertExactError(await call('POST', aop('/hostnames/certificates'), { raw, headers }), 400, aopInvalid('body must be an object', '/'));
      assertExactError(await call('POST', acc(), { raw, headers }), 400, accessInvalid('body must be an object', '/'));
      assertExactError(await call('PUT', zacc('/settings'), { raw, headers }), 400, accessInvalid('body must be an object', '/'));
    }
  });

  test('a body over CERTPLANE_BODY_LIMIT → 413 6009; exactly at the limit is parsed', async () => {
    const padded = (size: number) => {
      const head = '{"enabled":true,"pad":"';
      const tail = '"}';
      return head + 'x'.repeat(size - head.length - tail.length) + tail;
    };
    const atLimit = padded(BODY_LIMIT);
    assert.equal(Buffer.byteLength(atLimit), BODY_LIMIT);
    assertExactError(
      await call('PUT', aop('/settings'), { raw: atLimit, headers: { 'content-type': 'application/json' } }),
      400,
      aopInvalid('unknown field "pad"', '/pad'),
    );
    const over = padded(BODY_LIMIT + 1);
    assertExactError(await call('PUT', aop('/settings'), { raw: over, headers: { 'content-type': 'application/json' } }), 413, TOO_LARGE);
    assertExactError(await call('POST', acc(), { raw: padded(BODY_LIMIT * 4), headers: { 'content-type': 'application/json' } }), 413, TOO_LARGE);
    // Not JSON at all, still too large first.
    assertExactError(await call('POST', aop(), { raw: 'x'.repeat(BODY_LIMIT + 100) }), 413, TOO_LARGE);
    // Without Content-Length (chunked), the limit holds too.
    const chunked = await rawHttp('PUT', aop('/settings'), { chunks: Array.from({ length: 10 }, () => 'x'.repeat(1000)) });
    assert.equal(chunked.status, 413);
    assert.match(String(chunked.headers['content-type']), /^application\/json/);
    assert.deepEqual(chunked.body, { success: false, errors: [TOO_LARGE], messages: [], result: null });
    assert.deepEqual(assertOk(await call('GET', aop('/settings'))), { enabled: false });
  });

  test('unknown fields → 400 with a pointer to the field', async () => {
    assertExactError(await call('PUT', aop('/settings'), { body: { enabled: true, x: 1 } }), 400, aopInvalid('unknown field "x"', '/x'));
    assertExactError(
      await call('POST', aop(), { body: { certificate: 'c', private_key: 'k', passphrase: 'p' } }),
      400,
      aopInvalid('unknown field "passphrase"', '/passphrase'),
    );
    assertExactError(await call('PUT', aop('/hostnames'), { body: { config: [], zone: z } }), 400, aopInvalid('unknown field "zone"', '/zone'));
    assertExactError(
      await call('POST', acc(), { body: { name: 'n', certificate: 'c', extra: true } }),
      400,
      accessInvalid('unknown field "extra"', '/extra'),
    );
    assertExactError(
      await call('PUT', acc('/settings'), {
        body: { settings: [{ hostname: 'app.example.com', china_network: false, client_certificate_forwarding: true, foo: 1 }] },
      }),
      400,
      accessInvalid('unknown field "foo"', '/settings/0/foo'),
    );
    assert.deepEqual(assertOk(await call('GET', aop('/settings'))), { enabled: false });
  });

  test('wrong types and missing fields → 400 with a pointer to the field', async () => {
    assertExactError(await call('PUT', aop('/settings'), { body: { enabled: 'true' } }), 400, aopInvalid('enabled must be a boolean', '/enabled'));
    assertExactError(await call('PUT', aop('/settings'), { body: { enabled: 1 } }), 400, aopInvalid('enabled must be a boolean', '/enabled'));
    assertExactError(await call('PUT', aop('/settings'), { body: { enabled: null } }), 400, aopInvalid('enabled must be a boolean', '/enabled'));
    assertExactError(await call('PUT', aop('/settings'), { body: {} }), 400, aopInvalid('missing required field "enabled"', '/enabled'));
    assertExactError(
      await call('POST', aop(), { body: { certificate: 5, private_key: 'k' } }),
      400,
      aopInvalid('certificate must be a string', '/certificate'),
    );
    assertExactError(
      await call('POST', aop('/hostnames/certificates'), { body: { certificate: 'c' } }),
      400,
      aopInvalid('missing required field "private_key"', '/private_key'),
    );
    assertExactError(await call('PUT', aop('/hostnames'), { body: { config: {} } }), 400, aopInvalid('config must be an array', '/config'));
    assertExactError(await call('POST', acc(), { body: { name: 5, certificate: 'c' } }), 400, accessInvalid('name must be a string', '/name'));
    assertExactError(
      await call('PUT', acc(`/${CERT_ID}`), { body: { associated_hostnames: 'app.example.com' } }),
      400,
      accessInvalid('associated_hostnames must be an array', '/associated_hostnames'),
    );
    assertExactError(
      await call('PUT', zacc('/settings'), {
        body: { settings: [{ hostname: 'app.example.com', china_network: 'no', client_certificate_forwarding: true }] },
      }),
      400,
      accessInvalid('settings.0.china_network must be a boolean', '/settings/0/china_network'),
    );
  });

  test('bundle_method is accepted (and ignored) on AOP uploads, but must be a string', async () => {
    const zoneLeaf = await makeLeaf({ dnsNames: ['example.com'] });
    const up = await call('POST', aop(), {
      body: { certificate: zoneLeaf.certPem, private_key: zoneLeaf.keyPem, bundle_method: 'ubiquitous' },
    });
    const cert = assertOk(up);
    assert.equal(cert.certificate.trim(), zoneLeaf.certPem.trim());
    assert.equal('bundle_method' in cert, false);
    assert.equal('private_key' in cert, false);

    const hostLeaf = await makeLeaf({ dnsNames: ['app.example.com'] });
    const hup = await call('POST', aop('/hostnames/certificates'), {
      body: { certificate: hostLeaf.certPem, private_key: hostLeaf.keyPem, bundle_method: 'force' },
    });
    assert.equal('bundle_method' in assertOk(hup), false);

    assertExactError(
      await call('POST', aop(), { body: { certificate: zoneLeaf.certPem, private_key: zoneLeaf.keyPem, bundle_method: 5 } }),
      400,
      aopInvalid('bundle_method must be a string', '/bundle_method'),
    );
    // Access uploads have no bundle_method.
    assertExactError(
      await call('POST', acc(), { body: { name: 'n', certificate: 'c', bundle_method: 'ubiquitous' } }),
      400,
      accessInvalid('unknown field "bundle_method"', '/bundle_method'),
    );
  });
});

describe('content types', () => {
  test('JSON is parsed whatever the Content-Type says (curl -d sends form encoding)', async () => {
    for (const [ct, enabled] of [
      ['application/json', true],
      ['application/json; charset=utf-8', false],
      ['text/plain', true],
      ['text/plain;charset=UTF-8', false],
      ['application/x-www-form-urlencoded', true],
      ['application/octet-stream', false],
    ] as const) {
      const res = await call('PUT', aop('/settings'), { raw: JSON.stringify({ enabled }), headers: { 'content-type': ct } });
      assert.deepEqual(assertOk(res), { enabled }, ct);
    }
    assertExactError(
      await call('PUT', aop('/settings'), { raw: 'enabled=true', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      400,
      MALFORMED,
    );
  });

  test('a body without any Content-Type header is parsed as JSON', async () => {
    const body = '{"enabled":true}';
    const res = await rawHttp('PUT', aop('/settings'), { headers: { 'content-length': Buffer.byteLength(body) }, chunks: [body] });
    assert.equal(res.status, 200, res.text);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(res.body, { success: true, errors: [], messages: [], result: { enabled: true } });
    const bad = await rawHttp('PUT', aop('/settings'), { headers: { 'content-length': 4 }, chunks: ['{bad'] });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { success: false, errors: [MALFORMED], messages: [], result: null });
    const res2 = await call('PUT', aop('/settings'), { body: { enabled: false } });
    assert.deepEqual(assertOk(res2), { enabled: false });
  });
});

describe('awkward paths', () => {
  test('a 300+ character hostname in the path → 400 1417 (not 414)', async () => {
    const long = `${'a'.repeat(60)}.`.repeat(5) + 'example.com'; // 316 characters
    assert.ok(long.length > 300);
    assertExactError(await call('GET', aop(`/hostnames/${long}`)), 400, {
      code: 1417,
      message: 'Invalid hostname: hostname is longer than 253 characters',
    });
    // 254 characters of valid labels: too long once normalised.
    const l254 = `${'b'.repeat(62)}.`.repeat(3) + 'c'.repeat(53) + '.example.com';
    assert.equal(l254.length, 254);
    assertExactError(await call('GET', aop(`/hostnames/${l254}`)), 400, {
      code: 1417,
      message: 'Invalid hostname: hostname is longer than 253 characters',
    });
  });

  test('a path segment beyond the router’s limit → 400 7003, not 414', async () => {
    const path = aop(`/hostnames/${'a'.repeat(2000)}`);
    assertExactError(await call('GET', path), 400, badId(path));
    const zpath = `/zones/${'a'.repeat(1500)}/origin_tls_client_auth`;
    assertExactError(await call('GET', zpath), 400, badId(zpath));
  });

  test('undecodable percent-encoding in the path → 400 envelope, never a 500 or a bare framework error', async () => {
    for (const path of [
      aop('/hostnames/%E0%A4%A'),
      aop('/hostnames/%E0%A4app.example.com'),
      aop('/hostnames/%'),
      aop('/hostnames/%ZZ'),
      `/zones/%E0%A4%A/origin_tls_client_auth`,
      `/%E0%A4%A`,
    ]) {
      const res = await call('GET', path);
      assert.equal(res.status, 400, `${path}: ${res.text}`);
      assertExactError(res, 400, badId(path));
    }
  });

  test('percent-encoded but well-formed hostnames are decoded and checked', async () => {
    // A decoded character the hostname rules refuse → 1417.
    assertExactError(await call('GET', aop('/hostnames/app%20example.com')), 400, {
      code: 1417,
      message: 'Invalid hostname: hostname contains invalid characters',
    });
    assertExactError(await call('GET', aop('/hostnames/%2Fetc%2Fpasswd')), 400, {
      code: 1417,
      message: 'Invalid hostname: hostname contains invalid characters',
    });
  });

  test('a hostname path parameter is normalised (case, trailing dot, percent-encoding)', async () => {
    const leaf = await makeLeaf({ dnsNames: ['norm.example.com'] });
    const cert = assertOk(
      await call('POST', aop('/hostnames/certificates'), { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
    );
    const put = assertOk(
      await call('PUT', aop('/hostnames'), { body: { config: [{ hostname: 'Norm.Example.COM.', cert_id: cert.id, enabled: true }] } }),
    );
    assert.equal(put[0].hostname, 'norm.example.com');
    for (const h of ['norm.example.com', 'NORM.EXAMPLE.COM', 'Norm.Example.com.', 'norm%2Eexample%2Ecom', '%4Eorm.example.com']) {
      const got = assertOk(await call('GET', aop(`/hostnames/${h}`)));
      assert.equal(got.hostname, 'norm.example.com', h);
      assert.equal(got.cert_id, cert.id, h);
      assert.equal(got.enabled, true, h);
    }
    // A hostname that is merely unknown (but valid) → 404 1553.
    assertExactError(await call('GET', aop('/hostnames/Other.Example.com.')), 404, {
      code: 1553,
      message: 'Authenticated Origin Pulls setting for this hostname not found',
    });
  });
});

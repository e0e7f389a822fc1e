/**
 * Per-hostname Authenticated Origin Pulls over real HTTP: hostname certificates (upload, read, list, delete,
 * revival, limits) and hostname associations (PUT upsert rules, enabled semantics, limits, atomicity, listing and
 * reading). Every response goes through `call`, which also fails if any response ever carries a private key.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import {
  type ApiResponse,
  type RequestOptions,
  type TestServer,
  assertError,
  assertOk,
  expectedResultInfo,
  startServer,
  withServer as withFreshServer,
} from './helpers/harness.js';
import { type Issued, makeCA, makeChain, makeLeaf } from './helpers/certs.js';

// ---------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------

const T0 = '2026-01-01T00:00:00.000Z';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UNKNOWN_ID = '2458ce5a-0c35-4c7f-82c7-8e9487d3ff60';

const MSG = {
  certUnparseable: 'Unable to parse certificate',
  missingLeaf: 'missing leaf certificate',
  keyMissing: 'Private key is required',
  keyUnparseable: 'Unable to parse private key',
  keyEncrypted: 'Private key is encrypted; upload it without a passphrase',
  keyUnsupported: 'Unsupported private key type; use RSA, ECDSA (P-256, P-384, P-521) or Ed25519',
  keyMismatch: 'The private key does not match the certificate',
  duplicate: 'This certificate already exists for this zone.',
  certLimit: (n: number) => `You have reached the maximum number of hostname certificates for this zone (${n})`,
  assocLimit: (n: number) => `Too many hostnames are associated with this certificate; the maximum is ${n}`,
  notFound: 'Hostname certificate not found',
  certIdRequired: 'Certificate ID required',
  certIdInvalid: 'Certificate ID in request is either invalid or the certificate has been deleted',
  certIdMalformed: 'Invalid Certificate ID',
  enabledInvalid: 'enabled must be true, false or null',
  hostnameRequired: 'Hostname required',
  notInZone: (h: string) => `Hostname does not belong to this zone: ${h}`,
  duplicateHost: (h: string) => `Hostname appears more than once in the request: ${h}`,
  assocNotFound: 'Authenticated Origin Pulls setting for this hostname not found',
  inUse: 'This certificate is in use by one or more hostnames; set enabled to null for each association first',
  pendingDeployment: 'Cannot delete resource while in pending deployment state.',
  pendingDeletion: 'This certificate is pending deletion.',
  alreadyDeleted: 'Certificate is already deleted.',
  statusFilter:
    'Invalid request: status must be "all" or a comma-separated list of: active, pending_deployment, pending_deletion, deleted, deployment_timed_out, deletion_timed_out',
};

let responsesScanned = 0;

/** Every request of this file goes through here: no response may ever contain a private key. */
async function call(s: TestServer, method: string, path: string, opts?: RequestOptions): Promise<ApiResponse> {
  const res = await s.request(method, path, opts);
  responsesScanned++;
  assert.ok(!res.text.includes('PRIVATE KEY'), `${method} ${path} answered with a private key: ${res.text.slice(0, 300)}`);
  if (res.body.success) assert.ok(!res.text.includes('private_key'), `${method} ${path} answered a private_key field`);
  return res;
}

const certsPath = (s: TestServer, zoneId = s.zoneId) => `/zones/${zoneId}/origin_tls_client_auth/hostnames/certificates`;
const certPath = (s: TestServer, id: string, zoneId = s.zoneId) => `${certsPath(s, zoneId)}/${id}`;
const hostsPath = (s: TestServer) => `/zones/${s.zoneId}/origin_tls_client_auth/hostnames`;
const hostPath = (s: TestServer, h: string) => `${hostsPath(s)}/${encodeURIComponent(h)}`;

const now = (s: TestServer) => s.clock.now().toISOString();
const dec = (hex: string) => BigInt(`0x${hex}`).toString(10);

async function upload(s: TestServer, leaf: Issued, o: { certificate?: string; key?: string; zoneId?: string } = {}) {
  const res = await call(s, 'POST', certsPath(s, o.zoneId), {
    body: { certificate: o.certificate ?? leaf.certPem, private_key: o.key ?? leaf.keyPem },
  });
  return assertOk(res);
}

async function uploadError(s: TestServer, certificate: unknown, privateKey: unknown) {
  const body: Record<string, unknown> = {};
  if (certificate !== undefined) body.certificate = certificate;
  if (privateKey !== undefined) body.private_key = privateKey;
  return call(s, 'POST', certsPath(s), { body });
}

/** Uploads a fresh P-256 leaf and lets it become active. */
async function activeCert(s: TestServer, leaf?: Issued) {
  const l = leaf ?? (await makeLeaf());
  const c = await upload(s, l);
  await s.settle();
  return { ...c, status: 'active', leaf: l };
}

const put = (s: TestServer, config: unknown) => call(s, 'PUT', hostsPath(s), { body: { config } });

async function putOk(s: TestServer, config: unknown): Promise<any[]> {
  return assertOk(await put(s, config));
}

function assertPointer(res: ApiResponse, pointer: string) {
  assert.deepEqual(res.body.errors[0].source, { pointer }, res.text);
}

/** The wire shape of a hostname certificate. */
function certView(
  leaf: Issued,
  o: { id: string; issuer: string; signature: string; status: string; uploadedOn: string; certificate?: string },
) {
  return {
    id: o.id,
    certificate: o.certificate ?? leaf.certPem,
    expires_on: leaf.notAfter.toISOString(),
    issuer: o.issuer,
    serial_number: dec(leaf.serialHex),
    signature: o.signature,
    status: o.status,
    uploaded_on: o.uploadedOn,
  };
}

/** The wire shape of an association with its certificate (GET /hostnames/{hostname}; PUT items add `id`). */
function assocDetail(
  cert: { id: string; certificate: string; expires_on: string; issuer: string; serial_number: string; signature: string; uploaded_on: string },
  o: { hostname: string; enabled: boolean | null; status: string; certStatus: string; createdAt: string; updatedAt: string; withId?: boolean },
) {
  return {
    ...(o.withId ? { id: cert.id } : {}),
    cert_id: cert.id,
    cert_status: o.certStatus,
    cert_updated_at: cert.uploaded_on,
    cert_uploaded_on: cert.uploaded_on,
    certificate: cert.certificate,
    created_at: o.createdAt,
    enabled: o.enabled,
    expires_on: cert.expires_on,
    hostname: o.hostname,
    issuer: cert.issuer,
    serial_number: cert.serial_number,
    signature: cert.signature,
    status: o.status,
    updated_at: o.updatedAt,
  };
}

const withServer = (fn: (s: TestServer) => Promise<void>, env: Record<string, string> = {}) => withFreshServer(env, fn);

async function listAll(s: TestServer, query = 'status=all&per_page=1000') {
  return assertOk(await call(s, 'GET', `${hostsPath(s)}?${query}`)) as any[];
}

// ---------------------------------------------------------------------------------------------------------------
// upload and read
// ---------------------------------------------------------------------------------------------------------------

describe('hostname certificate upload', () => {
  test('a leaf issued by a CA with O: exact response, decimal serial, initializing → pending_deployment → active', async () => {
    await withServer(async (s) => {
      const ca = await makeCA({ keyType: 'p256', org: 'Acme Issuing Org', cn: 'Acme Issuing CA' });
      const leaf = await makeLeaf({ keyType: 'p256', issuer: ca, serial: '0123456789abcdef0123' });
      const res = await call(s, 'POST', certsPath(s), { body: { certificate: leaf.certPem, private_key: leaf.keyPem } });
      assert.equal(res.status, 200);
      const id = res.body.result.id;
      assert.match(id, UUID);
      const expected = {
        id,
        certificate: leaf.certPem,
        expires_on: leaf.notAfter.toISOString(),
        issuer: 'Acme Issuing Org',
        serial_number: '5373003642731685151011',
        signature: 'ECDSAWithSHA256',
        status: 'initializing',
        uploaded_on: T0,
      };
      assert.deepEqual(res.body, { success: true, errors: [], messages: [], result: expected });

      assert.deepEqual(assertOk(await call(s, 'GET', certPath(s, id))), expected);
      const list = await call(s, 'GET', certsPath(s));
      assert.deepEqual(list.body, {
        success: true,
        errors: [],
        messages: [],
        result: [expected],
        result_info: { page: 1, per_page: 1, count: 1, total_count: 1, total_pages: 1 },
      });

      await s.cp.deployer.tick();
      assert.equal(assertOk(await call(s, 'GET', certPath(s, id))).status, 'pending_deployment');
      s.clock.advance(s.config.domain.lifecycle.deployDelayMs);
      await s.cp.deployer.tick();
      assert.deepEqual(assertOk(await call(s, 'GET', certPath(s, id))), { ...expected, status: 'active' });
    });
  });

  test('every key type and key form is accepted, with the exact issuer and signature name', async () => {
    await withServer(async (s) => {
      const ecParamsP256 = '-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n';
      const cases: {
        name: string;
        leaf: () => Promise<Issued>;
        key: (l: Issued) => string;
        signature: string;
        issuer?: string;
      }[] = [
        { name: 'rsa2048 pkcs1', leaf: () => makeLeaf({ keyType: 'rsa2048', cn: 'rsa2048-pkcs1' }), key: (l) => l.keyPemAs('pkcs1'), signature: 'SHA256WithRSA' },
        { name: 'rsa2048 pkcs8', leaf: () => makeLeaf({ keyType: 'rsa2048', cn: 'rsa2048-pkcs8' }), key: (l) => l.keyPemAs('pkcs8'), signature: 'SHA256WithRSA' },
        { name: 'rsa2048 sha384', leaf: () => makeLeaf({ keyType: 'rsa2048', signHash: 'SHA-384' }), key: (l) => l.keyPem, signature: 'SHA384WithRSA' },
        { name: 'rsa2048 sha512', leaf: () => makeLeaf({ keyType: 'rsa2048', signHash: 'SHA-512' }), key: (l) => l.keyPem, signature: 'SHA512WithRSA' },
        { name: 'rsa4096 pkcs1', leaf: () => makeLeaf({ keyType: 'rsa4096', org: 'Big RSA Org' }), key: (l) => l.keyPemAs('pkcs1'), signature: 'SHA256WithRSA', issuer: 'Big RSA Org' },
        { name: 'p256 sec1', leaf: () => makeLeaf({ keyType: 'p256' }), key: (l) => l.keyPemAs('sec1'), signature: 'ECDSAWithSHA256' },
        { name: 'p256 sec1 with EC PARAMETERS', leaf: () => makeLeaf({ keyType: 'p256' }), key: (l) => ecParamsP256 + l.keyPemAs('sec1'), signature: 'ECDSAWithSHA256' },
        { name: 'p256 pkcs8', leaf: () => makeLeaf({ keyType: 'p256' }), key: (l) => l.keyPem, signature: 'ECDSAWithSHA256' },
        { name: 'p256 sha384', leaf: () => makeLeaf({ keyType: 'p256', signHash: 'SHA-384' }), key: (l) => l.keyPem, signature: 'ECDSAWithSHA384' },
        { name: 'p384 sec1', leaf: () => makeLeaf({ keyType: 'p384', signHash: 'SHA-384' }), key: (l) => l.keyPemAs('sec1'), signature: 'ECDSAWithSHA384' },
        { name: 'p384 pkcs8', leaf: () => makeLeaf({ keyType: 'p384', signHash: 'SHA-384' }), key: (l) => l.keyPemAs('pkcs8'), signature: 'ECDSAWithSHA384' },
        { name: 'ed25519 pkcs8', leaf: () => makeLeaf({ keyType: 'ed25519' }), key: (l) => l.keyPem, signature: 'Ed25519' },
      ];
      // The limit is 10 per zone: spread the cases over two zones.
      const other = await s.cp.services.tenancy.createZone({ name: 'other-zone.test', accountId: s.accountId });
      for (const [i, c] of cases.entries()) {
        const zoneId = i < 8 ? s.zoneId : other.id;
        const leaf = await c.leaf();
        const res = await call(s, 'POST', certsPath(s, zoneId), { body: { certificate: leaf.certPem, private_key: c.key(leaf) } });
        const result = assertOk(res);
        // Self-signed: the issuer is the certificate's own O, else its own CN.
        const issuer = c.issuer ?? leaf.subjectCN;
        assert.deepEqual(
          result,
          certView(leaf, { id: result.id, issuer, signature: c.signature, status: 'initializing', uploadedOn: T0 }),
          c.name,
        );
      }
      assert.equal(assertOk(await call(s, 'GET', certsPath(s))).length, 8);
      assert.equal(assertOk(await call(s, 'GET', certsPath(s, other.id))).length, cases.length - 8);
    });
  });

  test('issuer is the issuing CA O, else its CN; serial is the decimal of the certificate serial', async () => {
    await withServer(async (s) => {
      const caNoOrg = await makeCA({ keyType: 'p384', cn: 'Only A Common Name CA' });
      const leaf1 = await makeLeaf({ keyType: 'p256', issuer: caNoOrg, org: 'Leaf Org Is Not The Issuer', serial: '7fedcba9876543210fedcba987654321' });
      const r1 = await upload(s, leaf1);
      assert.equal(r1.issuer, 'Only A Common Name CA');
      assert.equal(r1.serial_number, '170046660580768971048621704818733695777');
      // Signed by a P-384 CA with SHA-256.
      assert.equal(r1.signature, 'ECDSAWithSHA256');

      const caRsa = await makeCA({ keyType: 'rsa2048', org: 'RSA Issuer Org', cn: 'RSA Issuer CN' });
      const leaf2 = await makeLeaf({ keyType: 'p256', issuer: caRsa, signHash: 'SHA-384', serial: '01' });
      const r2 = await upload(s, leaf2);
      assert.equal(r2.issuer, 'RSA Issuer Org');
      assert.equal(r2.serial_number, '1');
      assert.equal(r2.signature, 'SHA384WithRSA');

      const caEd = await makeCA({ keyType: 'ed25519', org: 'Edwards Org' });
      const leaf3 = await makeLeaf({ keyType: 'rsa2048', issuer: caEd });
      const r3 = await upload(s, leaf3);
      assert.deepEqual(r3, certView(leaf3, { id: r3.id, issuer: 'Edwards Org', signature: 'Ed25519', status: 'initializing', uploadedOn: T0 }));
    });
  });

  test('a chain (leaf + intermediate, and leaf + intermediate + root) is accepted; the leaf describes the certificate', async () => {
    await withServer(async (s) => {
      const { root, intermediate, leaf } = await makeChain('p256');
      const r1 = await upload(s, leaf, { certificate: leaf.certPem + intermediate.certPem });
      assert.deepEqual(
        r1,
        certView(leaf, {
          id: r1.id,
          issuer: 'Certplane Test Intermediate',
          signature: 'ECDSAWithSHA256',
          status: 'initializing',
          uploadedOn: T0,
          certificate: leaf.certPem + intermediate.certPem,
        }),
      );
      const chain2 = await makeChain('p384');
      const full = chain2.leaf.certPem + chain2.intermediate.certPem + chain2.root.certPem;
      const r2 = await upload(s, chain2.leaf, { certificate: full });
      assert.equal(r2.certificate, full);
      assert.equal(r2.issuer, 'Certplane Test Intermediate');
      // The same leaf with a different chain is the same certificate.
      assertError(
        await uploadError(s, leaf.certPem + intermediate.certPem + root.certPem, leaf.keyPem),
        400,
        1406,
        MSG.duplicate,
      );
      assertError(await uploadError(s, leaf.certPem, leaf.keyPem), 400, 1406, MSG.duplicate);
    });
  });

  test('an expired leaf is accepted with its past expires_on; CRLF and surrounding text are tolerated and normalised', async () => {
    await withServer(async (s) => {
      const expired = await makeLeaf({
        keyType: 'p256',
        notBefore: new Date('2020-01-01T00:00:00Z'),
        notAfter: new Date('2021-01-01T00:00:00Z'),
      });
      const r = await upload(s, expired);
      assert.equal(r.expires_on, '2021-01-01T00:00:00.000Z');
      assert.equal(r.status, 'initializing');
      await s.settle();
      assert.equal(assertOk(await call(s, 'GET', certPath(s, r.id))).status, 'active');

      const leaf = await makeLeaf({ keyType: 'p256' });
      const crlf = `subject comment\r\n${leaf.certPem.replace(/\n/g, '\r\n')}trailing text\r\n`;
      const r2 = await upload(s, leaf, { certificate: crlf, key: leaf.keyPem.replace(/\n/g, '\r\n') });
      assert.equal(r2.certificate, leaf.certPem);
    });
  });

  test('bundle_method (sent by Cloudflare docs) is accepted and ignored; other unknown fields are rejected', async () => {
    await withServer(async (s) => {
      const leaf = await makeLeaf();
      const res = await call(s, 'POST', certsPath(s), {
        body: { certificate: leaf.certPem, private_key: leaf.keyPem, bundle_method: 'ubiquitous' },
      });
      assert.equal(assertOk(res).status, 'initializing');
      const leaf2 = await makeLeaf();
      const bad = await call(s, 'POST', certsPath(s), {
        body: { certificate: leaf2.certPem, private_key: leaf2.keyPem, hostname: 'app.example.com' },
      });
      assertError(bad, 400, 1001, 'Invalid request: unknown field "hostname"');
      assertPointer(bad, '/hostname');
    });
  });
});

describe('hostname certificate upload errors', () => {
  test('certificate: garbage, empty, truncated, wrong block, CA → 1408/1407; nothing is stored', async () => {
    await withServer(async (s) => {
      const leaf = await makeLeaf({ keyType: 'p256' });
      const key = leaf.keyPem;
      const lines = leaf.certPem.trimEnd().split('\n');
      const truncatedUnterminated = lines.slice(0, Math.floor(lines.length / 2)).join('\n') + '\n';
      const truncatedTerminated = [...lines.slice(0, 3), lines[lines.length - 1]].join('\n') + '\n';
      const badBase64 = leaf.certPem.replace(lines[2], lines[2].slice(0, 10) + '!!!!' + lines[2].slice(14));
      const notDer = '-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n';

      const cases: [string, unknown][] = [
        ['garbage', 'this is not a certificate'],
        ['whitespace', '   \n\t  '],
        ['empty PEM block', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'],
        ['truncated (unterminated)', truncatedUnterminated],
        ['truncated (terminated)', truncatedTerminated],
        ['bad base64', badBase64],
        ['base64 of something else', notDer],
        ['only a private key block', leaf.keyPem],
        ['only the header line', '-----BEGIN CERTIFICATE-----'],
      ];
      for (const [name, certificate] of cases) {
        const res = await uploadError(s, certificate, key);
        assertError(res, 400, 1408, MSG.certUnparseable);
        assertPointer(res, '/certificate');
        assert.ok(name);
      }

      // An empty certificate cannot be parsed (1408); wrong types are caught by the JSON schema (1001).
      assertError(await uploadError(s, '', key), 400, 1408, 'Unable to parse certificate');
      assertError(await uploadError(s, 42, key), 400, 1001, 'Invalid request: certificate must be a string');
      assertError(await uploadError(s, undefined, key), 400, 1001, 'Invalid request: missing required field "certificate"');

      // A CA (leaf position holds a CA) → 1407, checked before the key.
      const ca = await makeCA({ keyType: 'p256' });
      const caRes = await uploadError(s, ca.certPem, ca.keyPem);
      assertError(caRes, 400, 1407, MSG.missingLeaf);
      assertPointer(caRes, '/certificate');
      assertError(await uploadError(s, ca.certPem, 'not a key'), 400, 1407, MSG.missingLeaf);
      const child = await makeLeaf({ issuer: ca });
      assertError(await uploadError(s, ca.certPem + child.certPem, child.keyPem), 400, 1407, MSG.missingLeaf);

      assert.deepEqual((await call(s, 'GET', certsPath(s))).body.result, []);
    });
  });

  test('private key: missing, unparseable, truncated, encrypted, unsupported, mismatched', async () => {
    await withServer(async (s) => {
      const leaf = await makeLeaf({ keyType: 'p256' });
      const rsaLeaf = await makeLeaf({ keyType: 'rsa2048' });
      const other = await makeLeaf({ keyType: 'p256' });
      const ed = await makeLeaf({ keyType: 'ed25519' });
      const keyLines = leaf.keyPem.trimEnd().split('\n');
      const truncatedKey = keyLines.slice(0, 2).join('\n') + '\n';
      const truncatedTerminatedKey = [keyLines[0], keyLines[1].slice(0, 20), keyLines[keyLines.length - 1]].join('\n') + '\n';
      const x25519 = generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      const legacyEncrypted = rsaLeaf.key.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string;

      const cases: { name: string; cert: Issued; key: unknown; code: number; message: string }[] = [
        { name: 'whitespace only', cert: leaf, key: '  \n ', code: 1409, message: MSG.keyMissing },
        { name: 'a certificate instead of a key', cert: leaf, key: leaf.certPem, code: 1409, message: MSG.keyMissing },
        { name: 'garbage', cert: leaf, key: 'definitely not a key', code: 1409, message: MSG.keyUnparseable },
        { name: 'junk inside armour', cert: leaf, key: '-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n', code: 1409, message: MSG.keyUnparseable },
        { name: 'truncated (unterminated)', cert: leaf, key: truncatedKey, code: 1409, message: MSG.keyUnparseable },
        { name: 'truncated (terminated)', cert: leaf, key: truncatedTerminatedKey, code: 1409, message: MSG.keyUnparseable },
        { name: 'encrypted PKCS#8', cert: leaf, key: leaf.encryptedKeyPem(), code: 1410, message: MSG.keyEncrypted },
        { name: 'encrypted legacy PKCS#1', cert: rsaLeaf, key: legacyEncrypted, code: 1410, message: MSG.keyEncrypted },
        { name: 'X25519', cert: leaf, key: x25519, code: 1411, message: MSG.keyUnsupported },
        { name: 'secp256k1', cert: leaf, key: secp256k1, code: 1411, message: MSG.keyUnsupported },
        { name: 'another P-256 key', cert: leaf, key: other.keyPem, code: 1412, message: MSG.keyMismatch },
        { name: 'an Ed25519 key for a P-256 cert', cert: leaf, key: ed.keyPem, code: 1412, message: MSG.keyMismatch },
        { name: 'another RSA key (pkcs1)', cert: rsaLeaf, key: (await makeLeaf({ keyType: 'rsa2048' })).keyPemAs('pkcs1'), code: 1412, message: MSG.keyMismatch },
        { name: 'the issuer key of a chain leaf', cert: leaf, key: (await makeCA()).keyPem, code: 1412, message: MSG.keyMismatch },
      ];
      for (const c of cases) {
        const res = await uploadError(s, c.cert.certPem, c.key);
        assert.equal(res.body.errors?.[0]?.code, c.code, `${c.name}: ${res.text}`);
        assertError(res, 400, c.code, c.message);
        assertPointer(res, '/private_key');
      }
      assertError(await uploadError(s, leaf.certPem, undefined), 400, 1001, 'Invalid request: missing required field "private_key"');
      assertError(await uploadError(s, leaf.certPem, ''), 400, 1409, 'Private key is required');
      assertError(await uploadError(s, leaf.certPem, null), 400, 1001, 'Invalid request: private_key must be a string');

      assert.deepEqual((await call(s, 'GET', certsPath(s))).body.result, []);
      // And the right key still works afterwards.
      assert.equal((await upload(s, leaf)).status, 'initializing');
    });
  });

  test('request shape: no body, malformed JSON, non-object', async () => {
    await withServer(async (s) => {
      assertError(await call(s, 'POST', certsPath(s)), 400, 6007, 'Request body is required and must be a JSON object');
      assertError(
        await call(s, 'POST', certsPath(s), { raw: '{"certificate":', headers: { 'content-type': 'application/json' } }),
        400,
        6007,
        'Malformed JSON in request body',
      );
      assertError(await call(s, 'POST', certsPath(s), { body: ['x'] }), 400, 1001, 'Invalid request: body must be an object');
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// duplicates, revival, limits
// ---------------------------------------------------------------------------------------------------------------

describe('duplicates, revival and limits', () => {
  test('duplicate → 1406 (also with another key form); other zones and zone-level certificates are separate', async () => {
    await withServer(async (s) => {
      const leaf = await makeLeaf({ keyType: 'p256' });
      const first = await upload(s, leaf, { key: leaf.keyPemAs('sec1') });
      assertError(await uploadError(s, leaf.certPem, leaf.keyPem), 400, 1406, MSG.duplicate);
      assertError(await uploadError(s, leaf.certPem, leaf.keyPemAs('sec1')), 400, 1406, MSG.duplicate);
      await s.settle();
      assertError(await uploadError(s, leaf.certPem, leaf.keyPem), 400, 1406, MSG.duplicate);

      const other = await s.cp.services.tenancy.createZone({ name: 'example.net', accountId: s.accountId });
      const inOther = await upload(s, leaf, { zoneId: other.id });
      assert.notEqual(inOther.id, first.id);

      const zoneLevel = assertOk(
        await call(s, 'POST', `/zones/${s.zoneId}/origin_tls_client_auth`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
      );
      assert.notEqual(zoneLevel.id, first.id);
      // Each id is only visible in its own zone and kind.
      assertError(await call(s, 'GET', certPath(s, inOther.id)), 404, 1551, MSG.notFound);
      assertError(await call(s, 'GET', certPath(s, zoneLevel.id)), 404, 1551, MSG.notFound);
      assert.deepEqual(
        assertOk(await call(s, 'GET', certsPath(s))).map((c: any) => c.id),
        [first.id],
      );
    });
  });

  test('a deleted certificate re-uploaded comes back under the same id; while pending deletion it is a duplicate', async () => {
    await withServer(async (s) => {
      const leaf = await makeLeaf({ keyType: 'ed25519', org: 'Revival Org' });
      const first = await activeCert(s, leaf);
      const deleting = assertOk(await call(s, 'DELETE', certPath(s, first.id)));
      assert.equal(deleting.status, 'pending_deletion');
      assertError(await uploadError(s, leaf.certPem, leaf.keyPem), 400, 1406, MSG.duplicate);
      await s.settle();
      assert.equal(assertOk(await call(s, 'GET', certPath(s, first.id))).status, 'deleted');
      assert.deepEqual(assertOk(await call(s, 'GET', certsPath(s))), []);

      const uploadedAt = now(s);
      assert.notEqual(uploadedAt, T0);
      const revived = await upload(s, leaf);
      assert.deepEqual(
        revived,
        certView(leaf, { id: first.id, issuer: 'Revival Org', signature: 'Ed25519', status: 'initializing', uploadedOn: uploadedAt }),
      );
      assert.deepEqual(assertOk(await call(s, 'GET', certPath(s, first.id))), revived);
      assert.deepEqual(assertOk(await call(s, 'GET', certsPath(s))), [revived]);
      await s.settle();
      assert.equal(assertOk(await call(s, 'GET', certPath(s, first.id))).status, 'active');
      // The revived certificate can be associated again.
      const [item] = await putOk(s, [{ hostname: 'revived.example.com', cert_id: first.id, enabled: true }]);
      assert.equal(item.cert_id, first.id);
    });
  });

  test('10 hostname certificates per zone; the 11th → 1413; pending deletions count, deleted ones do not', async () => {
    await withServer(async (s) => {
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) ids.push((await upload(s, await makeLeaf())).id);
      const res = await uploadError(s, (await makeLeaf()).certPem, (await makeLeaf()).keyPem);
      // The limit is checked after parsing; use a matching pair to be sure the limit is the reason.
      assertError(res, 400, 1412, MSG.keyMismatch);
      const eleventh = await makeLeaf();
      assertError(await uploadError(s, eleventh.certPem, eleventh.keyPem), 400, 1413, MSG.certLimit(10));

      // Other zones and zone-level certificates are unaffected.
      const other = await s.cp.services.tenancy.createZone({ name: 'example.org', accountId: s.accountId });
      await upload(s, eleventh, { zoneId: other.id });
      assertOk(await call(s, 'POST', `/zones/${s.zoneId}/origin_tls_client_auth`, { body: { certificate: eleventh.certPem, private_key: eleventh.keyPem } }));

      await s.settle();
      assert.equal(assertOk(await call(s, 'DELETE', certPath(s, ids[0]))).status, 'pending_deletion');
      assertError(await uploadError(s, eleventh.certPem, eleventh.keyPem), 400, 1413, MSG.certLimit(10));
      await s.settle();
      assert.equal(assertOk(await call(s, 'GET', certPath(s, ids[0]))).status, 'deleted');
      assert.equal((await upload(s, eleventh)).status, 'initializing');
      assert.equal(assertOk(await call(s, 'GET', certsPath(s))).length, 10);
      const twelfth = await makeLeaf();
      assertError(await uploadError(s, twelfth.certPem, twelfth.keyPem), 400, 1413, MSG.certLimit(10));
    });
  });

  test('a lower configured limit is enforced with its own number in the message', async () => {
    await withServer(
      async (s) => {
        await upload(s, await makeLeaf());
        await upload(s, await makeLeaf());
        const third = await makeLeaf();
        const res = await uploadError(s, third.certPem, third.keyPem);
        assertError(res, 400, 1413, MSG.certLimit(2));
        assert.equal(assertOk(await call(s, 'GET', certsPath(s))).length, 2);
      },
      { CERTPLANE_LIMIT_HOSTNAME_CERTIFICATES_PER_ZONE: '2' },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// read and delete by id
// ---------------------------------------------------------------------------------------------------------------

describe('hostname certificate by id', () => {
  test('GET/DELETE of an unknown id → 404 1551; a malformed id → 400 1415', async () => {
    await withServer(async (s) => {
      assertError(await call(s, 'GET', certPath(s, UNKNOWN_ID)), 404, 1551, MSG.notFound);
      assertError(await call(s, 'DELETE', certPath(s, UNKNOWN_ID)), 404, 1551, MSG.notFound);
      for (const bad of ['not-a-uuid', '023e105f4ecef8ad9ca31a8372d0c353', `${UNKNOWN_ID}0`]) {
        assertError(await call(s, 'GET', certPath(s, bad)), 400, 1415, MSG.certIdMalformed);
        assertError(await call(s, 'DELETE', certPath(s, bad)), 400, 1415, MSG.certIdMalformed);
      }
    });
  });

  test('DELETE: deploying → 1434, in use → 1433, void then delete → pending_deletion → deleted, still readable, again → 1414', async () => {
    await withServer(async (s) => {
      const leaf = await makeLeaf({ keyType: 'p384', signHash: 'SHA-384', org: 'Delete Org' });
      const c = await upload(s, leaf);
      const id = c.id;
      assertError(await call(s, 'DELETE', certPath(s, id)), 400, 1434, MSG.pendingDeployment); // initializing
      await s.cp.deployer.tick();
      assert.equal(assertOk(await call(s, 'GET', certPath(s, id))).status, 'pending_deployment');
      assertError(await call(s, 'DELETE', certPath(s, id)), 400, 1434, MSG.pendingDeployment);
      s.clock.advance(s.config.domain.lifecycle.deployDelayMs);
      await s.cp.deployer.tick();
      assert.equal(assertOk(await call(s, 'GET', certPath(s, id))).status, 'active');

      await putOk(s, [{ hostname: 'app.example.com', cert_id: id, enabled: true }]);
      assertError(await call(s, 'DELETE', certPath(s, id)), 400, 1433, MSG.inUse); // association pending deployment
      await s.settle();
      assertError(await call(s, 'DELETE', certPath(s, id)), 400, 1433, MSG.inUse); // association active
      await putOk(s, [{ hostname: 'app.example.com', cert_id: id, enabled: false }]);
      assertError(await call(s, 'DELETE', certPath(s, id)), 400, 1433, MSG.inUse); // enabled:false still pins it
      await s.settle();
      assertError(await call(s, 'DELETE', certPath(s, id)), 400, 1433, MSG.inUse);

      const [voided] = await putOk(s, [{ hostname: 'app.example.com', cert_id: id, enabled: null }]);
      assert.equal(voided.status, 'pending_deletion');
      assert.equal(voided.enabled, null);

      const deletedAt = now(s);
      const res = await call(s, 'DELETE', certPath(s, id));
      const expected = certView(leaf, { id, issuer: 'Delete Org', signature: 'ECDSAWithSHA384', status: 'pending_deletion', uploadedOn: T0 });
      assert.deepEqual(res.body, { success: true, errors: [], messages: [], result: expected });
      assert.notEqual(deletedAt, T0);
      assert.deepEqual(assertOk(await call(s, 'GET', certPath(s, id))), expected);
      assert.deepEqual(assertOk(await call(s, 'GET', certsPath(s))), [expected]);
      assertError(await call(s, 'DELETE', certPath(s, id)), 400, 1414, MSG.pendingDeletion);
      // A certificate pending deletion can no longer be associated.
      const pendingPut = await put(s, [{ hostname: 'app.example.com', cert_id: id, enabled: true }]);
      assertError(pendingPut, 400, 1415, MSG.certIdInvalid);
      assertPointer(pendingPut, '/config/0/cert_id');

      await s.settle();
      assert.deepEqual(assertOk(await call(s, 'GET', certPath(s, id))), { ...expected, status: 'deleted' });
      assert.deepEqual(assertOk(await call(s, 'GET', certsPath(s))), []);
      assertError(await call(s, 'DELETE', certPath(s, id)), 400, 1414, MSG.alreadyDeleted);
      // Voiding again once the certificate is deleted → 1415 (the association is inert anyway).
      assertError(await put(s, [{ hostname: 'app.example.com', cert_id: id, enabled: null }]), 400, 1415, MSG.certIdInvalid);
      // The voided association still shows its (deleted) certificate.
      const detail = assertOk(await call(s, 'GET', hostPath(s, 'app.example.com')));
      assert.equal(detail.status, 'deleted');
      assert.equal(detail.enabled, null);
      assert.equal(detail.cert_id, id);
      assert.equal(detail.cert_status, 'deleted');
    });
  });

  test('a certificate whose only association was moved to another certificate can be deleted', async () => {
    await withServer(async (s) => {
      const a = await activeCert(s);
      const b = await activeCert(s);
      await putOk(s, [{ hostname: 'rotate.example.com', cert_id: a.id, enabled: true }]);
      await s.settle();
      assertError(await call(s, 'DELETE', certPath(s, a.id)), 400, 1433, MSG.inUse);
      const [moved] = await putOk(s, [{ hostname: 'rotate.example.com', cert_id: b.id, enabled: true }]);
      assert.equal(moved.cert_id, b.id);
      assert.equal(moved.status, 'pending_deployment');
      assert.equal(assertOk(await call(s, 'DELETE', certPath(s, a.id))).status, 'pending_deletion');
      assertError(await call(s, 'DELETE', certPath(s, b.id)), 400, 1433, MSG.inUse);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// PUT associations: validation
// ---------------------------------------------------------------------------------------------------------------

describe('PUT hostnames: validation', () => {
  test("the docs' example body {config:[{}]} → 1404; body shape errors", async () => {
    await withServer(async (s) => {
      const res = await call(s, 'PUT', hostsPath(s), { raw: '{ "config": [ {} ] }', headers: { 'content-type': 'application/json' } });
      assertError(res, 400, 1404, MSG.certIdRequired);
      assertPointer(res, '/config/0/cert_id');

      assertError(await call(s, 'PUT', hostsPath(s)), 400, 6007, 'Request body is required and must be a JSON object');
      assertError(await call(s, 'PUT', hostsPath(s), { body: {} }), 400, 1001, 'Invalid request: missing required field "config"');
      assertError(await call(s, 'PUT', hostsPath(s), { body: { config: {} } }), 400, 1001, 'Invalid request: config must be an array');
      assertError(
        await call(s, 'PUT', hostsPath(s), { body: { config: [], extra: 1 } }),
        400,
        1001,
        'Invalid request: unknown field "extra"',
      );
      for (const entry of ['x', null, [], 5]) {
        const r = await put(s, [entry]);
        assertError(r, 400, 1001, 'Invalid request: each config entry must be an object');
        assertPointer(r, '/config/0');
      }
      assert.deepEqual((await put(s, [])).body, { success: true, errors: [], messages: [], result: [] });

      // Entries take only hostname, cert_id and enabled (the PUT response's id/private_key are not inputs).
      const cert = await activeCert(s);
      for (const extra of ['private_key', 'id', 'certificate']) {
        const r = await put(s, [{ hostname: 'app.example.com', cert_id: cert.id, enabled: true, [extra]: 'x' }]);
        assertError(r, 400, 1001, `Invalid request: unknown field "${extra}"`);
        assertPointer(r, `/config/0/${extra}`);
      }
      assert.deepEqual(await listAll(s), []);
    });
  });

  test('cert_id rules: missing → 1404; unknown, malformed, non-string, other zone, zone-level → 1415', async () => {
    await withServer(async (s) => {
      const cert = await activeCert(s);
      const other = await s.cp.services.tenancy.createZone({ name: 'example.io', accountId: s.accountId });
      const foreignLeaf = await makeLeaf();
      const foreign = await upload(s, foreignLeaf, { zoneId: other.id });
      const zoneLevel = assertOk(
        await call(s, 'POST', `/zones/${s.zoneId}/origin_tls_client_auth`, { body: { certificate: foreignLeaf.certPem, private_key: foreignLeaf.keyPem } }),
      );
      await s.settle();
      assert.equal(assertOk(await call(s, 'GET', `/zones/${s.zoneId}/origin_tls_client_auth/${zoneLevel.id}`)).status, 'active');

      for (const entry of [{ hostname: 'a.example.com', enabled: true }, { hostname: 'a.example.com', cert_id: null }, { hostname: 'a.example.com', cert_id: '' }]) {
        const r = await put(s, [entry]);
        assertError(r, 400, 1404, MSG.certIdRequired);
        assertPointer(r, '/config/0/cert_id');
      }
      for (const certId of [UNKNOWN_ID, 'nope', 123, true, foreign.id, zoneLevel.id]) {
        const r = await put(s, [{ hostname: 'a.example.com', cert_id: cert.id, enabled: true }, { hostname: 'b.example.com', cert_id: certId, enabled: true }]);
        assertError(r, 400, 1415, MSG.certIdInvalid);
        assertPointer(r, '/config/1/cert_id');
      }
      // cert_id is matched case-insensitively.
      const [item] = await putOk(s, [{ hostname: 'a.example.com', cert_id: cert.id.toUpperCase(), enabled: true }]);
      assert.equal(item.cert_id, cert.id);
      assert.equal(item.id, cert.id);
    });
  });

  test('hostname rules: required, invalid, wildcard, IP, not in the zone (incl. nested zone), duplicates after normalisation', async () => {
    await withServer(async (s) => {
      const cert = await activeCert(s);
      await s.cp.services.tenancy.createZone({ name: 'sub.example.com', accountId: s.accountId });
      const entry = (hostname: unknown) => ({ hostname, cert_id: cert.id, enabled: true });

      for (const h of [undefined, null, '']) {
        const r = await put(s, [entry(h)]);
        assertError(r, 400, 1403, MSG.hostnameRequired);
        assertPointer(r, '/config/0/hostname');
      }
      const invalid: [unknown, string][] = [
        ['bad host.example.com', 'hostname contains invalid characters'],
        ['app.example.com/path', 'hostname contains invalid characters'],
        [42, 'hostname must be a string'],
        ['*.example.com', 'hostname contains a wildcard that is not allowed here'],
        ['a..example.com', 'hostname has an empty label'],
        ['app.example.com..', 'hostname has an empty label'],
        ['-app.example.com', 'hostname has a label that starts or ends with a hyphen'],
        [`${'a'.repeat(64)}.example.com`, 'hostname has a label longer than 63 characters'],
        ['192.0.2.1', 'hostname is an IP address, not a domain name'],
        ['[::1]', 'hostname is an IP address, not a domain name'],
        ['com', 'hostname must have at least two labels'],
      ];
      for (const [h, message] of invalid) {
        const r = await put(s, [entry('ok.example.com'), entry(h)]);
        assertError(r, 400, 1417, `Invalid hostname: ${message}`);
        assertPointer(r, '/config/1/hostname');
      }
      for (const [h, shown] of [
        ['app.example.org', 'app.example.org'],
        ['badexample.com', 'badexample.com'],
        ['APP.Other-Zone.TEST.', 'app.other-zone.test'],
        ['a.sub.example.com', 'a.sub.example.com'],
        ['sub.example.com', 'sub.example.com'],
      ]) {
        const r = await put(s, [entry(h)]);
        assertError(r, 400, 1418, MSG.notInZone(shown));
        assertPointer(r, '/config/0/hostname');
      }
      // In one batch, zones looked up for earlier entries are remembered: a later entry under the nested zone is
      // still judged by its own most specific zone.
      const batch = await put(s, [entry('a.example.com'), entry('b.example.com'), entry('b.sub.example.com')]);
      assertError(batch, 400, 1418, MSG.notInZone('b.sub.example.com'));
      assertPointer(batch, '/config/2/hostname');
      const dup = await put(s, [entry('app.example.com'), entry('other.example.com'), entry('APP.Example.com.')]);
      assertError(dup, 400, 1419, MSG.duplicateHost('app.example.com'));
      assertPointer(dup, '/config/2/hostname');
      const dupIdn = await put(s, [entry('bücher.example.com'), entry('xn--bcher-kva.example.com')]);
      assertError(dupIdn, 400, 1419, MSG.duplicateHost('xn--bcher-kva.example.com'));

      // Nothing of the above was written.
      assert.deepEqual(await listAll(s), []);

      // Normalisation: case, trailing dot, IDN; the zone apex itself is a valid hostname.
      const items = await putOk(s, [entry('APP.Example.COM.'), entry('bücher.example.com'), entry('example.com'), entry('_svc.deep.below.example.com')]);
      assert.deepEqual(
        items.map((i) => i.hostname),
        ['app.example.com', 'xn--bcher-kva.example.com', 'example.com', '_svc.deep.below.example.com'],
      );
      assert.equal(assertOk(await call(s, 'GET', hostPath(s, 'bücher.example.com'))).hostname, 'xn--bcher-kva.example.com');
      assert.equal(assertOk(await call(s, 'GET', hostPath(s, 'App.EXAMPLE.com.'))).hostname, 'app.example.com');
    });
  });

  test('enabled must be true, false, null or absent → 1405', async () => {
    await withServer(async (s) => {
      const cert = await activeCert(s);
      for (const enabled of ['true', 1, 0, {}, [], 'null']) {
        const r = await put(s, [{ hostname: 'app.example.com', cert_id: cert.id, enabled }]);
        assertError(r, 400, 1405, MSG.enabledInvalid);
        assertPointer(r, '/config/0/enabled');
      }
      assert.deepEqual(await listAll(s), []);
    });
  });

  test('checks run entry by entry in order: the first bad field of the first bad entry is reported', async () => {
    await withServer(async (s) => {
      const cert = await activeCert(s);
      // cert_id before hostname before enabled within an entry.
      assertError(await put(s, [{ hostname: 'bad host', enabled: 'x' }]), 400, 1404, MSG.certIdRequired);
      assertError(await put(s, [{ cert_id: cert.id, hostname: 'bad host', enabled: 'x' }]), 400, 1417);
      assertError(await put(s, [{ cert_id: cert.id, hostname: 'x.example.org', enabled: 'x' }]), 400, 1418);
      // An earlier entry's shape error wins over a later one.
      const r = await put(s, [{ cert_id: cert.id, hostname: 'a.example.com', enabled: 7 }, {}]);
      assertError(r, 400, 1405, MSG.enabledInvalid);
      assertPointer(r, '/config/0/enabled');
    });
  });

  test('a read-only token can read but not write; a token for another zone cannot read', async () => {
    await withServer(async (s) => {
      const cert = await activeCert(s);
      await putOk(s, [{ hostname: 'app.example.com', cert_id: cert.id, enabled: true }]);
      const reader = await s.makeToken(['ssl:read'], [{ type: 'zone', id: s.zoneId }]);
      assert.equal(assertOk(await call(s, 'GET', certsPath(s), { token: reader })).length, 1);
      assert.equal(assertOk(await call(s, 'GET', certPath(s, cert.id), { token: reader })).id, cert.id);
      assert.equal(assertOk(await call(s, 'GET', `${hostsPath(s)}?status=all`, { token: reader })).length, 1);
      assert.equal(assertOk(await call(s, 'GET', hostPath(s, 'app.example.com'), { token: reader })).cert_id, cert.id);
      const leaf = await makeLeaf();
      const writes: [string, string, unknown][] = [
        ['POST', certsPath(s), { certificate: leaf.certPem, private_key: leaf.keyPem }],
        ['DELETE', certPath(s, cert.id), undefined],
        ['PUT', hostsPath(s), { config: [{ hostname: 'app.example.com', cert_id: cert.id, enabled: null }] }],
      ];
      for (const [method, path, body] of writes) {
        assertError(await call(s, method, path, { token: reader, body }), 403, 10000, 'Authentication error');
      }
      const other = await s.cp.services.tenancy.createZone({ name: 'elsewhere.test', accountId: s.accountId });
      const otherZoneToken = await s.makeToken(['ssl:read', 'ssl:write'], [{ type: 'zone', id: other.id }]);
      assertError(await call(s, 'GET', hostsPath(s), { token: otherZoneToken }), 403, 10000, 'Authentication error');
      assertError(await call(s, 'GET', certsPath(s), { token: null }), 400, 9106, 'Missing X-Auth-Key, X-Auth-Email or Authorization headers');
      // Still associated.
      assert.equal(assertOk(await call(s, 'GET', hostPath(s, 'app.example.com'))).enabled, true);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// PUT associations: semantics
// ---------------------------------------------------------------------------------------------------------------

describe('PUT hostnames: semantics', () => {
  test('enabled true → false → null: exact responses, statuses, timestamps and idempotent re-PUT', async () => {
    await withServer(async (s) => {
      const ca = await makeCA({ keyType: 'rsa2048', org: 'Pinned Org' });
      const leaf = await makeLeaf({ keyType: 'p256', issuer: ca, serial: '0123456789abcdef0123' });
      const cert = await upload(s, leaf);
      await s.settle();
      const certWire = { ...cert };
      const hostname = 'app.example.com';

      // enabled: true
      const t1 = now(s);
      const res = await put(s, [{ hostname, cert_id: cert.id, enabled: true }]);
      const expected1 = assocDetail(certWire, { hostname, enabled: true, status: 'pending_deployment', certStatus: 'active', createdAt: t1, updatedAt: t1, withId: true });
      assert.deepEqual(res.body, { success: true, errors: [], messages: [], result: [expected1] });
      assert.deepEqual(expected1.issuer, 'Pinned Org');
      assert.deepEqual(expected1.signature, 'SHA256WithRSA');
      assert.deepEqual(expected1.serial_number, '5373003642731685151011');
      const { id: _id, ...detail1 } = expected1;
      assert.deepEqual(assertOk(await call(s, 'GET', hostPath(s, hostname))), detail1);
      await s.settle();
      const active1 = { ...detail1, status: 'active' };
      assert.deepEqual(assertOk(await call(s, 'GET', hostPath(s, hostname))), active1);

      // Re-PUT of the same association: nothing changes, it stays active.
      const again = await putOk(s, [{ hostname: 'App.Example.com', cert_id: cert.id, enabled: true }]);
      assert.deepEqual(again, [{ id: cert.id, ...active1 }]);
      await s.settle();
      assert.deepEqual(assertOk(await call(s, 'GET', hostPath(s, hostname))), active1);

      // enabled: false keeps the pin (created_at kept), redeploys.
      const t2 = now(s);
      const [off] = await putOk(s, [{ hostname, cert_id: cert.id, enabled: false }]);
      assert.deepEqual(off, { id: cert.id, ...detail1, enabled: false, status: 'pending_deployment', updated_at: t2 });
      await s.settle();
      assert.deepEqual(assertOk(await call(s, 'GET', hostPath(s, hostname))), { ...detail1, enabled: false, status: 'active', updated_at: t2 });
      assert.deepEqual(await putOk(s, [{ hostname, cert_id: cert.id, enabled: false }]), [
        { id: cert.id, ...detail1, enabled: false, status: 'active', updated_at: t2 },
      ]);

      // enabled: null voids it: pending_deletion → deleted; GET still answers with the tombstone.
      const t3 = now(s);
      const [voided] = await putOk(s, [{ hostname, cert_id: cert.id, enabled: null }]);
      assert.deepEqual(voided, { id: cert.id, ...detail1, enabled: null, status: 'pending_deletion', updated_at: t3 });
      await s.settle();
      const tomb = { ...detail1, enabled: null, status: 'deleted', updated_at: t3 };
      assert.deepEqual(assertOk(await call(s, 'GET', hostPath(s, hostname))), tomb);
      // Voiding again changes nothing.
      assert.deepEqual(await putOk(s, [{ hostname, cert_id: cert.id, enabled: null }]), [{ id: cert.id, ...tomb }]);
      await s.settle();
      assert.deepEqual(assertOk(await call(s, 'GET', hostPath(s, hostname))), tomb);

      // Re-enabling after a void starts a new association (new created_at).
      const t4 = now(s);
      const [back] = await putOk(s, [{ hostname, cert_id: cert.id, enabled: true }]);
      assert.deepEqual(back, { id: cert.id, ...detail1, status: 'pending_deployment', created_at: t4, updated_at: t4 });
    });
  });

  test('voiding a hostname that was never associated (enabled null or absent) writes nothing', async () => {
    await withServer(async (s) => {
      const cert = await activeCert(s);
      const t = now(s);
      const items = await putOk(s, [
        { hostname: 'never.example.com', cert_id: cert.id, enabled: null },
        { hostname: 'absent.example.com', cert_id: cert.id },
      ]);
      assert.equal(items.length, 2);
      for (const [i, h] of ['never.example.com', 'absent.example.com'].entries()) {
        assert.deepEqual(items[i], assocDetail(cert, { hostname: h, enabled: null, status: 'deleted', certStatus: 'active', createdAt: t, updatedAt: t, withId: true }));
        assertError(await call(s, 'GET', hostPath(s, h)), 404, 1553, MSG.assocNotFound);
      }
      assert.deepEqual(await listAll(s), []);
      // Absent `enabled` also voids an existing association.
      await putOk(s, [{ hostname: 'app.example.com', cert_id: cert.id, enabled: true }]);
      await s.settle();
      const [v] = await putOk(s, [{ hostname: 'app.example.com', cert_id: cert.id }]);
      assert.equal(v.enabled, null);
      assert.equal(v.status, 'pending_deletion');
    });
  });

  test('a batch upserts by hostname, leaves other hostnames alone and may use several certificates', async () => {
    await withServer(async (s) => {
      const a = await activeCert(s);
      const leafB = await makeLeaf({ keyType: 'ed25519' });
      const b = await upload(s, leafB); // still initializing: it can be associated already
      await putOk(s, [{ hostname: 'keep.example.com', cert_id: a.id, enabled: true }]);
      const t = now(s);
      const items = await putOk(s, [
        { hostname: 'one.example.com', cert_id: a.id, enabled: true },
        { hostname: 'two.example.com', cert_id: b.id, enabled: false },
      ]);
      assert.deepEqual(items, [
        assocDetail(a, { hostname: 'one.example.com', enabled: true, status: 'pending_deployment', certStatus: 'active', createdAt: t, updatedAt: t, withId: true }),
        assocDetail(b, { hostname: 'two.example.com', enabled: false, status: 'pending_deployment', certStatus: 'initializing', createdAt: t, updatedAt: t, withId: true }),
      ]);
      await s.settle();
      assert.deepEqual(
        (await listAll(s)).map((i) => [i.hostname, i.cert_id, i.enabled, i.status]),
        [
          ['keep.example.com', a.id, true, 'active'],
          ['one.example.com', a.id, true, 'active'],
          ['two.example.com', b.id, false, 'active'],
        ],
      );
      assert.equal(assertOk(await call(s, 'GET', hostPath(s, 'two.example.com'))).cert_status, 'active');
    });
  });

  test('atomicity: a batch with one bad entry at the end writes nothing', async () => {
    await withServer(async (s) => {
      const cert = await activeCert(s);
      await s.cp.services.tenancy.createZone({ name: 'nested.example.com', accountId: s.accountId });
      await putOk(s, [{ hostname: 'existing.example.com', cert_id: cert.id, enabled: true }]);
      await s.settle();
      const good = [
        { hostname: 'g1.example.com', cert_id: cert.id, enabled: true },
        { hostname: 'existing.example.com', cert_id: cert.id, enabled: null },
        { hostname: 'g2.example.com', cert_id: cert.id, enabled: false },
      ];
      const bad: [unknown, number, string][] = [
        [{ hostname: 'bad host', cert_id: cert.id, enabled: true }, 1417, 'Invalid hostname: hostname contains invalid characters'],
        [{ hostname: 'g3.example.com', cert_id: UNKNOWN_ID, enabled: true }, 1415, MSG.certIdInvalid],
        [{ hostname: 'x.nested.example.com', cert_id: cert.id, enabled: true }, 1418, MSG.notInZone('x.nested.example.com')],
        [{ hostname: 'g1.example.com', cert_id: cert.id, enabled: true }, 1419, MSG.duplicateHost('g1.example.com')],
        [{ hostname: 'g3.example.com', cert_id: cert.id, enabled: 'yes' }, 1405, MSG.enabledInvalid],
        [{ hostname: 'g3.example.com' }, 1404, MSG.certIdRequired],
      ];
      const before = await listAll(s);
      assert.equal(before.length, 1);
      for (const [entry, code, message] of bad) {
        const r = await put(s, [...good, entry]);
        assertError(r, 400, code, message);
        assertPointer(r, code === 1404 ? '/config/3/cert_id' : code === 1405 ? '/config/3/enabled' : code === 1415 ? '/config/3/cert_id' : '/config/3/hostname');
        assert.deepEqual(await listAll(s), before);
        assertError(await call(s, 'GET', hostPath(s, 'g1.example.com')), 404, 1553, MSG.assocNotFound);
        assert.equal(assertOk(await call(s, 'GET', hostPath(s, 'existing.example.com'))).enabled, true);
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// association limits
// ---------------------------------------------------------------------------------------------------------------

describe('associations per certificate', () => {
  test('configured limit 3: the 4th → 1416; batches count as a whole; false counts; voids and moves free slots', async () => {
    await withServer(
      async (s) => {
        const a = await activeCert(s);
        const b = await activeCert(s);
        const e = (h: string, cert = a.id, enabled: boolean | null = true) => ({ hostname: `${h}.example.com`, cert_id: cert, enabled });

        // A batch of 4 on one certificate is refused as a whole.
        assertError(await put(s, [e('h1'), e('h2'), e('h3'), e('h4')]), 400, 1416, MSG.assocLimit(3));
        assert.deepEqual(await listAll(s), []);

        await putOk(s, [e('h1'), e('h2', a.id, false), e('h3')]);
        assertError(await put(s, [e('h4')]), 400, 1416, MSG.assocLimit(3));
        await s.settle();
        assertError(await put(s, [e('h4', a.id, false)]), 400, 1416, MSG.assocLimit(3));
        // Re-PUT of existing associations at the limit is fine; so is switching true ↔ false.
        await putOk(s, [e('h1'), e('h2', a.id, true), e('h3', a.id, false)]);
        // Another certificate has its own budget.
        await putOk(s, [e('h4', b.id), e('h5', b.id), e('h6', b.id)]);
        // Void one and add one in the same batch.
        const items = await putOk(s, [e('h7'), e('h1', a.id, null)]);
        assert.deepEqual(items.map((i) => [i.hostname, i.status]), [['h7.example.com', 'pending_deployment'], ['h1.example.com', 'pending_deletion']]);
        assertError(await put(s, [e('h8')]), 400, 1416, MSG.assocLimit(3));
        // Moving a hostname from a to b: b is full → refused; moving one of b's away frees a slot on b.
        assertError(await put(s, [e('h2', b.id)]), 400, 1416, MSG.assocLimit(3));
        await putOk(s, [e('h4', a.id, null), e('h2', b.id)]);
        await putOk(s, [e('h8')]);
        assertError(await put(s, [e('h9')]), 400, 1416, MSG.assocLimit(3));

        await s.settle();
        const live = (await listAll(s)).filter((i) => i.enabled !== null).map((i) => [i.hostname, i.cert_id === a.id ? 'a' : 'b']);
        assert.deepEqual(live, [
          ['h2.example.com', 'b'],
          ['h3.example.com', 'a'],
          ['h5.example.com', 'b'],
          ['h6.example.com', 'b'],
          ['h7.example.com', 'a'],
          ['h8.example.com', 'a'],
        ]);
      },
      { CERTPLANE_LIMIT_ASSOCIATIONS_PER_CERTIFICATE: '3' },
    );
  });

  test('default limit: 100 associations on one certificate are accepted, the 101st → 1416', async () => {
    await withServer(async (s) => {
      const cert = await activeCert(s);
      const config = Array.from({ length: 100 }, (_, i) => ({ hostname: `h${String(i).padStart(3, '0')}.example.com`, cert_id: cert.id, enabled: true }));
      const items = await putOk(s, config);
      assert.equal(items.length, 100);
      assert.ok(items.every((i) => i.status === 'pending_deployment' && i.cert_id === cert.id));
      const r = await put(s, [{ hostname: 'h100.example.com', cert_id: cert.id, enabled: true }]);
      assertError(r, 400, 1416, MSG.assocLimit(100));
      const all101 = [...config, { hostname: 'h100.example.com', cert_id: cert.id, enabled: true }];
      assertError(await put(s, all101), 400, 1416, MSG.assocLimit(100));
      await s.settle();
      const page = await call(s, 'GET', `${hostsPath(s)}?per_page=1000`);
      assert.equal(page.body.result.length, 100);
      assert.deepEqual(page.body.result_info, { page: 1, per_page: 1000, count: 100, total_count: 100, total_pages: 1 });
      assertError(await call(s, 'GET', hostPath(s, 'h100.example.com')), 404, 1553, MSG.assocNotFound);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// GET hostnames (list) and GET hostnames/{hostname}
// ---------------------------------------------------------------------------------------------------------------

describe('GET hostnames', () => {
  test('status filter (default active, comma lists, all), paging and result_info', async () => {
    await withServer(async (s) => {
      const cert = await activeCert(s);
      const e = (h: string, enabled: boolean | null) => ({ hostname: `${h}.example.com`, cert_id: cert.id, enabled });
      const t1 = now(s);
      await putOk(s, [e('a', true), e('b', true), e('c', true), e('d', false), e('e', true)]);
      await s.settle();
      const tE = now(s);
      await putOk(s, [e('e', null)]);
      await s.settle();
      const t3 = now(s);
      await putOk(s, [e('f', true), e('d', null), e('never', null)]);

      const item = (h: string, enabled: boolean | null, status: string, createdAt: string, updatedAt: string) => ({
        cert_id: cert.id,
        created_at: createdAt,
        enabled,
        hostname: `${h}.example.com`,
        status,
        updated_at: updatedAt,
      });
      const A = item('a', true, 'active', t1, t1);
      const B = item('b', true, 'active', t1, t1);
      const C = item('c', true, 'active', t1, t1);
      const D = item('d', null, 'pending_deletion', t1, t3);
      const E = item('e', null, 'deleted', t1, tE);
      const F = item('f', true, 'pending_deployment', t3, t3);

      const list = async (q: string) => (await call(s, 'GET', `${hostsPath(s)}${q}`)).body;
      const info = expectedResultInfo;

      assert.deepEqual(await list(''), { success: true, errors: [], messages: [], result: [A, B, C], result_info: info(1, 50, 3, 3) });
      assert.deepEqual((await list('?status=')).result, [A, B, C]);
      assert.deepEqual((await list('?status=active')).result, [A, B, C]);
      assert.deepEqual(await list('?status=all'), { success: true, errors: [], messages: [], result: [A, B, C, D, E, F], result_info: info(1, 50, 6, 6) });
      assert.deepEqual((await list('?status=all,active')).result, [A, B, C, D, E, F]);
      assert.deepEqual((await list('?status=pending_deployment,pending_deletion')).result, [D, F]);
      assert.deepEqual((await list('?status=deleted')).result, [E]);
      assert.deepEqual((await list('?status=active,deleted,active')).result, [A, B, C, E]);
      assert.deepEqual((await list('?status=Active,%20DELETED')).result, [A, B, C, E]);
      assert.deepEqual(await list('?status=deployment_timed_out,deletion_timed_out'), { success: true, errors: [], messages: [], result: [], result_info: info(1, 50, 0, 0) });

      // Paging.
      assert.deepEqual(await list('?status=all&per_page=2'), { success: true, errors: [], messages: [], result: [A, B], result_info: info(1, 2, 2, 6) });
      assert.deepEqual((await list('?status=all&per_page=2&page=2')).result_info, info(2, 2, 2, 6));
      assert.deepEqual((await list('?status=all&per_page=2&page=2')).result, [C, D]);
      assert.deepEqual(await list('?status=all&per_page=4&page=2'), { success: true, errors: [], messages: [], result: [E, F], result_info: info(2, 4, 2, 6) });
      // Past the end: an empty page with the true totals.
      assert.deepEqual(await list('?status=all&per_page=2&page=4'), { success: true, errors: [], messages: [], result: [], result_info: info(4, 2, 0, 6) });
      assert.deepEqual(await list('?page=2'), { success: true, errors: [], messages: [], result: [], result_info: info(2, 50, 0, 3) });
      assert.deepEqual((await list('?per_page=1000&page=1')).result_info, info(1, 1000, 3, 3));
      assert.deepEqual((await list('?per_page=1&page=3')).result, [C]);

      // Once everything settles the statuses move on.
      await s.settle();
      assert.deepEqual((await list('')).result, [A, B, C, { ...F, status: 'active' }]);
      assert.deepEqual((await list('?status=deleted')).result, [{ ...D, status: 'deleted' }, E]);
    });
  });

  test('query errors → 1001 with a clear message', async () => {
    await withServer(async (s) => {
      const cases: [string, string][] = [
        ['?status=bogus', MSG.statusFilter],
        ['?status=initializing', MSG.statusFilter],
        ['?status=active,nope', MSG.statusFilter],
        ['?status=active,', MSG.statusFilter],
        ['?page=0', 'Invalid request: page must be between 1 and 1000000'],
        ['?page=-1', 'Invalid request: page must be a whole number'],
        ['?page=abc', 'Invalid request: page must be a whole number'],
        ['?page=1.5', 'Invalid request: page must be a whole number'],
        ['?per_page=0', 'Invalid request: per_page must be between 1 and 1000'],
        ['?per_page=1001', 'Invalid request: per_page must be between 1 and 1000'],
        ['?page=1&page=2', 'Invalid request: query parameter page must be given once'],
        ['?status=active&status=deleted', 'Invalid request: query parameter status must be given once'],
      ];
      for (const [q, message] of cases) assertError(await call(s, 'GET', `${hostsPath(s)}${q}`), 400, 1001, message);
    });
  });

  test('deployment_timed_out is listed under its own status', async () => {
    await withServer(
      async (s) => {
        const cert = await upload(s, await makeLeaf());
        await putOk(s, [{ hostname: 'slow.example.com', cert_id: cert.id, enabled: true }]);
        await s.settle(60_000);
        assert.equal(assertOk(await call(s, 'GET', certPath(s, cert.id))).status, 'deployment_timed_out');
        const body = (await call(s, 'GET', `${hostsPath(s)}?status=deployment_timed_out`)).body;
        assert.deepEqual(
          body.result.map((i: any) => [i.hostname, i.status]),
          [['slow.example.com', 'deployment_timed_out']],
        );
        assert.deepEqual((await call(s, 'GET', hostsPath(s))).body.result, []);
        const detail = assertOk(await call(s, 'GET', hostPath(s, 'slow.example.com')));
        assert.equal(detail.status, 'deployment_timed_out');
        assert.equal(detail.cert_status, 'deployment_timed_out');
        // Repeating the same PUT retries a timed-out association.
        const [retried] = await putOk(s, [{ hostname: 'slow.example.com', cert_id: cert.id, enabled: true }]);
        assert.equal(retried.status, 'pending_deployment');
        assert.equal(retried.updated_at, now(s));
        assert.equal(retried.created_at, T0);
      },
      { CERTPLANE_DEPLOY_DELAY_MS: '600000', CERTPLANE_DEPLOY_TIMEOUT_MS: '60000' },
    );
  });

  test('GET hostnames/{hostname}: unknown → 404 1553, invalid → 1417, another zone → 1553, case/trailing dot normalised', async () => {
    await withServer(async (s) => {
      assertError(await call(s, 'GET', hostPath(s, 'nothing.example.com')), 404, 1553, MSG.assocNotFound);
      assertError(await call(s, 'GET', hostPath(s, 'a..example.com')), 400, 1417, 'Invalid hostname: hostname has an empty label');
      assertError(await call(s, 'GET', hostPath(s, '*.example.com')), 400, 1417, 'Invalid hostname: hostname contains a wildcard that is not allowed here');

      const cert = await activeCert(s);
      const other = await s.cp.services.tenancy.createZone({ name: 'example.dev', accountId: s.accountId });
      const otherCert = await upload(s, await makeLeaf(), { zoneId: other.id });
      assertOk(
        await call(s, 'PUT', `/zones/${other.id}/origin_tls_client_auth/hostnames`, {
          body: { config: [{ hostname: 'app.example.dev', cert_id: otherCert.id, enabled: true }] },
        }),
      );
      assertError(await call(s, 'GET', hostPath(s, 'app.example.dev')), 404, 1553, MSG.assocNotFound);
      assert.equal(
        assertOk(await call(s, 'GET', `/zones/${other.id}/origin_tls_client_auth/hostnames/app.example.dev`)).cert_id,
        otherCert.id,
      );
      // The other zone's association is not listed here.
      assert.deepEqual(await listAll(s), []);

      await putOk(s, [{ hostname: 'app.example.com', cert_id: cert.id, enabled: true }]);
      for (const h of ['app.example.com', 'APP.example.COM', 'app.example.com.']) {
        const d = assertOk(await call(s, 'GET', hostPath(s, h)));
        assert.equal(d.hostname, 'app.example.com');
        assert.equal(d.cert_id, cert.id);
        assert.equal('id' in d, false);
      }
    });
  });
});

test('no response of this file ever carried a private key', () => {
  // `call` asserts on every response; make sure it actually saw traffic.
  assert.ok(responsesScanned > 300, `only ${responsesScanned} responses scanned`);
});

/**
 * End to end with Cloudflare's official TypeScript SDK (`cloudflare` v7) against a real certplane process
 * (`node dist/src/cli/index.js serve`) on 127.0.0.1: both features' whole workflows, both authentication schemes,
 * polling until deployments are `active`, the SDK's typed errors, and auto-pagination. Every response the SDK
 * receives goes through a fetch wrapper that checks it against Cloudflare's OpenAPI schema.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import Cloudflare from 'cloudflare';
import { V4PagePaginationArray } from 'cloudflare/core/pagination';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import { checkingFetch, pollUntil, startProcess, type BannerCredentials, type CheckingFetch, type ServerProcess } from './helpers/process.js';

let server: ServerProcess;
let creds: BannerCredentials;
let wire: CheckingFetch;
/** Bearer token client. */
let cf: Cloudflare;
/** X-Auth-Email + X-Auth-Key client. */
let cfKey: Cloudflare;
let ca: Issued;

function client(auth: { apiToken?: string; apiEmail?: string; apiKey?: string }, fetchImpl = wire.fetch): Cloudflare {
  return new Cloudflare({
    apiToken: auth.apiToken ?? null,
    apiEmail: auth.apiEmail ?? null,
    apiKey: auth.apiKey ?? null,
    userServiceKey: null,
    baseURL: server.baseUrl,
    maxRetries: 0,
    timeout: 15_000,
    fetch: fetchImpl,
  });
}

/** Awaits `p`, expecting the SDK to throw `cls` with this status and exactly one error with this code and message. */
async function expectSdkError(
  p: Promise<unknown>,
  cls: new (...args: any[]) => InstanceType<typeof Cloudflare.APIError>,
  status: number,
  code: number,
  message: string,
): Promise<InstanceType<typeof Cloudflare.APIError>> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught, `expected ${cls.name}, but the call succeeded`);
  assert.ok(caught instanceof cls, `expected ${cls.name}, got ${(caught as Error)?.constructor?.name}: ${(caught as Error)?.message}`);
  const err = caught as InstanceType<typeof Cloudflare.APIError>;
  assert.equal(err.status, status);
  assert.deepEqual(
    err.errors.map((e) => ({ code: e.code, message: e.message })),
    [{ code, message }],
  );
  const body = err.error as { success: boolean; result: unknown; messages: unknown[] };
  assert.equal(body.success, false);
  assert.equal(body.result, null);
  assert.deepEqual(body.messages, []);
  return err;
}

const decimalSerial = (c: Issued): string => BigInt(`0x${c.serialHex}`).toString(10);
const iso = (d: Date): string => d.toISOString();

before(async () => {
  wire = checkingFetch();
  server = await startProcess({
    env: {
      CERTPLANE_DEPLOY_DELAY_MS: '200',
      CERTPLANE_DELETE_DELAY_MS: '200',
      CERTPLANE_DEPLOYER_INTERVAL_MS: '50',
    },
  });
  assert.ok(server.banner, 'a fresh data directory prints the bootstrap banner');
  creds = server.banner;
  assert.equal(creds.zoneName, 'example.com');
  cf = client({ apiToken: creds.token });
  cfKey = client({ apiEmail: creds.email, apiKey: creds.apiKey });
  ca = await makeCA({ keyType: 'p256', cn: 'E2E Origin Pull CA', org: 'Certplane E2E CA' });
});

after(async () => {
  if (server) {
    await server.stop();
    rmSync(server.dir, { recursive: true, force: true });
  }
});

afterEach(() => {
  const problems = wire.problems.splice(0);
  assert.deepEqual(problems, [], 'every response matches Cloudflare\'s schema');
});

describe('supporting routes through the SDK', () => {
  test('user.tokens.verify() with the bootstrap token', async () => {
    const v = await cf.user.tokens.verify();
    assert.equal(v.status, 'active');
    assert.match(v.id, /^[0-9a-f]{32}$/);
    const last = wire.log.at(-1)!;
    assert.deepEqual(last.body.messages, [{ code: 10000, message: 'This API Token is valid and active', type: null }]);
  });

  test('user.tokens.verify() with the global key is not a token: AuthenticationError 401 / 1000', async () => {
    await expectSdkError(cfKey.user.tokens.verify(), Cloudflare.AuthenticationError, 401, 1000, 'Invalid API Token');
  });

  test('zones.list({ name }) finds the bootstrap zone with either scheme; an unknown name finds nothing', async () => {
    for (const c of [cf, cfKey]) {
      const zones = [];
      for await (const z of c.zones.list({ name: 'example.com' })) zones.push(z);
      assert.equal(zones.length, 1);
      assert.equal(zones[0].id, creds.zoneId);
      assert.equal(zones[0].name, 'example.com');
      assert.equal(zones[0].account.id, creds.accountId);
      const none = [];
      for await (const z of c.zones.list({ name: 'not-a-zone-here.example' })) none.push(z);
      assert.deepEqual(none, []);
    }
  });
});

describe('Authenticated Origin Pulls through the SDK', () => {
  test('per-hostname workflow (token): upload, wait active, associate, wait active, read, void, delete', async () => {
    const rsaCa = await makeCA({ keyType: 'rsa2048', cn: 'E2E RSA CA', org: 'Certplane E2E RSA CA' });
    const leaf = await makeLeaf({ keyType: 'rsa2048', issuer: rsaCa, cn: 'app.example.com' });
    const zone_id = creds.zoneId;
    const aop = cf.originTLSClientAuth;

    const created = await aop.hostnameCertificates.create({ zone_id, certificate: leaf.certPem, private_key: leaf.keyPem });
    assert.match(created.id!, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(created.status, 'initializing');
    assert.equal(created.certificate, leaf.certPem);
    assert.equal(created.issuer, 'Certplane E2E RSA CA');
    assert.equal(created.signature, 'SHA256WithRSA');
    assert.equal(created.serial_number, decimalSerial(leaf));
    assert.equal(created.expires_on, iso(leaf.notAfter));
    assert.equal((created as Record<string, unknown>).private_key, undefined, 'the private key is never returned');
    const certId = created.id!;

    const active = await pollUntil(
      'hostname certificate active',
      () => aop.hostnameCertificates.get(certId, { zone_id }),
      (c) => c.status === 'active',
    );
    assert.deepEqual({ ...active, status: created.status }, created, 'only the status changed');

    const listed = [];
    for await (const c of aop.hostnameCertificates.list({ zone_id })) listed.push(c);
    assert.deepEqual(
      listed.filter((c) => c.id === certId),
      [active],
    );

    // Associate (PUT /hostnames answers an array; the SDK gives a SinglePage).
    const put = await aop.hostnames.update({ zone_id, config: [{ hostname: 'app.example.com', cert_id: certId, enabled: true }] });
    assert.equal(put.result.length, 1);
    const entry = put.result[0];
    assert.equal(entry.hostname, 'app.example.com');
    assert.equal(entry.cert_id, certId);
    assert.equal(entry.id, certId);
    assert.equal(entry.enabled, true);
    assert.equal(entry.status, 'pending_deployment');
    assert.equal(entry.cert_status, 'active');
    assert.equal(entry.certificate, leaf.certPem);
    assert.equal(entry.private_key, undefined);

    const assoc = await pollUntil(
      'association active',
      () => aop.hostnames.get('app.example.com', { zone_id }),
      (a) => a.status === 'active',
    );
    assert.equal(assoc.hostname, 'app.example.com');
    assert.equal(assoc.cert_id, certId);
    assert.equal(assoc.enabled, true);
    assert.equal(assoc.cert_status, 'active');
    assert.equal(assoc.certificate, leaf.certPem);
    assert.equal(assoc.issuer, 'Certplane E2E RSA CA');
    assert.equal(assoc.serial_number, decimalSerial(leaf));
    assert.equal(assoc.signature, 'SHA256WithRSA');
    assert.equal(assoc.expires_on, iso(leaf.notAfter));
    assert.equal(assoc.cert_uploaded_on, created.uploaded_on);
    assert.equal(assoc.created_at, entry.created_at);

    // Hostnames are case-insensitive: the SDK passes the path segment through.
    const upper = await aop.hostnames.get('APP.Example.COM', { zone_id });
    assert.deepEqual(upper, assoc);

    // The same association read with the global key.
    assert.deepEqual(await cfKey.originTLSClientAuth.hostnames.get('app.example.com', { zone_id }), assoc);

    // A certificate in use cannot be deleted.
    await expectSdkError(
      aop.hostnameCertificates.delete(certId, { zone_id }),
      Cloudflare.BadRequestError,
      400,
      1433,
      'This certificate is in use by one or more hostnames; set enabled to null for each association first',
    );

    // Void the association (cert_id still required), then delete the certificate.
    const voided = await aop.hostnames.update({ zone_id, config: [{ hostname: 'app.example.com', cert_id: certId, enabled: null }] });
    assert.equal(voided.result.length, 1);
    assert.equal(voided.result[0].enabled, null);
    assert.equal(voided.result[0].status, 'pending_deletion');

    const deleting = await aop.hostnameCertificates.delete(certId, { zone_id });
    assert.equal(deleting.id, certId);
    assert.equal(deleting.status, 'pending_deletion');
    // (A second DELETE while still pending_deletion is not checked here: with 200 ms deletions, catching that
    // window would depend on timing. The already-deleted case below is deterministic.)
    const gone = await pollUntil(
      'hostname certificate deleted',
      () => aop.hostnameCertificates.get(certId, { zone_id }),
      (c) => c.status === 'deleted',
    );
    assert.equal(gone.id, certId, 'a deleted certificate stays readable by id');
    const assocGone = await pollUntil(
      'association deleted',
      () => aop.hostnames.get('app.example.com', { zone_id }),
      (a) => a.status === 'deleted',
    );
    assert.equal(assocGone.enabled, null);
    await expectSdkError(
      aop.hostnameCertificates.delete(certId, { zone_id }),
      Cloudflare.BadRequestError,
      400,
      1414,
      'Certificate is already deleted.',
    );
  });

  test('zone-level workflow (global key): setting, upload, wait active, enable, list, get, delete', async () => {
    const leaf = await makeLeaf({ keyType: 'p256', issuer: ca, cn: 'zone-level client' });
    const zone_id = creds.zoneId;
    const aop = cfKey.originTLSClientAuth;

    assert.deepEqual(await aop.settings.get({ zone_id }), { enabled: false });
    // Cloudflare answers `result: null` for a zone without zone-level certificates; the SDK shows an empty page.
    const empty = await aop.zoneCertificates.list({ zone_id });
    assert.deepEqual(empty.getPaginatedItems(), []);
    assert.equal(wire.log.at(-1)!.body.result, null);

    const created = await aop.zoneCertificates.create({ zone_id, certificate: leaf.certPem, private_key: leaf.keyPem });
    assert.equal(created.status, 'initializing');
    assert.equal(created.certificate, leaf.certPem);
    assert.equal(created.signature, 'ECDSAWithSHA256');
    assert.equal(created.issuer, 'Certplane E2E CA');
    assert.equal(created.private_key, undefined);
    const certId = created.id!;

    // Duplicate upload: 1406.
    await expectSdkError(
      aop.zoneCertificates.create({ zone_id, certificate: leaf.certPem, private_key: leaf.keyPem }),
      Cloudflare.BadRequestError,
      400,
      1406,
      'This certificate already exists for this zone.',
    );

    const active = await pollUntil(
      'zone certificate active',
      () => aop.zoneCertificates.get(certId, { zone_id }),
      (c) => c.status === 'active',
    );
    assert.equal(active.id, certId);

    assert.deepEqual(await aop.settings.update({ zone_id, enabled: true }), { enabled: true });
    assert.deepEqual(await cf.originTLSClientAuth.settings.get({ zone_id }), { enabled: true });

    const listed = [];
    for await (const c of aop.zoneCertificates.list({ zone_id })) listed.push(c);
    assert.deepEqual(listed, [active]);

    // A zone-level certificate id is not a hostname certificate: 1415 (observed, cloudflare-terraform #5531).
    await expectSdkError(
      aop.hostnames.update({ zone_id, config: [{ hostname: 'zone.example.com', cert_id: certId, enabled: true }] }),
      Cloudflare.BadRequestError,
      400,
      1415,
      'Certificate ID in request is either invalid or the certificate has been deleted',
    );

    const deleting = await aop.zoneCertificates.delete(certId, { zone_id });
    assert.equal(deleting.status, 'pending_deletion');
    await pollUntil(
      'zone certificate deleted',
      () => aop.zoneCertificates.get(certId, { zone_id }),
      (c) => c.status === 'deleted',
    );
    assert.deepEqual(await aop.settings.update({ zone_id, enabled: false }), { enabled: false });
    await expectSdkError(
      aop.zoneCertificates.get('00000000-0000-4000-8000-000000000000', { zone_id }),
      Cloudflare.NotFoundError,
      404,
      1552,
      'Certificate not found',
    );
  });

  test('auto-pagination over the association list: more than per_page associations, iteration ends on an empty page', async () => {
    const leaf = await makeLeaf({ keyType: 'p256', issuer: ca, cn: 'paged client' });
    const zone_id = creds.zoneId;
    const aop = cf.originTLSClientAuth;
    const cert = await aop.hostnameCertificates.create({ zone_id, certificate: leaf.certPem, private_key: leaf.keyPem });
    await pollUntil('certificate active', () => aop.hostnameCertificates.get(cert.id!, { zone_id }), (c) => c.status === 'active');

    const hostnames = Array.from({ length: 25 }, (_, i) => `page-${String(i).padStart(2, '0')}.example.com`);
    const put = await aop.hostnames.update({
      zone_id,
      config: hostnames.map((hostname) => ({ hostname, cert_id: cert.id, enabled: true })),
    });
    assert.deepEqual(
      put.result.map((r) => r.hostname),
      hostnames,
    );
    for (const h of hostnames) {
      await pollUntil(`association ${h} active`, () => aop.hostnames.get(h, { zone_id }), (a) => a.status === 'active');
    }

    // SDK v7.3 has no method for GET /hostnames (a newer route); its generic list helper with the SDK's own
    // V4PagePaginationArray is what a generated method would use.
    const path = `/zones/${zone_id}/origin_tls_client_auth/hostnames`;
    const before = wire.log.length;
    const seen: string[] = [];
    for await (const a of cf.getAPIList<{ hostname: string; cert_id: string; status: string; enabled: boolean }, V4PagePaginationArray<any>>(
      path,
      V4PagePaginationArray,
      { query: { per_page: 10 } },
    )) {
      assert.equal(a.cert_id, cert.id);
      assert.equal(a.status, 'active');
      assert.equal(a.enabled, true);
      seen.push(a.hostname);
    }
    assert.deepEqual(seen, hostnames, 'every association once, in hostname order');
    const pages = wire.log.slice(before);
    assert.deepEqual(
      pages.map((p) => [p.url, p.status, p.body.result.length]),
      [
        [`/client/v4${path}?per_page=10`, 200, 10],
        [`/client/v4${path}?per_page=10&page=2`, 200, 10],
        [`/client/v4${path}?per_page=10&page=3`, 200, 5],
        [`/client/v4${path}?per_page=10&page=4`, 200, 0],
      ],
    );
    assert.deepEqual(pages[0].body.result_info, { page: 1, per_page: 10, count: 10, total_count: 25, total_pages: 3 });
    assert.deepEqual(pages[3].body.result_info, { page: 4, per_page: 10, count: 0, total_count: 25, total_pages: 3 });
  });

  test('a PUT with an empty config entry raises BadRequestError 400 / 1404 "Certificate ID required"', async () => {
    const err = await expectSdkError(
      cf.originTLSClientAuth.hostnames.update({ zone_id: creds.zoneId, config: [{}] }),
      Cloudflare.BadRequestError,
      400,
      1404,
      'Certificate ID required',
    );
    assert.equal((err.error as { errors: { code: number }[] }).errors[0].code, 1404, 'the code is in the error body');
    assert.match(err.message, /^400 /);
  });

  test('GET of a hostname never associated raises NotFoundError 404 / 1553', async () => {
    await expectSdkError(
      cf.originTLSClientAuth.hostnames.get('never.example.com', { zone_id: creds.zoneId }),
      Cloudflare.NotFoundError,
      404,
      1553,
      'Authenticated Origin Pulls setting for this hostname not found',
    );
  });
});

describe('Access mTLS through the SDK', () => {
  test('account-scoped workflow (token): create, get, update, list, settings, delete', async () => {
    const root = await makeCA({ keyType: 'p256', cn: 'Access Root', org: 'Certplane Access Root' });
    const certs = cf.zeroTrust.access.certificates;
    const account_id = creds.accountId;

    const created = await certs.create({
      account_id,
      name: 'e2e root',
      certificate: root.certPem,
      associated_hostnames: ['admin.example.com'],
    });
    assert.match(created.id!, /^[0-9a-f-]{36}$/);
    assert.equal(created.name, 'e2e root');
    assert.deepEqual(created.associated_hostnames, ['admin.example.com']);
    assert.equal(created.expires_on, iso(root.notAfter));
    assert.match(created.fingerprint!, /^MD5 Fingerprint=([0-9A-F]{2}:){15}[0-9A-F]{2}$/);
    assert.equal((created as Record<string, unknown>).certificate, undefined, 'the PEM is not echoed');
    const id = created.id!;

    assert.deepEqual(await certs.get(id, { account_id }), created);
    // The global key sees the same certificate.
    assert.deepEqual(await cfKey.zeroTrust.access.certificates.get(id, { account_id }), created);

    const updated = await certs.update(id, { account_id, name: 'e2e root renamed', associated_hostnames: ['admin.example.com', 'ops.example.com'] });
    assert.equal(updated.id, id);
    assert.equal(updated.name, 'e2e root renamed');
    assert.deepEqual(updated.associated_hostnames, ['admin.example.com', 'ops.example.com']);
    assert.equal(updated.fingerprint, created.fingerprint);

    const listed = [];
    for await (const c of certs.list({ account_id })) listed.push(c);
    assert.deepEqual(
      listed.filter((c) => c.id === id),
      [updated],
    );

    // Hostnames outside the account's zones are refused.
    await expectSdkError(
      certs.create({ account_id, name: 'bad', certificate: (await makeCA({ keyType: 'p256' })).certPem, associated_hostnames: ['admin.other-domain.test'] }),
      Cloudflare.BadRequestError,
      400,
      12036,
      'access.api.error.hostnames_must_belong_to_your_domain: admin.other-domain.test',
    );

    // Settings: PUT answers 202 with the settings; GET lists them.
    const settings = [{ hostname: 'admin.example.com', china_network: false, client_certificate_forwarding: true }];
    const put = await certs.settings.update({ account_id, settings });
    assert.deepEqual(put.result, [{ china_network: false, client_certificate_forwarding: true, hostname: 'admin.example.com' }]);
    assert.equal(wire.log.at(-1)!.status, 202);
    const got = [];
    for await (const s of certs.settings.get({ account_id })) got.push(s);
    assert.deepEqual(got, [{ china_network: false, client_certificate_forwarding: true, hostname: 'admin.example.com' }]);

    // Deleting needs the hostnames removed first.
    await expectSdkError(
      certs.delete(id, { account_id }),
      Cloudflare.BadRequestError,
      400,
      12130,
      'access.api.error.invalid_request: certificate has associated hostnames; remove them before deleting the certificate',
    );
    const cleared = await certs.update(id, { account_id, associated_hostnames: [] });
    assert.deepEqual(cleared.associated_hostnames, []);
    assert.equal(cleared.name, 'e2e root renamed');
    assert.deepEqual(await certs.delete(id, { account_id }), { id });

    await expectSdkError(
      certs.get(id, { account_id }),
      Cloudflare.NotFoundError,
      404,
      12135,
      'access.api.error.not_found: certificate not found',
    );
  });

  test('zone-scoped workflow (global key): create, settings on the zone, list, delete; the account does not see it', async () => {
    const root = await makeCA({ keyType: 'p384', cn: 'Zone Access Root', org: 'Certplane Zone Root' });
    const certs = cfKey.zeroTrust.access.certificates;
    const zone_id = creds.zoneId;

    const created = await certs.create({ zone_id, name: 'zone root', certificate: root.certPem, associated_hostnames: ['vpn.example.com'] });
    assert.deepEqual(created.associated_hostnames, ['vpn.example.com']);
    assert.deepEqual(await certs.get(created.id!, { zone_id }), created);
    await expectSdkError(
      certs.get(created.id!, { account_id: creds.accountId }),
      Cloudflare.NotFoundError,
      404,
      12135,
      'access.api.error.not_found: certificate not found',
    );

    const put = await certs.settings.update({
      zone_id,
      settings: [{ hostname: 'vpn.example.com', china_network: false, client_certificate_forwarding: true }],
    });
    assert.deepEqual(put.result, [{ china_network: false, client_certificate_forwarding: true, hostname: 'vpn.example.com' }]);

    const listed = [];
    for await (const c of certs.list({ zone_id })) listed.push(c);
    assert.deepEqual(listed, [created]);

    await certs.update(created.id!, { zone_id, associated_hostnames: [] });
    assert.deepEqual(await certs.delete(created.id!, { zone_id }), { id: created.id });
  });

  test('auto-pagination over the Access certificate list (per_page 2)', async () => {
    const certs = cf.zeroTrust.access.certificates;
    const account_id = creds.accountId;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const root = await makeCA({ keyType: 'p256', cn: `Paged Root ${i}` });
      ids.push((await certs.create({ account_id, name: `paged ${i}`, certificate: root.certPem })).id!);
    }
    const before = wire.log.length;
    const seen: string[] = [];
    for await (const c of certs.list({ account_id, per_page: 2 })) seen.push(c.id!);
    assert.deepEqual(seen, ids, 'all five, in creation order');
    const pages = wire.log.slice(before);
    assert.deepEqual(
      pages.map((p) => p.body.result.length),
      [2, 2, 1, 0],
      'three pages, then an empty page ends the iteration',
    );
    for (const id of ids) await certs.delete(id, { account_id });
  });

  test('an unknown certificate id raises NotFoundError 404 / 12135', async () => {
    await expectSdkError(
      cf.zeroTrust.access.certificates.get('00000000-0000-4000-8000-000000000000', { account_id: creds.accountId }),
      Cloudflare.NotFoundError,
      404,
      12135,
      'access.api.error.not_found: certificate not found',
    );
  });
});

describe('authentication errors through the SDK', () => {
  test('an unknown token raises AuthenticationError 401 / 9109', async () => {
    const bad = client({ apiToken: 'x'.repeat(40) });
    await expectSdkError(
      bad.originTLSClientAuth.settings.get({ zone_id: creds.zoneId }),
      Cloudflare.AuthenticationError,
      401,
      9109,
      'Invalid access token',
    );
    await expectSdkError(bad.zeroTrust.access.certificates.list({ account_id: creds.accountId }), Cloudflare.AuthenticationError, 401, 9109, 'Invalid access token');
  });

  test('a wrong global key raises PermissionDeniedError 403 / 9103', async () => {
    const bad = client({ apiEmail: creds.email, apiKey: '0'.repeat(37) });
    await expectSdkError(
      bad.originTLSClientAuth.settings.get({ zone_id: creds.zoneId }),
      Cloudflare.PermissionDeniedError,
      403,
      9103,
      'Unknown X-Auth-Key or X-Auth-Email',
    );
  });

  test('a zone the credential cannot see raises PermissionDeniedError 403 / 10000', async () => {
    await expectSdkError(
      cf.originTLSClientAuth.settings.get({ zone_id: '0'.repeat(32) }),
      Cloudflare.PermissionDeniedError,
      403,
      10000,
      'Authentication error',
    );
  });
});

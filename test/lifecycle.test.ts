/**
 * The deployment lifecycle driven by the deployer and a manual clock.
 *
 * Part 1 (HTTP): certificates and hostname associations go initializing → pending_deployment → active (only once the
 * deploy delay has fully elapsed), time out into deployment_timed_out / deletion_timed_out, go pending_deletion →
 * deleted, stay readable as tombstones for the retention period and are then purged; the Access settings 409.
 * Part 2 (unit): createDeployer + createTimerGate over a real SQLite store: exact tick reports, one step per tick,
 * timeouts, atomic ticks, and ticks that never overlap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, assertError, assertOk, startServer, type ApiResponse, type TestServer, withServer } from './helpers/harness.js';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import { createDeployer, createTimerGate, type DeploymentGate } from '../src/domain/lifecycle.js';
import type { LifecycleTiming } from '../src/domain/config.js';
import type { AopCertificate, AopCertificateKind, HostnameAssociation, LifecycleStatus } from '../src/domain/model.js';
import type { SettingsRollout, Store } from '../src/domain/ports.js';
import { onPostgres, openTestStore } from './helpers/store.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const NOT_AFTER = new Date('2027-06-30T12:00:00.000Z');
const CA_ORG = 'Certplane Lifecycle Test CA';
const ca = await makeCA({ org: CA_ORG });
const leaf = (): Promise<Issued> => makeLeaf({ issuer: ca, notAfter: NOT_AFTER });

// =================================================================================================================
// Part 1: over HTTP
// =================================================================================================================

const KINDS: { kind: AopCertificateKind; base: (s: TestServer) => string; notFound: [number, string] }[] = [
  { kind: 'zone', base: (s) => `/zones/${s.zoneId}/origin_tls_client_auth`, notFound: [1552, 'Certificate not found'] },
  {
    kind: 'hostname',
    base: (s) => `/zones/${s.zoneId}/origin_tls_client_auth/hostnames/certificates`,
    notFound: [1551, 'Hostname certificate not found'],
  },
];


async function tick(s: TestServer, expected: { transitions: number; purged: number }, why?: string) {
  assert.deepEqual(await s.cp.deployer.tick(), expected, why);
}

async function uploadTo(s: TestServer, base: string, l: Issued): Promise<{ id: string; status: string }> {
  return assertOk(await s.request('POST', base, { body: { certificate: l.certPem, private_key: l.keyPem } }));
}

async function statusOf(s: TestServer, path: string): Promise<string> {
  return assertOk(await s.request('GET', path)).status;
}

for (const { kind, base } of KINDS) {
  test(`${kind} certificate: initializing → pending_deployment on the first tick → active only once the delay has elapsed`, async () => {
    await withServer({ CERTPLANE_DEPLOY_DELAY_MS: '3000' }, async (s) => {
      const c = await uploadTo(s, base(s), await leaf());
      const path = `${base(s)}/${c.id}`;
      assert.equal(c.status, 'initializing');
      assert.equal(await statusOf(s, path), 'initializing');

      await tick(s, { transitions: 1, purged: 0 });
      assert.equal(await statusOf(s, path), 'pending_deployment');
      // A tick at the same instant and one a millisecond short of the delay change nothing.
      await tick(s, { transitions: 0, purged: 0 });
      s.clock.advance(2_999);
      await tick(s, { transitions: 0, purged: 0 });
      assert.equal(await statusOf(s, path), 'pending_deployment');
      s.clock.advance(1);
      await tick(s, { transitions: 1, purged: 0 });
      assert.equal(await statusOf(s, path), 'active');
      // Active is stable.
      s.clock.advance(24 * 3600_000);
      await tick(s, { transitions: 0, purged: 0 });
      assert.equal(await statusOf(s, path), 'active');
      // The list shows the same status.
      const list = assertOk(await s.request('GET', base(s)));
      assert.deepEqual(
        list.map((x: { id: string; status: string }) => [x.id, x.status]),
        [[c.id, 'active']],
      );
    });
  });

  test(`${kind} certificate: deployment_timed_out when the deploy delay exceeds CERTPLANE_DEPLOY_TIMEOUT_MS`, async () => {
    await withServer({ CERTPLANE_DEPLOY_DELAY_MS: '10000', CERTPLANE_DEPLOY_TIMEOUT_MS: '4000' }, async (s) => {
      const l = await leaf();
      const c = await uploadTo(s, base(s), l);
      const path = `${base(s)}/${c.id}`;
      await tick(s, { transitions: 1, purged: 0 });
      s.clock.advance(3_999);
      await tick(s, { transitions: 0, purged: 0 });
      assert.equal(await statusOf(s, path), 'pending_deployment');
      s.clock.advance(1);
      await tick(s, { transitions: 1, purged: 0 });
      assert.equal(await statusOf(s, path), 'deployment_timed_out');
      // Terminal for the deployer: passing the deploy delay does not make it active.
      s.clock.advance(60_000);
      await tick(s, { transitions: 0, purged: 0 });
      assert.equal(await statusOf(s, path), 'deployment_timed_out');
      // Re-uploading it is a duplicate; deleting it is allowed (it is no longer deploying).
      assertError(
        await s.request('POST', base(s), { body: { certificate: l.certPem, private_key: l.keyPem } }),
        400,
        1406,
        'This certificate already exists for this zone.',
      );
      assert.equal(assertOk(await s.request('DELETE', path)).status, 'pending_deletion');
      await s.settle(s.config.domain.lifecycle.deleteDelayMs);
      assert.equal(await statusOf(s, path), 'deleted');
    });
  });

  test(`${kind} certificate: pending_deletion → deleted after the delete delay; the tombstone is purged after retention`, async () => {
    const env = { CERTPLANE_DEPLOY_DELAY_MS: '1000', CERTPLANE_DELETE_DELAY_MS: '7000', CERTPLANE_RETENTION_MS: '50000' };
    await withServer(env, async (s) => {
      const l = await leaf();
      const c = await uploadTo(s, base(s), l);
      const path = `${base(s)}/${c.id}`;
      await s.settle();
      assert.equal(await statusOf(s, path), 'active');

      assert.equal(assertOk(await s.request('DELETE', path)).status, 'pending_deletion');
      await tick(s, { transitions: 0, purged: 0 });
      s.clock.advance(6_999);
      await tick(s, { transitions: 0, purged: 0 });
      assert.equal(await statusOf(s, path), 'pending_deletion');
      s.clock.advance(1);
      await tick(s, { transitions: 1, purged: 0 });
      assert.equal(await statusOf(s, path), 'deleted');

      // Readable by id until the retention period has passed, then gone.
      s.clock.advance(49_999);
      await tick(s, { transitions: 0, purged: 0 });
      assert.equal(await statusOf(s, path), 'deleted');
      s.clock.advance(1);
      await tick(s, { transitions: 0, purged: 1 });
      const [code, message] = KINDS.find((k) => k.kind === kind)!.notFound;
      assertError(await s.request('GET', path), 404, code, message);
      assertError(await s.request('DELETE', path), 404, code, message);

      // Once purged, the same PEM is a new certificate with a new id.
      const again = await uploadTo(s, base(s), l);
      assert.notEqual(again.id, c.id);
      assert.equal(again.status, 'initializing');
    });
  });

  test(`${kind} certificate: deletion_timed_out when the delete delay exceeds CERTPLANE_DELETE_TIMEOUT_MS; DELETE retries`, async () => {
    const env = { CERTPLANE_DELETE_DELAY_MS: '10000', CERTPLANE_DELETE_TIMEOUT_MS: '4000' };
    await withServer(env, async (s) => {
      const l = await leaf();
      const c = await uploadTo(s, base(s), l);
      const path = `${base(s)}/${c.id}`;
      await s.settle();
      assertOk(await s.request('DELETE', path));
      s.clock.advance(3_999);
      await tick(s, { transitions: 0, purged: 0 });
      assert.equal(await statusOf(s, path), 'pending_deletion');
      s.clock.advance(1);
      await tick(s, { transitions: 1, purged: 0 });
      assert.equal(await statusOf(s, path), 'deletion_timed_out');
      s.clock.advance(60_000);
      await tick(s, { transitions: 0, purged: 0 });
      assert.equal(await statusOf(s, path), 'deletion_timed_out');
      assertError(
        await s.request('POST', base(s), { body: { certificate: l.certPem, private_key: l.keyPem } }),
        400,
        1406,
        'This certificate already exists for this zone.',
      );
      // A new DELETE starts the deletion again, with a fresh timeout.
      assert.equal(assertOk(await s.request('DELETE', path)).status, 'pending_deletion');
      s.clock.advance(3_999);
      await tick(s, { transitions: 0, purged: 0 });
      assert.equal(await statusOf(s, path), 'pending_deletion');
      s.clock.advance(1);
      await tick(s, { transitions: 1, purged: 0 });
      assert.equal(await statusOf(s, path), 'deletion_timed_out');
    });
  });
}

// ---- hostname associations --------------------------------------------------------------------------------------

const hostnamesPath = (s: TestServer) => `/zones/${s.zoneId}/origin_tls_client_auth/hostnames`;

async function putAssociation(s: TestServer, hostname: string, certId: string, enabled: boolean | null): Promise<ApiResponse> {
  return s.request('PUT', hostnamesPath(s), { body: { config: [{ hostname, cert_id: certId, enabled }] } });
}

async function activeHostnameCert(s: TestServer): Promise<{ l: Issued; id: string; uploadedOn: string }> {
  const l = await leaf();
  const uploadedOn = s.clock.now().toISOString();
  const c = await uploadTo(s, `/zones/${s.zoneId}/origin_tls_client_auth/hostnames/certificates`, l);
  await s.settle();
  return { l, id: c.id, uploadedOn };
}

test('association: PUT enabled:true → pending_deployment → active; enabled:null → pending_deletion → deleted → purged (1553)', async () => {
  const env = { CERTPLANE_DEPLOY_DELAY_MS: '3000', CERTPLANE_DELETE_DELAY_MS: '5000', CERTPLANE_RETENTION_MS: '90000' };
  await withServer(env, async (s) => {
    const { l, id, uploadedOn } = await activeHostnameCert(s);
    const host = `app.${s.zoneName}`;
    const hostPath = `${hostnamesPath(s)}/${host}`;
    const created = s.clock.now().toISOString();
    const detail = (status: string, enabled: boolean | null, updated: string) => ({
      cert_id: id,
      cert_status: 'active',
      cert_updated_at: uploadedOn,
      cert_uploaded_on: uploadedOn,
      certificate: l.certPem,
      created_at: created,
      enabled,
      expires_on: NOT_AFTER.toISOString(),
      hostname: host,
      issuer: CA_ORG,
      serial_number: BigInt(`0x${l.serialHex}`).toString(10),
      signature: 'ECDSAWithSHA256',
      status,
      updated_at: updated,
    });
    const listed = async (status: string) =>
      assertOk(await s.request('GET', `${hostnamesPath(s)}?status=${status}`)).map(
        (a: { hostname: string; status: string }) => [a.hostname, a.status],
      );

    const put = await putAssociation(s, host, id, true);
    assert.deepEqual(assertOk(put), [{ id, ...detail('pending_deployment', true, created) }]);
    assert.deepEqual(assertOk(await s.request('GET', hostPath)), detail('pending_deployment', true, created));
    assert.deepEqual(await listed('active'), []);

    // Associations skip `initializing`: the first tick changes nothing, a millisecond short of the delay neither.
    await tick(s, { transitions: 0, purged: 0 });
    s.clock.advance(2_999);
    await tick(s, { transitions: 0, purged: 0 });
    assert.equal(await statusOf(s, hostPath), 'pending_deployment');
    s.clock.advance(1);
    await tick(s, { transitions: 1, purged: 0 });
    assert.deepEqual(assertOk(await s.request('GET', hostPath)), detail('active', true, created));
    assert.deepEqual(await listed('active'), [[host, 'active']]);

    // Void it.
    s.clock.advance(10_000);
    const voided = s.clock.now().toISOString();
    assert.deepEqual(assertOk(await putAssociation(s, host, id, null)), [
      { id, ...detail('pending_deletion', null, voided) },
    ]);
    await tick(s, { transitions: 0, purged: 0 });
    s.clock.advance(4_999);
    await tick(s, { transitions: 0, purged: 0 });
    assert.equal(await statusOf(s, hostPath), 'pending_deletion');
    s.clock.advance(1);
    await tick(s, { transitions: 1, purged: 0 });
    assert.deepEqual(assertOk(await s.request('GET', hostPath)), detail('deleted', null, voided));
    assert.deepEqual(await listed('deleted'), [[host, 'deleted']]);
    assert.deepEqual(await listed('active'), []);

    // The voided association no longer pins the certificate: it can be deleted now.
    assert.equal(
      assertOk(await s.request('DELETE', `/zones/${s.zoneId}/origin_tls_client_auth/hostnames/certificates/${id}`)).status,
      'pending_deletion',
    );

    // Retention runs from the moment the association became `deleted`.
    s.clock.advance(89_999);
    // The certificate's own deletion completes on this tick; the association tombstone stays.
    await tick(s, { transitions: 1, purged: 0 });
    assert.equal(await statusOf(s, hostPath), 'deleted');
    s.clock.advance(1);
    await tick(s, { transitions: 0, purged: 1 });
    assertError(await s.request('GET', hostPath), 404, 1553, 'Authenticated Origin Pulls setting for this hostname not found');
    assert.deepEqual(await listed('all'), []);
  });
});

test('association: enabled:false deploys like enabled:true, and switching certificates redeploys', async () => {
  await withServer({ CERTPLANE_DEPLOY_DELAY_MS: '2000' }, async (s) => {
    const a = await activeHostnameCert(s);
    const b = await activeHostnameCert(s);
    const host = `api.${s.zoneName}`;
    const hostPath = `${hostnamesPath(s)}/${host}`;
    assert.equal(assertOk(await putAssociation(s, host, a.id, false))[0].status, 'pending_deployment');
    await s.settle();
    assert.deepEqual(
      (({ enabled, status, cert_id }) => ({ enabled, status, cert_id }))(assertOk(await s.request('GET', hostPath))),
      { enabled: false, status: 'active', cert_id: a.id },
    );
    // Repeating an active association unchanged does not redeploy it.
    assert.equal(assertOk(await putAssociation(s, host, a.id, false))[0].status, 'active');
    await tick(s, { transitions: 0, purged: 0 });
    // Pointing it at another certificate does.
    assert.equal(assertOk(await putAssociation(s, host, b.id, true))[0].status, 'pending_deployment');
    await s.settle();
    assert.deepEqual(
      (({ enabled, status, cert_id }) => ({ enabled, status, cert_id }))(assertOk(await s.request('GET', hostPath))),
      { enabled: true, status: 'active', cert_id: b.id },
    );
  });
});

test('association: a re-PUT after deployment_timed_out restarts the deployment (with a fresh timeout)', async () => {
  await withServer({ CERTPLANE_DEPLOY_DELAY_MS: '10000', CERTPLANE_DEPLOY_TIMEOUT_MS: '4000' }, async (s) => {
    // The certificate itself times out too (same timing); that does not stop it from being associated.
    const c = await uploadTo(s, `/zones/${s.zoneId}/origin_tls_client_auth/hostnames/certificates`, await leaf());
    await tick(s, { transitions: 1, purged: 0 });
    s.clock.advance(4_000);
    await tick(s, { transitions: 1, purged: 0 });
    const host = `app.${s.zoneName}`;
    const hostPath = `${hostnamesPath(s)}/${host}`;

    const first = assertOk(await putAssociation(s, host, c.id, true))[0];
    assert.equal(first.status, 'pending_deployment');
    assert.equal(first.cert_status, 'deployment_timed_out');
    s.clock.advance(3_999);
    await tick(s, { transitions: 0, purged: 0 });
    s.clock.advance(1);
    await tick(s, { transitions: 1, purged: 0 });
    assert.equal(await statusOf(s, hostPath), 'deployment_timed_out');
    assert.deepEqual(
      assertOk(await s.request('GET', `${hostnamesPath(s)}?status=deployment_timed_out`)).map((a: { hostname: string }) => a.hostname),
      [host],
    );

    // The same PUT again: deployment restarts now, and the timeout counts from now.
    s.clock.advance(30_000);
    const restartedAt = s.clock.now().toISOString();
    const again = assertOk(await putAssociation(s, host, c.id, true))[0];
    assert.equal(again.status, 'pending_deployment');
    assert.equal(again.updated_at, restartedAt);
    assert.equal(again.created_at, first.created_at);
    s.clock.advance(3_999);
    await tick(s, { transitions: 0, purged: 0 });
    assert.equal(await statusOf(s, hostPath), 'pending_deployment');
    s.clock.advance(1);
    await tick(s, { transitions: 1, purged: 0 });
    assert.equal(await statusOf(s, hostPath), 'deployment_timed_out');
  });
});

test('association: a void re-PUT after deletion_timed_out restarts the deletion', async () => {
  const env = { CERTPLANE_DEPLOY_DELAY_MS: '1000', CERTPLANE_DELETE_DELAY_MS: '10000', CERTPLANE_DELETE_TIMEOUT_MS: '4000' };
  await withServer(env, async (s) => {
    const { id } = await activeHostnameCert(s);
    const host = `app.${s.zoneName}`;
    const hostPath = `${hostnamesPath(s)}/${host}`;
    assertOk(await putAssociation(s, host, id, true));
    await s.settle();
    assert.equal(assertOk(await putAssociation(s, host, id, null))[0].status, 'pending_deletion');
    s.clock.advance(4_000);
    await tick(s, { transitions: 1, purged: 0 });
    assert.equal(await statusOf(s, hostPath), 'deletion_timed_out');

    s.clock.advance(30_000);
    const again = assertOk(await putAssociation(s, host, id, null))[0];
    assert.equal(again.status, 'pending_deletion');
    assert.equal(again.updated_at, s.clock.now().toISOString());
    s.clock.advance(3_999);
    await tick(s, { transitions: 0, purged: 0 });
    assert.equal(await statusOf(s, hostPath), 'pending_deletion');
    s.clock.advance(1);
    await tick(s, { transitions: 1, purged: 0 });
    assert.equal(await statusOf(s, hostPath), 'deletion_timed_out');
  });
});

// ---- Access settings: 409 while the previous update is deploying -----------------------------------------------

const CONFLICT = 'access.api.error.conflict: previous certificate settings still being updated';

function settingsPut(s: TestServer, owner: string, hostname: string, forwarding = true) {
  return s.request('PUT', `${owner}/access/certificates/settings`, {
    body: { settings: [{ hostname, china_network: false, client_certificate_forwarding: forwarding }] },
  });
}

test('Access settings: 409 while the previous PUT is still deploying, 202 once it has deployed', async () => {
  await withServer({ CERTPLANE_DEPLOY_DELAY_MS: '3000' }, async (s) => {
    const zone = `/zones/${s.zoneId}`;
    const host = `app.${s.zoneName}`;
    const first = await settingsPut(s, zone, host);
    assert.equal(first.status, 202);
    assert.deepEqual(first.body, {
      success: true,
      errors: [],
      messages: [],
      result: [{ china_network: false, client_certificate_forwarding: true, hostname: host }],
      result_info: { page: 1, per_page: 1, count: 1, total_count: 1, total_pages: 1 },
    });

    const conflict = await settingsPut(s, zone, host, false);
    assertError(conflict, 409, 12133, CONFLICT);
    // Even an empty update is refused while the previous one deploys.
    assertError(await s.request('PUT', `${zone}/access/certificates/settings`, { body: { settings: [] } }), 409, 12133, CONFLICT);
    // Reads are not blocked, and the refused PUT changed nothing.
    assert.deepEqual(assertOk(await s.request('GET', `${zone}/access/certificates/settings`)), [
      { china_network: false, client_certificate_forwarding: true, hostname: host },
    ]);
    // Another scope (the account) has its own rollout.
    assert.equal((await settingsPut(s, `/accounts/${s.accountId}`, `www.${s.zoneName}`)).status, 202);

    // Rollouts skip `initializing`; a millisecond short of the delay the conflict remains.
    await tick(s, { transitions: 0, purged: 0 });
    s.clock.advance(2_999);
    await tick(s, { transitions: 0, purged: 0 });
    assertError(await settingsPut(s, zone, host, false), 409, 12133, CONFLICT);
    s.clock.advance(1);
    await tick(s, { transitions: 2, purged: 0 }); // both scopes' rollouts
    const ok = await settingsPut(s, zone, host, false);
    assert.equal(ok.status, 202);
    // Both flags false removes the hostname's settings.
    assert.deepEqual(assertOk(await s.request('GET', `${zone}/access/certificates/settings`)), []);
    // ... and that PUT starts a rollout of its own.
    assertError(await settingsPut(s, zone, host), 409, 12133, CONFLICT);
    await s.settle();
    assert.equal((await settingsPut(s, zone, host)).status, 202);
  });
});

test('Access settings: refused PUTs and empty PUTs start no rollout; a timed-out rollout no longer blocks', async () => {
  await withServer({ CERTPLANE_DEPLOY_DELAY_MS: '10000', CERTPLANE_DEPLOY_TIMEOUT_MS: '4000' }, async (s) => {
    const zone = `/zones/${s.zoneId}`;
    assertError(
      await settingsPut(s, zone, 'app.elsewhere.test'),
      400,
      12036,
      'access.api.error.hostnames_must_belong_to_your_domain: app.elsewhere.test',
    );
    assert.equal((await s.request('PUT', `${zone}/access/certificates/settings`, { body: { settings: [] } })).status, 202);
    assert.equal((await settingsPut(s, zone, `app.${s.zoneName}`)).status, 202);
    assertError(await settingsPut(s, zone, `app.${s.zoneName}`), 409, 12133, CONFLICT);
    s.clock.advance(3_999);
    await tick(s, { transitions: 0, purged: 0 });
    assertError(await settingsPut(s, zone, `app.${s.zoneName}`), 409, 12133, CONFLICT);
    s.clock.advance(1);
    await tick(s, { transitions: 1, purged: 0 }); // → deployment_timed_out
    assert.equal((await settingsPut(s, zone, `app.${s.zoneName}`)).status, 202);
  });
});

test('Access settings: no 409 with CERTPLANE_ACCESS_SETTINGS_CONFLICT=false', async () => {
  await withServer({ CERTPLANE_ACCESS_SETTINGS_CONFLICT: 'false' }, async (s) => {
    const zone = `/zones/${s.zoneId}`;
    const host = `app.${s.zoneName}`;
    assert.equal((await settingsPut(s, zone, host, true)).status, 202);
    const second = await settingsPut(s, zone, `api.${s.zoneName}`, true);
    assert.equal(second.status, 202);
    const third = await settingsPut(s, zone, host, false);
    assert.equal(third.status, 202);
    assert.deepEqual(assertOk(await s.request('GET', `${zone}/access/certificates/settings`)), [
      { china_network: false, client_certificate_forwarding: true, hostname: `api.${s.zoneName}` },
    ]);
  });
});

// =================================================================================================================
// Part 2: createDeployer + createTimerGate against the real SQLite store
// =================================================================================================================

const TIMING: LifecycleTiming = {
  deployDelayMs: 1_000,
  deleteDelayMs: 2_000,
  deployTimeoutMs: 60_000,
  deleteTimeoutMs: 60_000,
  retentionMs: 10_000,
};

interface Fixture {
  store: Store;
  clock: ManualClock;
  zoneId: string;
  close(): Promise<void>;
}

/** Waits (bounded) until `cond` holds: a database round trip may take many turns of the event loop. */
async function until(cond: () => boolean, deadlineMs = 5_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond() && Date.now() < end) await pause(5);
}
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function openFixture(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'certplane-lifecycle-'));
  const store = await openTestStore(dir);
  const clock = new ManualClock();
  const accountId = randomBytes(16).toString('hex');
  const zoneId = randomBytes(16).toString('hex');
  const at = new Date(T0 - 3600_000);
  await store.write(async (r) => {
    await r.tenancy.insertAccount({ id: accountId, name: 'Lifecycle', createdAt: at });
    await r.tenancy.insertZone({
      id: zoneId,
      name: 'lifecycle.test',
      accountId,
      chinaNetwork: false,
      aopEnabled: false,
      status: 'active',
      createdAt: at,
      modifiedAt: at,
    });
  });
  return {
    store,
    clock,
    zoneId,
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function certRow(f: Fixture, status: LifecycleStatus, changedAt: number, kind: AopCertificateKind = 'hostname'): AopCertificate {
  const id = randomUUID();
  const uploaded = new Date(T0 - 86_400_000);
  return {
    id,
    zoneId: f.zoneId,
    kind,
    certificate: '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n',
    privateKeySealed: 'sealed',
    fingerprintSha256: randomBytes(32).toString('hex'),
    issuer: 'Lifecycle CA',
    serialNumber: '1',
    signature: 'ECDSAWithSHA256',
    expiresOn: NOT_AFTER,
    uploadedOn: uploaded,
    updatedAt: uploaded,
    status,
    statusChangedAt: new Date(changedAt),
    version: 1,
  };
}

function assocRow(f: Fixture, hostname: string, status: LifecycleStatus, changedAt: number): HostnameAssociation {
  const created = new Date(T0 - 86_400_000);
  return {
    zoneId: f.zoneId,
    hostname,
    certId: randomUUID(),
    enabled: status === 'pending_deletion' || status === 'deleted' ? null : true,
    status,
    statusChangedAt: new Date(changedAt),
    version: 2,
    createdAt: created,
    updatedAt: created,
  };
}

async function insert(f: Fixture, certs: AopCertificate[], assocs: HostnameAssociation[] = [], rollouts: SettingsRollout[] = []) {
  await f.store.write(async (r) => {
    for (const c of certs) await r.aop.insertCertificate(c);
    for (const a of assocs) await r.aop.upsertAssociation(a);
    for (const ro of rollouts) await r.access.putSettingsRollout(ro);
  });
}

const readCert = (f: Fixture, c: AopCertificate) => f.store.read((r) => r.aop.getCertificate(c.zoneId, c.kind, c.id));
const readAssoc = (f: Fixture, a: HostnameAssociation) => f.store.read((r) => r.aop.getAssociation(a.zoneId, a.hostname));
const readRollout = (f: Fixture, ro: SettingsRollout) => f.store.read((r) => r.access.getSettingsRollout(ro.scopeType, ro.scopeId));

test('createTimerGate: deployed/removed exactly when the configured delay has elapsed', async () => {
  const gate = createTimerGate({ deployDelayMs: 1_000, deleteDelayMs: 2_000 });
  const subject = { version: 7, statusChangedAt: new Date(T0) };
  assert.equal(await gate.isDeployed(subject, new Date(T0)), false);
  assert.equal(await gate.isDeployed(subject, new Date(T0 + 999)), false);
  assert.equal(await gate.isDeployed(subject, new Date(T0 + 1_000)), true);
  assert.equal(await gate.isDeployed(subject, new Date(T0 + 86_400_000)), true);
  assert.equal(await gate.isRemoved(subject, new Date(T0 + 1_999)), false);
  assert.equal(await gate.isRemoved(subject, new Date(T0 + 2_000)), true);
  const instant = createTimerGate({ deployDelayMs: 0, deleteDelayMs: 0 });
  assert.equal(await instant.isDeployed(subject, new Date(T0)), true);
  assert.equal(await instant.isRemoved(subject, new Date(T0)), true);
});

test('deployer.tick reports transitions and purges exactly and moves each subject one step', async () => {
  const f = await openFixture();
  try {
    const deployer = createDeployer({ store: f.store, clock: f.clock, gate: createTimerGate(TIMING), timing: TIMING });
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 0 }, 'an empty store');

    const init = certRow(f, 'initializing', T0, 'zone');
    const ready = certRow(f, 'pending_deployment', T0 - 1_000);
    const notReady = certRow(f, 'pending_deployment', T0 - 999);
    const deleting = certRow(f, 'pending_deletion', T0 - 2_000, 'zone');
    const stillDeleting = certRow(f, 'pending_deletion', T0 - 1_999);
    const expired = certRow(f, 'deleted', T0 - 10_000);
    const retained = certRow(f, 'deleted', T0 - 9_999);
    const active = certRow(f, 'active', T0 - 999_999);
    const timedOut = certRow(f, 'deployment_timed_out', T0 - 999_999);
    const aReady = assocRow(f, 'a.lifecycle.test', 'pending_deployment', T0 - 1_000);
    const aWaiting = assocRow(f, 'b.lifecycle.test', 'pending_deployment', T0 - 1);
    const aDeleting = assocRow(f, 'c.lifecycle.test', 'pending_deletion', T0 - 2_000);
    const aExpired = assocRow(f, 'd.lifecycle.test', 'deleted', T0 - 10_000);
    const aRetained = assocRow(f, 'e.lifecycle.test', 'deleted', T0 - 5_000);
    const rollout: SettingsRollout = {
      scopeType: 'zone',
      scopeId: f.zoneId,
      status: 'pending_deployment',
      statusChangedAt: new Date(T0 - 1_000),
      version: 3,
    };
    await insert(
      f,
      [init, ready, notReady, deleting, stillDeleting, expired, retained, active, timedOut],
      [aReady, aWaiting, aDeleting, aExpired, aRetained],
      [rollout],
    );

    // init, ready, deleting, aReady, aDeleting, rollout move; expired and aExpired are purged.
    assert.deepEqual(await deployer.tick(), { transitions: 6, purged: 2 });
    const now = new Date(T0);
    const moved = <T extends { status: LifecycleStatus }>(row: T, status: LifecycleStatus) => ({ ...row, status, statusChangedAt: now });
    assert.deepEqual(await readCert(f, init), moved(init, 'pending_deployment'));
    assert.deepEqual(await readCert(f, ready), moved(ready, 'active'));
    assert.deepEqual(await readCert(f, deleting), moved(deleting, 'deleted'));
    for (const unchanged of [notReady, stillDeleting, retained, active, timedOut]) {
      assert.deepEqual(await readCert(f, unchanged), unchanged);
    }
    assert.equal(await readCert(f, expired), null);
    assert.deepEqual(await readAssoc(f, aReady), moved(aReady, 'active'));
    assert.deepEqual(await readAssoc(f, aDeleting), moved(aDeleting, 'deleted'));
    assert.deepEqual(await readAssoc(f, aWaiting), aWaiting);
    assert.deepEqual(await readAssoc(f, aRetained), aRetained);
    assert.equal(await readAssoc(f, aExpired), null);
    assert.deepEqual(await readRollout(f, rollout), moved(rollout, 'active'));
    // Each transition was recorded once, with the version it deploys (the pass writes them together at its end).
    const events = await f.store.read(async (r) => ({
      init: await r.events.listForSubject('aop_certificate', init.id),
      aReady: await r.events.listForSubject('association', `${f.zoneId}/${aReady.hostname}`),
      rollout: await r.events.listForSubject('access_settings', `zone/${f.zoneId}`),
      notReady: await r.events.listForSubject('aop_certificate', notReady.id),
    }));
    const event = (kind: 'aop_certificate' | 'association' | 'access_settings', id: string, from: LifecycleStatus, to: LifecycleStatus, version: number) => [
      { subjectKind: kind, subjectId: id, fromStatus: from, toStatus: to, version, at: now },
    ];
    assert.deepEqual(events, {
      init: event('aop_certificate', init.id, 'initializing', 'pending_deployment', init.version),
      aReady: event('association', `${f.zoneId}/${aReady.hostname}`, 'pending_deployment', 'active', aReady.version),
      rollout: event('access_settings', `zone/${f.zoneId}`, 'pending_deployment', 'active', 3),
      notReady: [],
    });

    // Same instant: nothing else is due (one step per tick: `init` is pending_deployment as of now).
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 0 });
    f.clock.advance(1); // T0+1: notReady and stillDeleting reach their delays; `retained` reaches retention
    assert.deepEqual(await deployer.tick(), { transitions: 2, purged: 1 });
    assert.equal((await readCert(f, notReady))?.status, 'active');
    assert.equal((await readCert(f, stillDeleting))?.status, 'deleted');
    assert.equal(await readCert(f, retained), null);
    f.clock.advance(998); // T0+999: aWaiting (pending since T0-1)
    assert.deepEqual(await deployer.tick(), { transitions: 1, purged: 0 });
    assert.equal((await readAssoc(f, aWaiting))?.status, 'active');
    f.clock.advance(1); // T0+1000: init (pending since T0)
    assert.deepEqual(await deployer.tick(), { transitions: 1, purged: 0 });
    assert.equal((await readCert(f, init))?.status, 'active');
    f.clock.advance(3_999); // T0+4999
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 0 });
    f.clock.advance(1); // T0+5000: aRetained (deleted since T0-5000)
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 1 });
    assert.equal(await readAssoc(f, aRetained), null);
    f.clock.advance(4_999); // T0+9999
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 0 });
    f.clock.advance(1); // T0+10000: the tombstones made by the first tick
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 2 });
    assert.equal(await readCert(f, deleting), null);
    assert.equal(await readAssoc(f, aDeleting), null);
    f.clock.advance(1); // T0+10001: stillDeleting's tombstone (deleted at T0+1)
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 1 });
    f.clock.advance(365 * 86_400_000);
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 0 });
    // What is left: the stable states.
    const left = await f.store.read(async (r) => ({
      certs: (await r.aop.listCertificates(f.zoneId, 'hostname', [])).map((c) => c.status).sort(),
      zoneCerts: (await r.aop.listCertificates(f.zoneId, 'zone', [])).map((c) => c.status).sort(),
      assocs: (await r.aop.listAssociations(f.zoneId, undefined, { page: 1, perPage: 100 })).items.map((a) => [a.hostname, a.status]),
    }));
    assert.deepEqual(left, {
      certs: ['active', 'active', 'active', 'deployment_timed_out'],
      zoneCerts: ['active'],
      assocs: [
        ['a.lifecycle.test', 'active'],
        ['b.lifecycle.test', 'active'],
      ],
    });
  } finally {
    await f.close();
  }
});

// Registered on the PostgreSQL run of this file only (run-tests runs it on both): on SQLite the one writer makes the
// tick wait for the held write, so there is no lock to skip and nothing for this test to check.
if (onPostgres) test('deployer.tick leaves a zone an API request holds for the next pass and moves the other zones', async () => {
  const f = await openFixture();
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let locked!: () => void;
  let request: Promise<void> | undefined;
  try {
    const deployer = createDeployer({ store: f.store, clock: f.clock, gate: createTimerGate(TIMING), timing: TIMING });
    const other = randomBytes(16).toString('hex');
    await f.store.write(async (r) => {
      const z = await r.tenancy.getZone(f.zoneId);
      await r.tenancy.insertZone({ ...z!, id: other, name: 'other-lifecycle.test' });
    });
    const held = [certRow(f, 'initializing', T0), assocRow(f, 'a.lifecycle.test', 'pending_deployment', T0 - 1_000), assocRow(f, 'b.lifecycle.test', 'pending_deployment', T0 - 1_000)];
    const free = [{ ...certRow(f, 'initializing', T0), zoneId: other }, { ...assocRow(f, 'a.other-lifecycle.test', 'pending_deployment', T0 - 1_000), zoneId: other }];
    await insert(f, [held[0] as AopCertificate, free[0] as AopCertificate], [held[1], held[2], free[1]] as HostnameAssociation[]);
    // An API request holding the first zone's lock until told to finish.
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    request = f.store.write(async (r) => {
      await r.locks.zone(f.zoneId);
      locked();
      await finished;
    });
    await isLocked;
    assert.deepEqual(await deployer.tick(), { transitions: 2, purged: 0 }, 'only the free zone moves');
    assert.equal((await readCert(f, free[0] as AopCertificate))?.status, 'pending_deployment');
    assert.equal((await readAssoc(f, free[1] as HostnameAssociation))?.status, 'active');
    assert.equal((await readCert(f, held[0] as AopCertificate))?.status, 'initializing');
    for (const a of [held[1], held[2]] as HostnameAssociation[]) assert.equal((await readAssoc(f, a))?.status, 'pending_deployment');
    finish();
    await request;
    assert.deepEqual(await deployer.tick(), { transitions: 3, purged: 0 }, 'the next pass takes the zone');
    for (const a of [held[1], held[2]] as HostnameAssociation[]) assert.equal((await readAssoc(f, a))?.status, 'active');
  } finally {
    finish();
    await request;
    await f.close();
  }
});

test('deployer.tick: deployment_timed_out and deletion_timed_out when the gate has not answered within the timeouts', async () => {
  const f = await openFixture();
  try {
    const timing: LifecycleTiming = { ...TIMING, deployDelayMs: 10_000, deleteDelayMs: 10_000, deployTimeoutMs: 4_000, deleteTimeoutMs: 6_000 };
    const deployer = createDeployer({ store: f.store, clock: f.clock, gate: createTimerGate(timing), timing });
    const deploying = certRow(f, 'initializing', T0);
    const deleting = certRow(f, 'pending_deletion', T0);
    const assoc = assocRow(f, 'x.lifecycle.test', 'pending_deployment', T0);
    const voiding = assocRow(f, 'y.lifecycle.test', 'pending_deletion', T0);
    const rollout: SettingsRollout = {
      scopeType: 'account',
      scopeId: randomBytes(16).toString('hex'),
      status: 'pending_deployment',
      statusChangedAt: new Date(T0),
      version: 1,
    };
    await insert(f, [deploying, deleting], [assoc, voiding], [rollout]);

    assert.deepEqual(await deployer.tick(), { transitions: 1, purged: 0 }); // deploying → pending_deployment (at T0)
    f.clock.advance(3_999);
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 0 });
    f.clock.advance(1); // T0+4000: the association and the rollout (pending since T0); the cert is pending since T0 too
    assert.deepEqual(await deployer.tick(), { transitions: 3, purged: 0 });
    assert.equal((await readCert(f, deploying))?.status, 'deployment_timed_out');
    assert.equal((await readAssoc(f, assoc))?.status, 'deployment_timed_out');
    assert.equal((await readRollout(f, rollout))?.status, 'deployment_timed_out');
    assert.equal((await readCert(f, deleting))?.status, 'pending_deletion');
    f.clock.advance(1_999);
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 0 });
    f.clock.advance(1); // T0+6000
    assert.deepEqual(await deployer.tick(), { transitions: 2, purged: 0 });
    assert.deepEqual(await readCert(f, deleting), { ...deleting, status: 'deletion_timed_out', statusChangedAt: new Date(T0 + 6_000) });
    assert.deepEqual(await readAssoc(f, voiding), { ...voiding, status: 'deletion_timed_out', statusChangedAt: new Date(T0 + 6_000) });
    // Timed-out states are terminal for the deployer, even after the gate's delays have passed.
    f.clock.advance(365 * 86_400_000);
    assert.deepEqual(await deployer.tick(), { transitions: 0, purged: 0 });
  } finally {
    await f.close();
  }
});

test('deployer.tick: ticks never overlap, whoever calls them; each reads the clock only when it starts', async () => {
  const f = await openFixture();
  try {
    const log: string[] = [];
    class LoggingClock extends ManualClock {
      override now(): Date {
        log.push('now');
        return super.now();
      }
    }
    const clock = new LoggingClock();
    const timer = createTimerGate(TIMING);
    let release!: () => void;
    let hold: Promise<void> | null = new Promise<void>((r) => (release = r));
    // The real timer gate, instrumented: it logs each question and holds the first one until released.
    const gate: DeploymentGate = {
      async isDeployed(subject, now) {
        log.push(`gate v${subject.version}`);
        if (hold) {
          const h = hold;
          hold = null;
          await h;
        }
        const answer = await timer.isDeployed(subject, now);
        log.push(`gate v${subject.version} → ${answer}`);
        return answer;
      },
      isRemoved: timer.isRemoved,
    };
    const ready = { ...certRow(f, 'pending_deployment', T0 - 1_000), version: 1 };
    const waiting = { ...certRow(f, 'pending_deployment', T0 - 500), version: 2 };
    await insert(f, [ready, waiting]);
    const deployer = createDeployer({ store: f.store, clock, gate, timing: TIMING });

    const done: string[] = [];
    const a = deployer.tick().then((r) => (done.push('a'), r));
    const b = deployer.tick().then((r) => (done.push('b'), r));
    const c = deployer.tick().then((r) => (done.push('c'), r));
    // Let the first tick reach the gate, then give the others every chance to start.
    await until(() => log.includes('gate v1'));
    await pause(50);
    assert.deepEqual(log, ['now', 'gate v1'], 'only the first tick has started');
    assert.deepEqual(done, []);

    release();
    assert.deepEqual(await Promise.all([a, b, c]), [
      { transitions: 1, purged: 0 },
      { transitions: 0, purged: 0 },
      { transitions: 0, purged: 0 },
    ]);
    assert.deepEqual(done, ['a', 'b', 'c']);
    assert.deepEqual(log, [
      'now', 'gate v1', 'gate v1 → true', 'gate v2', 'gate v2 → false', // tick a
      'now', 'gate v2', 'gate v2 → false', // tick b: `ready` is already active
      'now', 'gate v2', 'gate v2 → false', // tick c
    ]);
    assert.equal((await readCert(f, ready))?.status, 'active');
    assert.equal((await readCert(f, waiting))?.status, 'pending_deployment');
  } finally {
    await f.close();
  }
});

test('deployer.tick: a failing tick changes nothing and does not block the next one', async () => {
  const f = await openFixture();
  try {
    const timer = createTimerGate(TIMING);
    let failures = 1;
    const gate: DeploymentGate = {
      async isDeployed(subject, now) {
        if (failures > 0) {
          failures--;
          throw new Error('edge feed unavailable');
        }
        return timer.isDeployed(subject, now);
      },
      isRemoved: timer.isRemoved,
    };
    // `first` is handled before `second` (older status change) and needs no gate; `second` makes the gate throw.
    const first = certRow(f, 'initializing', T0 - 5_000);
    const second = certRow(f, 'pending_deployment', T0 - 1_000);
    await insert(f, [first, second]);
    const deployer = createDeployer({ store: f.store, clock: f.clock, gate, timing: TIMING });

    const failed = deployer.tick();
    const next = deployer.tick(); // queued behind the failing one
    await assert.rejects(failed, { message: 'edge feed unavailable' });
    assert.deepEqual(await next, { transitions: 2, purged: 0 });
    // The failed tick's change to `first` was rolled back; the next tick made it.
    assert.deepEqual(await readCert(f, first), { ...first, status: 'pending_deployment', statusChangedAt: new Date(T0) });
    assert.deepEqual(await readCert(f, second), { ...second, status: 'active', statusChangedAt: new Date(T0) });
  } finally {
    await f.close();
  }
});

test('deployer.stop waits for the tick in flight', async () => {
  const f = await openFixture();
  try {
    const timer = createTimerGate(TIMING);
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    let entered = false;
    const gate: DeploymentGate = {
      async isDeployed(subject, now) {
        entered = true;
        await hold;
        return timer.isDeployed(subject, now);
      },
      isRemoved: timer.isRemoved,
    };
    const cert = certRow(f, 'pending_deployment', T0 - 1_000);
    await insert(f, [cert]);
    const deployer = createDeployer({ store: f.store, clock: f.clock, gate, timing: TIMING });
    const ticking = deployer.tick();
    await until(() => entered);
    assert.equal(entered, true);
    let stopped = false;
    const stopping = deployer.stop().then(() => (stopped = true));
    await pause(50);
    assert.equal(stopped, false, 'stop() has not returned while the tick runs');
    release();
    await stopping;
    assert.deepEqual(await ticking, { transitions: 1, purged: 0 });
    assert.equal((await readCert(f, cert))?.status, 'active');
  } finally {
    await f.close();
  }
});

/**
 * The storage contract: one behavioural suite that every `Store` adapter must pass (SQLite today, PostgreSQL
 * next). Run it with `runStorageContract(name, factory)`; the factory returns a fresh, empty, migrated store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AccessCertificate, AopCertificate, EdgeHostname, EdgeNode, HostnameAssociation, Zone } from '../../src/domain/model.js';
import type { Store } from '../../src/domain/ports.js';
import { StorageError } from '../../src/storage/errors.js';

const T0 = new Date('2026-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const hex = (n: number) => n.toString(16).padStart(32, '0');
const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

export function zone(n: number, accountId: string, name: string): Zone {
  return { id: hex(n), name, accountId, chinaNetwork: n % 2 === 0, aopEnabled: false, status: 'active', createdAt: at(n), modifiedAt: at(n) };
}

export function cert(n: number, zoneId: string, kind: 'zone' | 'hostname', extra: Partial<AopCertificate> = {}): AopCertificate {
  return {
    id: uuid(n),
    zoneId,
    kind,
    certificate: `-----BEGIN CERTIFICATE-----\n${n}\n-----END CERTIFICATE-----\n`,
    privateKeySealed: `v1.sealed.${n}`,
    fingerprintSha256: `fp${n}`,
    issuer: 'Issuer',
    serialNumber: String(n),
    signature: 'SHA256WithRSA',
    expiresOn: at(1e9),
    uploadedOn: at(n * 1000),
    updatedAt: at(n * 1000),
    status: 'initializing',
    statusChangedAt: at(n * 1000),
    version: n,
    ...extra,
  };
}

export function assoc(hostname: string, zoneId: string, certId: string, extra: Partial<HostnameAssociation> = {}): HostnameAssociation {
  return {
    zoneId,
    hostname,
    certId,
    enabled: true,
    status: 'pending_deployment',
    statusChangedAt: T0,
    version: 1,
    createdAt: T0,
    updatedAt: T0,
    ...extra,
  };
}

function accessCert(n: number, scopeType: 'account' | 'zone', scopeId: string, accountId: string): AccessCertificate {
  return {
    id: uuid(1000 + n),
    scopeType,
    scopeId,
    accountId,
    name: `ca ${n}`,
    certificate: 'pem',
    fingerprintSha256: `afp${n}`,
    fingerprintMd5: 'MD5 Fingerprint=00',
    associatedHostnames: [`h${n}.example.com`],
    expiresOn: at(1e9),
    createdAt: at(n),
    updatedAt: at(n),
    version: n,
  };
}

function edgeHost(hostname: string, zoneId: string, extra: Partial<EdgeHostname> = {}): EdgeHostname {
  return {
    hostname,
    zoneId,
    originAddress: '192.0.2.10',
    originPort: 8443,
    originTls: true,
    originSni: `origin.${hostname}`,
    originCaPem: '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n',
    serverCertificate: `-----BEGIN CERTIFICATE-----\n${hostname}\n-----END CERTIFICATE-----\n`,
    serverKeySealed: `v1.sealed.${hostname}`,
    createdAt: at(1),
    updatedAt: at(2),
    version: 1,
    ...extra,
  };
}

function edgeNode(n: number, extra: Partial<EdgeNode> = {}): EdgeNode {
  return {
    id: hex(n),
    name: `edge ${n}`,
    secretHash: `edge-secret-${n}`,
    registeredAt: at(n),
    lastSeenAt: null,
    ackedVersion: 0,
    revokedAt: null,
    healthy: true,
    healthReason: null,
    ...extra,
  };
}

export function runStorageContract(name: string, factory: () => Promise<Store>): void {
  describe(`storage contract: ${name}`, () => {
    let store: Store;
    const A = hex(1);
    const B = hex(2);
    let z1: Zone;
    let z2: Zone;

    before(async () => {
      store = await factory();
      await store.write(async (r) => {
        await r.tenancy.insertAccount({ id: A, name: 'A', createdAt: T0 });
        await r.tenancy.insertAccount({ id: B, name: 'B', createdAt: at(1) });
        z1 = zone(10, A, 'example.com');
        z2 = zone(11, B, 'example.org');
        await r.tenancy.insertZone(z1);
        await r.tenancy.insertZone(z2);
      });
    });
    after(async () => store.close());

    test('accounts and zones round-trip; zones are found by id and by name', async () => {
      await store.read(async (r) => {
        assert.deepEqual(await r.tenancy.getAccount(A), { id: A, name: 'A', createdAt: T0 });
        assert.equal(await r.tenancy.getAccount(hex(99)), null);
        assert.deepEqual(await r.tenancy.getZone(z1.id), z1);
        assert.deepEqual(await r.tenancy.getZoneByName('example.org'), z2);
        assert.equal(await r.tenancy.getZoneByName('nope.example'), null);
        assert.deepEqual((await r.tenancy.listAccounts()).map((a) => a.id), [A, B]);
      });
    });

    test('zone listing filters by name and by visibility (accounts OR zone ids), with paging', async () => {
      await store.read(async (r) => {
        const all = await r.tenancy.listZones({}, { page: 1, perPage: 10 });
        assert.deepEqual(all.items.map((z) => z.name), ['example.com', 'example.org']);
        assert.equal(all.totalCount, 2);
        assert.deepEqual((await r.tenancy.listZones({ name: 'example.org' }, { page: 1, perPage: 10 })).items, [z2]);
        assert.deepEqual((await r.tenancy.listZones({ accountIds: [A] }, { page: 1, perPage: 10 })).items, [z1]);
        assert.deepEqual((await r.tenancy.listZones({ accountIds: [], zoneIds: [z2.id] }, { page: 1, perPage: 10 })).items, [z2]);
        const union = await r.tenancy.listZones({ accountIds: [A], zoneIds: [z2.id] }, { page: 2, perPage: 1 });
        assert.deepEqual(union.items, [z2]);
        assert.equal(union.totalCount, 2);
        const none = await r.tenancy.listZones({ accountIds: [], zoneIds: [] }, { page: 1, perPage: 10 });
        assert.deepEqual(none, { items: [], totalCount: 0 });
      });
    });

    test('users, memberships, tokens and meta round-trip', async () => {
      await store.write(async (r) => {
        await r.tenancy.insertUser({ id: hex(20), email: 'a@example.com', apiKeyHash: 'h1', createdAt: T0 });
        await r.tenancy.addMembership(A, hex(20));
        await r.tenancy.addMembership(A, hex(20)); // idempotent
        await r.tenancy.addMembership(B, hex(20));
        await r.tenancy.insertToken({
          id: hex(30),
          name: 't',
          secretHash: 'sh',
          status: 'active',
          policies: [{ permissions: ['ssl:read'], scopes: [{ type: 'zone', id: z1.id }] }],
          notBefore: null,
          expiresOn: at(5000),
          createdAt: T0,
          revokedAt: null,
        });
        await r.tenancy.setMeta('k', 'v1');
        await r.tenancy.setMeta('k', 'v2');
      });
      await store.read(async (r) => {
        assert.equal((await r.tenancy.getUserByEmail('a@example.com'))?.id, hex(20));
        assert.deepEqual(await r.tenancy.listMemberships(hex(20)), [A, B]);
        const t = await r.tenancy.getTokenBySecretHash('sh');
        assert.deepEqual(t?.policies, [{ permissions: ['ssl:read'], scopes: [{ type: 'zone', id: z1.id }] }]);
        assert.deepEqual(t?.expiresOn, at(5000));
        assert.equal(await r.tenancy.getMeta('k'), 'v2');
        assert.equal(await r.tenancy.getMeta('missing'), null);
      });
      await store.write(async (r) => {
        const t = (await r.tenancy.getToken(hex(30)))!;
        await r.tenancy.updateToken({ ...t, status: 'disabled', revokedAt: at(9) });
      });
      assert.equal((await store.read((r) => r.tenancy.getToken(hex(30))))?.status, 'disabled');
    });

    test('AOP certificates: namespaces by zone and kind, fingerprint lookup, ordering, counting, purge', async () => {
      await store.write(async (r) => {
        await r.aop.insertCertificate(cert(1, z1.id, 'hostname'));
        await r.aop.insertCertificate(cert(2, z1.id, 'hostname', { status: 'deleted' }));
        await r.aop.insertCertificate(cert(3, z1.id, 'zone'));
        await r.aop.insertCertificate(cert(4, z2.id, 'hostname'));
      });
      await store.read(async (r) => {
        assert.deepEqual(await r.aop.getCertificate(z1.id, 'hostname', uuid(1)), cert(1, z1.id, 'hostname'));
        assert.equal(await r.aop.getCertificate(z1.id, 'zone', uuid(1)), null, 'kinds are separate namespaces');
        assert.equal(await r.aop.getCertificate(z2.id, 'hostname', uuid(1)), null, 'zones are separate');
        assert.equal((await r.aop.findCertificateById(uuid(3)))?.kind, 'zone');
        assert.equal((await r.aop.getCertificateByFingerprint(z1.id, 'hostname', 'fp2'))?.id, uuid(2));
        assert.deepEqual((await r.aop.listCertificates(z1.id, 'hostname', [])).map((c) => c.id), [uuid(2), uuid(1)]);
        assert.deepEqual((await r.aop.listCertificates(z1.id, 'hostname', ['deleted'])).map((c) => c.id), [uuid(1)]);
        assert.equal(await r.aop.countCertificates(z1.id, 'hostname', ['deleted']), 1);
        assert.equal(await r.aop.countCertificates(z1.id, 'hostname', []), 2);
      });
      await store.write(async (r) => {
        await r.aop.updateCertificate({ ...cert(1, z1.id, 'hostname'), status: 'active', statusChangedAt: at(77), version: 9 });
        await r.aop.purgeCertificate(uuid(2));
      });
      await store.read(async (r) => {
        const c = await r.aop.getCertificate(z1.id, 'hostname', uuid(1));
        assert.equal(c?.status, 'active');
        assert.deepEqual(c?.statusChangedAt, at(77));
        assert.equal(c?.version, 9);
        assert.equal(await r.aop.findCertificateById(uuid(2)), null);
      });
    });

    test('a duplicate certificate fingerprint in one zone and kind is a StorageError conflict', async () => {
      await assert.rejects(
        store.write((r) => r.aop.insertCertificate(cert(5, z1.id, 'hostname', { fingerprintSha256: 'fp1' }))),
        (e: unknown) => e instanceof StorageError && e.kind === 'conflict',
      );
    });

    test('associations: upsert by (zone, hostname), status filters, paging, live counts, in-flight queries', async () => {
      await store.write(async (r) => {
        await r.aop.upsertAssociation(assoc('a.example.com', z1.id, uuid(1), { status: 'active' }));
        await r.aop.upsertAssociation(assoc('b.example.com', z1.id, uuid(1)));
        await r.aop.upsertAssociation(assoc('c.example.com', z1.id, uuid(1), { enabled: false, status: 'active' }));
        await r.aop.upsertAssociation(assoc('d.example.com', z1.id, uuid(1), { enabled: null, status: 'deleted', statusChangedAt: at(-5) }));
        await r.aop.upsertAssociation(assoc('b.example.com', z1.id, uuid(1), { status: 'active', statusChangedAt: at(3) }));
      });
      await store.read(async (r) => {
        assert.equal((await r.aop.getAssociation(z1.id, 'b.example.com'))?.status, 'active');
        assert.equal((await r.aop.getAssociation(z1.id, 'd.example.com'))?.enabled, null);
        assert.equal((await r.aop.getAssociation(z1.id, 'c.example.com'))?.enabled, false);
        const active = await r.aop.listAssociations(z1.id, ['active'], { page: 1, perPage: 2 });
        assert.deepEqual(active.items.map((a) => a.hostname), ['a.example.com', 'b.example.com']);
        assert.equal(active.totalCount, 3);
        const page2 = await r.aop.listAssociations(z1.id, ['active'], { page: 2, perPage: 2 });
        assert.deepEqual(page2.items.map((a) => a.hostname), ['c.example.com']);
        const past = await r.aop.listAssociations(z1.id, ['active'], { page: 9, perPage: 2 });
        assert.deepEqual(past, { items: [], totalCount: 3 });
        assert.equal((await r.aop.listAssociations(z1.id, undefined, { page: 1, perPage: 10 })).totalCount, 4);
        assert.equal((await r.aop.listAssociations(z1.id, ['deleted', 'active'], { page: 1, perPage: 10 })).totalCount, 4);
        assert.equal(await r.aop.countLiveAssociations(uuid(1)), 3, 'true and false count, voided does not');
        const deleted = await r.aop.listAssociationsInStatus(['deleted'], at(0), 10);
        assert.deepEqual(deleted.map((a) => a.hostname), ['d.example.com']);
        assert.deepEqual(await r.aop.listAssociationsInStatus(['deleted'], at(-10), 10), []);
      });
      await store.write((r) => r.aop.purgeAssociation(z1.id, 'd.example.com'));
      assert.equal(await store.read((r) => r.aop.getAssociation(z1.id, 'd.example.com')), null);
    });

    test('associations in bulk: one upsert of many rows, read back by hostname list; zones by a list of names', async () => {
      const rows = [
        assoc('bulk1.example.org', z2.id, uuid(7), { enabled: null, status: 'pending_deletion', statusChangedAt: at(1) }),
        assoc('bulk2.example.org', z2.id, uuid(7), { enabled: false, version: 9 }),
        assoc('bulk3.example.org', z2.id, uuid(7), { createdAt: at(-1), updatedAt: at(2) }),
      ];
      await store.write(async (r) => {
        await r.aop.upsertAssociations([]);
        await r.aop.upsertAssociations(rows);
        // A second bulk upsert updates in place (and inserts what is new).
        await r.aop.upsertAssociations([{ ...rows[1], enabled: true, status: 'active', version: 10 }, assoc('bulk4.example.org', z2.id, uuid(7))]);
      });
      await store.read(async (r) => {
        const got = await r.aop.getAssociations(z2.id, ['bulk4.example.org', 'bulk1.example.org', 'bulk2.example.org', 'bulk3.example.org', 'none.example.org']);
        const byName = new Map(got.map((a) => [a.hostname, a]));
        assert.equal(got.length, 4);
        assert.deepEqual(byName.get('bulk1.example.org'), rows[0]);
        assert.deepEqual(byName.get('bulk2.example.org'), { ...rows[1], enabled: true, status: 'active', version: 10 });
        assert.deepEqual(byName.get('bulk3.example.org'), rows[2]);
        assert.deepEqual(byName.get('bulk4.example.org'), assoc('bulk4.example.org', z2.id, uuid(7)));
        // Only the asked zone's rows; an empty list and a NUL byte match nothing.
        assert.deepEqual(await r.aop.getAssociations(z1.id, ['bulk1.example.org']), []);
        assert.deepEqual(await r.aop.getAssociations(z2.id, []), []);
        assert.deepEqual(await r.aop.getAssociations(z2.id, ['bulk1.example.org\u0000']), []);
        const zones = await r.tenancy.getZonesByNames(['x.example.com', 'example.com', 'example.org', 'com', 'nul\u0000.example']);
        assert.deepEqual(zones.sort((a, b) => a.name.localeCompare(b.name)), [z1, z2]);
        assert.deepEqual(await r.tenancy.getZonesByNames([]), []);
      });
      await store.write(async (r) => {
        for (const h of ['bulk1', 'bulk2', 'bulk3', 'bulk4']) await r.aop.purgeAssociation(z2.id, `${h}.example.org`);
      });
    });

    test('certificates in flight are listed oldest first, bounded by time and limit', async () => {
      await store.read(async (r) => {
        const inFlight = await r.aop.listCertificatesInStatus(['initializing'], at(10_000), 10);
        assert.deepEqual(inFlight.map((c) => c.id), [uuid(3), uuid(4)]);
        assert.deepEqual((await r.aop.listCertificatesInStatus(['initializing'], at(10_000), 1)).map((c) => c.id), [uuid(3)]);
        assert.deepEqual(await r.aop.listCertificatesInStatus(['initializing'], at(2999), 10), []);
      });
    });

    test('Access certificates: scopes, paging, per-account count across account and zone scopes', async () => {
      await store.write(async (r) => {
        await r.access.insertCertificate(accessCert(1, 'account', A, A));
        await r.access.insertCertificate(accessCert(2, 'zone', z1.id, A));
        await r.access.insertCertificate(accessCert(3, 'account', A, A));
        await r.access.insertCertificate(accessCert(4, 'account', B, B));
      });
      await store.read(async (r) => {
        assert.deepEqual(await r.access.getCertificate('account', A, uuid(1001)), accessCert(1, 'account', A, A));
        assert.equal(await r.access.getCertificate('zone', z1.id, uuid(1001)), null);
        assert.equal((await r.access.getCertificateByFingerprint('zone', z1.id, 'afp2'))?.id, uuid(1002));
        const page = await r.access.listCertificates('account', A, { page: 2, perPage: 1 });
        assert.deepEqual(page.items.map((c) => c.id), [uuid(1003)]);
        assert.equal(page.totalCount, 2);
        assert.equal(await r.access.countAccountCertificates(A), 3);
        assert.equal(await r.access.countAccountCertificates(B), 1);
      });
      await store.write(async (r) => {
        await r.access.updateCertificate({ ...accessCert(1, 'account', A, A), name: 'renamed', associatedHostnames: [] });
        await r.access.deleteCertificate(uuid(1003));
      });
      await store.read(async (r) => {
        const c = await r.access.getCertificate('account', A, uuid(1001));
        assert.equal(c?.name, 'renamed');
        assert.deepEqual(c?.associatedHostnames, []);
        assert.equal(await r.access.countAccountCertificates(A), 2);
      });
    });

    test('Access settings upsert, delete and rollouts', async () => {
      const s = (hostname: string, fwd: boolean) => ({
        scopeType: 'zone' as const,
        scopeId: z1.id,
        hostname,
        chinaNetwork: false,
        clientCertificateForwarding: fwd,
        updatedAt: T0,
        version: 1,
      });
      await store.write(async (r) => {
        await r.access.upsertSetting(s('b.example.com', true));
        await r.access.upsertSetting(s('a.example.com', true));
        await r.access.upsertSetting(s('a.example.com', false));
        await r.access.putSettingsRollout({ scopeType: 'zone', scopeId: z1.id, status: 'pending_deployment', statusChangedAt: T0, version: 1 });
      });
      await store.read(async (r) => {
        assert.deepEqual(await r.access.listSettings('zone', z1.id), [s('a.example.com', false), s('b.example.com', true)]);
        assert.deepEqual(await r.access.listSettings('account', A), []);
        assert.equal((await r.access.getSettingsRollout('zone', z1.id))?.status, 'pending_deployment');
        assert.equal((await r.access.listSettingsRolloutsInStatus('pending_deployment', T0, 10)).length, 1);
      });
      await store.write(async (r) => {
        await r.access.deleteSetting('zone', z1.id, 'a.example.com');
        await r.access.putSettingsRollout({ scopeType: 'zone', scopeId: z1.id, status: 'active', statusChangedAt: at(1), version: 1 });
      });
      await store.read(async (r) => {
        assert.deepEqual((await r.access.listSettings('zone', z1.id)).map((x) => x.hostname), ['b.example.com']);
        assert.equal((await r.access.listSettingsRolloutsInStatus('pending_deployment', at(5), 10)).length, 0);
      });
    });

    test('lifecycle events are recorded per subject, oldest first', async () => {
      await store.write(async (r) => {
        await r.events.record([]);
        await r.events.record([{ subjectKind: 'association', subjectId: `${z1.id}/a.example.com`, fromStatus: 'pending_deployment', toStatus: 'active', version: 3, at: at(5) }]);
        // Several at once are kept in the order given, even where their times say otherwise.
        await r.events.record([
          { subjectKind: 'aop_certificate', subjectId: uuid(1), fromStatus: 'initializing', toStatus: 'pending_deployment', version: 1, at: at(2) },
          { subjectKind: 'association', subjectId: `${z1.id}/b.example.com`, fromStatus: 'initializing', toStatus: 'pending_deployment', version: 4, at: at(2) },
          { subjectKind: 'aop_certificate', subjectId: uuid(1), fromStatus: 'pending_deployment', toStatus: 'active', version: 1, at: at(1) },
        ]);
      });
      await store.read(async (r) => {
        assert.deepEqual(await r.events.listForSubject('aop_certificate', uuid(1)), [
          { subjectKind: 'aop_certificate', subjectId: uuid(1), fromStatus: 'initializing', toStatus: 'pending_deployment', version: 1, at: at(2) },
          { subjectKind: 'aop_certificate', subjectId: uuid(1), fromStatus: 'pending_deployment', toStatus: 'active', version: 1, at: at(1) },
        ]);
        assert.equal((await r.events.listForSubject('association', `${z1.id}/a.example.com`)).length, 1);
        assert.deepEqual(await r.events.listForSubject('aop_certificate', uuid(99)), []);
      });
    });

    test('onConfigChange wakes listeners after a committed version change, not for other or failed writes', async () => {
      // A subscription held for the whole test, and time for a store that listens on a connection of its own (PostgreSQL's
      // LISTEN) to open it: a commit then wakes listeners once, not once from this process and again from the database.
      const held = store.onConfigChange(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      let calls = 0;
      const woken = () =>
        new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('no wake-up within 5 s')), 5_000);
          const off = store.onConfigChange(() => {
            calls++;
            clearTimeout(t);
            off();
            resolve();
          });
        });
      const wake = woken();
      await store.write((r) => r.nextVersion());
      await wake;
      assert.equal(calls, 1);

      let spurious = 0;
      const off = store.onConfigChange(() => spurious++);
      await store.write((r) => r.tenancy.setMeta('quiet', 'no version change'));
      await assert.rejects(
        store.write(async (r) => {
          await r.nextVersion();
          throw new Error('rolled back');
        }),
      );
      await new Promise((r) => setTimeout(r, 300));
      off();
      held();
      assert.equal(spurious, 0, 'no wake-up without a committed version change');
    });

    test('configuration versions are strictly increasing', async () => {
      const a = await store.write((r) => r.nextVersion());
      const b = await store.write((r) => r.nextVersion());
      assert.equal(b, a + 1);
      assert.equal(await store.read((r) => r.currentVersion()), b);
    });

    test('a failed write transaction leaves nothing behind', async () => {
      const before = await store.read((r) => r.currentVersion());
      await assert.rejects(
        store.write(async (r) => {
          await r.nextVersion();
          await r.tenancy.insertAccount({ id: hex(500), name: 'ghost', createdAt: T0 });
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(await store.read((r) => r.tenancy.getAccount(hex(500))), null);
      assert.equal(await store.read((r) => r.currentVersion()), before);
    });

    test('reads never see uncommitted rows; concurrent writes each get their own version', async () => {
      let release!: () => void;
      const gate = new Promise<void>((res) => (release = res));
      let inserted!: () => void;
      const isInserted = new Promise<void>((res) => (inserted = res));
      // A write that inserts a row, waits, then rolls back: nobody may ever see that row.
      const doomed = store.write(async (r) => {
        await r.tenancy.insertAccount({ id: hex(600), name: 'never committed', createdAt: T0 });
        inserted();
        await gate;
        throw new Error('rolled back');
      });
      await isInserted;
      const read = store.read((r) => r.tenancy.getAccount(hex(600)));
      const n = 20;
      const writes = Array.from({ length: n }, () => store.write((r) => r.nextVersion()));
      // Let the read run (or queue) while the write is still open, then end the write.
      await new Promise((res) => setTimeout(res, 20));
      release();
      await assert.rejects(doomed, /rolled back/);
      assert.equal(await read, null, 'a read during an open write does not see its rows');
      assert.equal(await store.read((r) => r.tenancy.getAccount(hex(600))), null);
      const versions = await Promise.all(writes);
      assert.equal(new Set(versions).size, n, 'every write got its own version');
    });

    test('writes asked for together are each atomic on their own: a failing one changes nothing, the others all commit', async () => {
      // Asked for in one go, as the requests of one event-loop turn are (SQLite runs them in one transaction, each in
      // a savepoint: docs/decisions/0011-sqlite-group-commit.md). Each failing write has already written rows.
      await store.write((r) => r.tenancy.insertAccount({ id: hex(800), name: 'taken', createdAt: T0 }));
      const outcomes = await Promise.allSettled(
        Array.from({ length: 30 }, (_, i) =>
          store.write(async (r) => {
            await r.tenancy.insertAccount({ id: hex(801 + i), name: `batch ${i}`, createdAt: T0 });
            await r.tenancy.setMeta(`batch-${i}`, 'written');
            if (i % 3 === 1) throw new Error(`refused ${i}`);
            // A constraint violation after the write's own rows (the id of the account written above).
            if (i % 3 === 2) await r.tenancy.insertAccount({ id: hex(800), name: 'duplicate', createdAt: T0 });
            return i;
          }),
        ),
      );
      for (let i = 0; i < 30; i++) {
        const o = outcomes[i];
        const account = await store.read((r) => r.tenancy.getAccount(hex(801 + i)));
        const meta = await store.read((r) => r.tenancy.getMeta(`batch-${i}`));
        if (i % 3 === 0) {
          assert.deepEqual(o, { status: 'fulfilled', value: i });
          assert.equal(account?.name, `batch ${i}`);
          assert.equal(meta, 'written');
        } else {
          assert.equal(o.status, 'rejected', `write ${i}`);
          const reason = (o as PromiseRejectedResult).reason;
          if (i % 3 === 1) assert.match(String(reason), new RegExp(`refused ${i}$`));
          else assert.ok(reason instanceof StorageError && reason.kind === 'conflict', `write ${i}: ${String(reason)}`);
          assert.equal(account, null, `write ${i} left its account behind`);
          assert.equal(meta, null, `write ${i} left its meta row behind`);
        }
      }
    });

    test('writes asked for together: when the first fails (SQLite runs it without a savepoint), it changes nothing and the next ones commit', async () => {
      // SQLite rolls the whole transaction back for its first write and begins again for the rest
      // (docs/decisions/0011-sqlite-group-commit.md); both failure kinds, then a success, then a failure after it.
      await store.write((r) => r.tenancy.insertAccount({ id: hex(850), name: 'taken', createdAt: T0 }));
      const kinds = ['throws', 'conflict', 'ok', 'throws', 'ok'] as const;
      for (const first of ['throws', 'conflict'] as const) {
        const base = first === 'throws' ? 851 : 861;
        const plan = [first, ...kinds.slice(1)];
        const outcomes = await Promise.allSettled(
          plan.map((kind, i) =>
            store.write(async (r) => {
              await r.tenancy.insertAccount({ id: hex(base + i), name: `first-${kind}-${i}`, createdAt: T0 });
              await r.tenancy.setMeta(`first-${base + i}`, 'written');
              if (kind === 'throws') throw new Error(`refused ${base + i}`);
              if (kind === 'conflict') await r.tenancy.insertAccount({ id: hex(850), name: 'duplicate', createdAt: T0 });
              return i;
            }),
          ),
        );
        for (let i = 0; i < plan.length; i++) {
          const account = await store.read((r) => r.tenancy.getAccount(hex(base + i)));
          const meta = await store.read((r) => r.tenancy.getMeta(`first-${base + i}`));
          if (plan[i] === 'ok') {
            assert.deepEqual(outcomes[i], { status: 'fulfilled', value: i });
            assert.equal(account?.name, `first-ok-${i}`);
            assert.equal(meta, 'written');
            continue;
          }
          const reason = (outcomes[i] as PromiseRejectedResult).reason;
          assert.equal(outcomes[i].status, 'rejected', `write ${i}`);
          if (plan[i] === 'throws') assert.match(String(reason), new RegExp(`refused ${base + i}$`));
          else assert.ok(reason instanceof StorageError && reason.kind === 'conflict', `write ${i}: ${String(reason)}`);
          assert.equal(account, null, `write ${i} left its account behind`);
          assert.equal(meta, null, `write ${i} left its meta row behind`);
        }
      }
      // The store goes on taking writes afterwards.
      assert.equal(await store.write(async (r) => (await r.tenancy.insertAccount({ id: hex(870), name: 'after', createdAt: T0 }), 'done')), 'done');
    });

    test('a foreign key violation is a StorageError conflict too', async () => {
      await assert.rejects(
        store.write((r) => r.tenancy.insertZone(zone(700, hex(701), 'orphan.example'))),
        (e: unknown) => e instanceof StorageError && e.kind === 'conflict',
      );
      assert.equal(await store.read((r) => r.tenancy.getZone(hex(700))), null);
    });

    test('token policies read back serialise exactly as written (key order included)', async () => {
      const policies = [
        { permissions: ['ssl:read' as const, 'ssl:write' as const], scopes: [{ type: 'all' as const }] },
        { permissions: ['access-certificate:read' as const], scopes: [{ type: 'account' as const, id: A }, { type: 'zone' as const, id: z1.id }] },
      ];
      await store.write((r) =>
        r.tenancy.insertToken({
          id: hex(710),
          name: 'order',
          secretHash: 'sh-order',
          status: 'active',
          policies,
          notBefore: at(1),
          expiresOn: null,
          createdAt: T0,
          revokedAt: null,
        }),
      );
      const t = await store.read((r) => r.tenancy.getToken(hex(710)));
      assert.equal(JSON.stringify(t?.policies), JSON.stringify(policies));
      assert.deepEqual(t?.notBefore, at(1));
      assert.equal(t?.expiresOn, null);
    });

    test('times keep their milliseconds, from 1950 to the end of 9999', async () => {
      const times = [new Date('1950-01-01T00:00:00.001Z'), new Date('2038-01-19T03:14:07.999Z'), new Date('9999-12-31T23:59:59.999Z')];
      await store.write(async (r) => {
        for (const [i, t] of times.entries()) {
          await r.aop.insertCertificate(cert(720 + i, z2.id, 'zone', { expiresOn: t, uploadedOn: t, statusChangedAt: t, status: 'active' }));
        }
      });
      await store.read(async (r) => {
        for (const [i, t] of times.entries()) {
          const c = await r.aop.getCertificate(z2.id, 'zone', uuid(720 + i));
          assert.equal(c?.expiresOn.toISOString(), t.toISOString());
          assert.equal(c?.uploadedOn.getTime(), t.getTime());
        }
        assert.deepEqual(
          (await r.aop.listCertificates(z2.id, 'zone', [])).map((c) => c.id),
          [uuid(722), uuid(721), uuid(720)],
          'newest upload first',
        );
      });
    });

    test('a lookup value containing U+0000 matches nothing (and breaks nothing)', async () => {
      const nul = '\u0000';
      await store.read(async (r) => {
        assert.equal(await r.tenancy.getZoneByName(nul), null);
        assert.equal(await r.tenancy.getZoneByName(`example.com${nul}`), null);
        assert.deepEqual(await r.tenancy.listZones({ name: nul }, { page: 1, perPage: 10 }), { items: [], totalCount: 0 });
        assert.deepEqual((await r.tenancy.listZones({ zoneIds: [z1.id, nul] }, { page: 1, perPage: 10 })).items, [z1]);
        assert.equal(await r.tenancy.getAccount(`${A}${nul}`), null);
        assert.equal(await r.tenancy.getTokenBySecretHash(nul), null);
        assert.equal(await r.aop.findCertificateById(nul), null);
        assert.equal(
          await r.aop.countCertificates(z1.id, 'hostname', ['deleted', nul as 'deleted']),
          await r.aop.countCertificates(z1.id, 'hostname', ['deleted']),
        );
        assert.equal((await r.aop.listAssociations(z1.id, [`active${nul}` as 'active'], { page: 1, perPage: 10 })).totalCount, 0);
      });
      await store.write((r) => r.aop.purgeCertificate(nul));
    });

    test('edge: hostnames, nodes, failures and the change log', async () => {
      // Hostnames: upsert inserts, then replaces every column; listings in binary hostname order.
      const hostnames = ['ab.edge.example', 'a.edge.example', 'a-b.edge.example', 'a_b.edge.example', 'a0.edge.example'];
      const plain = edgeHost('plain.edge.example', z2.id, { originTls: false, originSni: null, originCaPem: null, originPort: 80 });
      await store.write(async (r) => {
        for (const h of hostnames) await r.edge.upsertHostname(edgeHost(h, z1.id));
        await r.edge.upsertHostname(plain);
      });
      await store.read(async (r) => {
        assert.deepEqual(await r.edge.getHostname('a.edge.example'), edgeHost('a.edge.example', z1.id));
        assert.deepEqual(await r.edge.getHostname('plain.edge.example'), plain, 'NULLs and false round-trip');
        assert.equal(await r.edge.getHostname('missing.edge.example'), null);
        assert.deepEqual((await r.edge.listHostnames()).map((h) => h.hostname), [...hostnames, plain.hostname].sort());
        assert.deepEqual((await r.edge.listHostnamesOfZone(z1.id)).map((h) => h.hostname), [...hostnames].sort());
        assert.deepEqual(await r.edge.listHostnamesOfZone(z2.id), [plain]);
        assert.deepEqual(await r.edge.listHostnamesOfZone(hex(799)), []);
      });
      const moved = edgeHost('a.edge.example', z2.id, {
        originAddress: 'origin.example.net',
        originPort: 443,
        originTls: false,
        originSni: null,
        originCaPem: null,
        serverCertificate: 'new chain',
        serverKeySealed: 'v1.sealed.new',
        createdAt: at(10),
        updatedAt: at(11),
        version: 7,
      });
      await store.write(async (r) => {
        await r.edge.upsertHostname(moved);
        await r.edge.deleteHostname('ab.edge.example');
        await r.edge.deleteHostname('never.edge.example'); // deleting nothing is fine
      });
      await store.read(async (r) => {
        assert.deepEqual(await r.edge.getHostname('a.edge.example'), moved, 'upsert replaces every column');
        assert.equal(await r.edge.getHostname('ab.edge.example'), null);
        assert.deepEqual(
          (await r.edge.listHostnamesOfZone(z1.id)).map((h) => h.hostname),
          ['a-b.edge.example', 'a0.edge.example', 'a_b.edge.example'],
        );
        assert.deepEqual((await r.edge.listHostnamesOfZone(z2.id)).map((h) => h.hostname), ['a.edge.example', 'plain.edge.example']);
        assert.equal((await r.edge.listHostnames()).length, 5);
      });

      // A hostname of an unknown zone is a foreign key violation: a conflict, and nothing is written.
      await assert.rejects(
        store.write((r) => r.edge.upsertHostname(edgeHost('orphan.edge.example', hex(799)))),
        (e: unknown) => e instanceof StorageError && e.kind === 'conflict',
      );
      assert.equal(await store.read((r) => r.edge.getHostname('orphan.edge.example')), null);

      // Nodes: insert, lookups, listing by registration time then id, update of every column.
      const n1 = edgeNode(803, { registeredAt: at(5) });
      const n2 = edgeNode(801, { registeredAt: at(5), lastSeenAt: at(6), ackedVersion: 3 });
      const n3 = edgeNode(802, { registeredAt: at(4) });
      await store.write(async (r) => {
        await r.edge.insertNode(n1);
        await r.edge.insertNode(n2);
        await r.edge.insertNode(n3);
      });
      await store.read(async (r) => {
        assert.deepEqual(await r.edge.getNode(hex(803)), n1);
        assert.deepEqual(await r.edge.getNodeBySecretHash('edge-secret-801'), n2);
        assert.equal(await r.edge.getNode(hex(899)), null);
        assert.equal(await r.edge.getNodeBySecretHash('unknown'), null);
        assert.equal(await r.edge.getNodeBySecretHash('\u0000'), null);
        assert.deepEqual((await r.edge.listNodes()).map((n) => n.id), [hex(802), hex(801), hex(803)]);
      });
      const n1b: EdgeNode = {
        ...n1,
        name: 'renamed',
        secretHash: 'edge-secret-rotated',
        registeredAt: at(1),
        lastSeenAt: at(20),
        ackedVersion: 12,
        revokedAt: at(21),
        healthy: false,
        healthReason: 'haproxy exited (SIGKILL)',
      };
      await store.write((r) => r.edge.updateNode(n1b));
      await store.read(async (r) => {
        assert.deepEqual(await r.edge.getNode(hex(803)), n1b, 'update replaces every column');
        assert.equal(await r.edge.getNodeBySecretHash('edge-secret-803'), null);
        assert.deepEqual(await r.edge.getNodeBySecretHash('edge-secret-rotated'), n1b);
        assert.deepEqual((await r.edge.listNodes()).map((n) => n.id), [hex(803), hex(802), hex(801)]);
      });
      await assert.rejects(
        store.write((r) => r.edge.insertNode(edgeNode(804, { secretHash: 'edge-secret-801' }))),
        (e: unknown) => e instanceof StorageError && e.kind === 'conflict',
        'secret hashes are unique',
      );

      // Failures: each put replaces everything the edge reported before; other edges are untouched.
      const fail = (edgeId: string, version: number, hostname: string, reason: string) => ({ edgeId, version, hostname, reason });
      await store.write(async (r) => {
        await r.edge.putFailures(hex(801), 5, [fail(hex(801), 5, 'b.edge.example', 'bad key'), fail(hex(801), 5, 'a.edge.example', 'bad chain')]);
        await r.edge.putFailures(hex(802), 5, [fail(hex(802), 5, 'c.edge.example', 'origin unreachable')]);
      });
      await store.read(async (r) => {
        assert.deepEqual(await r.edge.listFailures(hex(801)), [
          fail(hex(801), 5, 'a.edge.example', 'bad chain'),
          fail(hex(801), 5, 'b.edge.example', 'bad key'),
        ]);
        assert.deepEqual(await r.edge.listFailures(hex(803)), []);
      });
      await store.write((r) =>
        r.edge.putFailures(hex(801), 6, [fail(hex(801), 6, 'd.edge.example', 'expired'), fail(hex(801), 6, 'a.edge.example', 'still bad')]),
      );
      await store.read(async (r) => {
        assert.deepEqual(await r.edge.listFailures(hex(801)), [
          fail(hex(801), 6, 'a.edge.example', 'still bad'),
          fail(hex(801), 6, 'd.edge.example', 'expired'),
        ]);
        assert.deepEqual(await r.edge.listFailures(hex(802)), [fail(hex(802), 5, 'c.edge.example', 'origin unreachable')]);
      });
      await store.write((r) => r.edge.putFailures(hex(801), 7, []));
      await store.read(async (r) => {
        assert.deepEqual(await r.edge.listFailures(hex(801)), [], 'an empty report clears the failures');
        assert.equal((await r.edge.listFailures(hex(802))).length, 1);
      });
      await assert.rejects(
        store.write((r) => r.edge.putFailures(hex(899), 1, [fail(hex(899), 1, 'a.edge.example', 'x')])),
        (e: unknown) => e instanceof StorageError && e.kind === 'conflict',
        'failures of an unknown edge',
      );

      // The change log: appended in any order, read back by version then insertion, after < version <= upTo.
      await store.write(async (r) => {
        await r.edge.recordChange({ version: 105, scopeType: 'zone', scopeId: z1.id });
        await r.edge.recordChange({ version: 105, scopeType: 'account', scopeId: A });
        await r.edge.recordChange({ version: 106, scopeType: 'hostname', scopeId: 'a.edge.example' });
        await r.edge.recordChange({ version: 108, scopeType: 'zone', scopeId: z2.id });
        await r.edge.recordChange({ version: 107, scopeType: 'zone', scopeId: z1.id });
      });
      await store.read(async (r) => {
        assert.deepEqual(await r.edge.listChanges(0, 1000), [
          { version: 105, scopeType: 'zone', scopeId: z1.id },
          { version: 105, scopeType: 'account', scopeId: A },
          { version: 106, scopeType: 'hostname', scopeId: 'a.edge.example' },
          { version: 107, scopeType: 'zone', scopeId: z1.id },
          { version: 108, scopeType: 'zone', scopeId: z2.id },
        ]);
        assert.deepEqual((await r.edge.listChanges(105, 107)).map((c) => c.version), [106, 107], 'after is exclusive, upTo inclusive');
        assert.deepEqual((await r.edge.listChanges(104, 105)).map((c) => c.scopeType), ['zone', 'account']);
        assert.deepEqual(await r.edge.listChanges(108, 1000), []);
        assert.deepEqual(await r.edge.listChanges(106, 106), []);
        assert.deepEqual(await r.edge.listChanges(0, 104), []);
      });
    });

    test('text sorts in binary (code point) order, punctuation included', async () => {
      const hostnames = ['ab.example.org', 'a.example.org', 'a-b.example.org', 'a0.example.org', 'aa.example.org', 'a_b.example.org'];
      await store.write(async (r) => {
        for (const h of hostnames) await r.aop.upsertAssociation(assoc(h, z2.id, uuid(4)));
      });
      const listed = await store.read((r) => r.aop.listAssociations(z2.id, undefined, { page: 1, perPage: 50 }));
      assert.deepEqual(listed.items.map((a) => a.hostname), [...hostnames].sort());
    });

    test('versions: every committed change of a zone\'s AOP data changes that zone\'s version only; tenancy changes the tenancy version; a failed write changes nothing', async () => {
      const start = await store.versions(z1.id);
      const otherZone = (await store.versions(z2.id)).zone;
      assert.equal((await store.versions(null)).zone, -1);
      assert.equal((await store.versions(hex(77))).zone, -1, 'an unknown zone');
      // Probes made together get the same answer.
      const together = await Promise.all([store.versions(z1.id), store.versions(z2.id), store.versions(z1.id)]);
      assert.deepEqual(together, [start, { tenancy: start.tenancy, zone: otherZone }, start]);

      let last = start;
      const changed = async (what: string) => {
        const now = await store.versions(z1.id);
        assert.notEqual(now.zone, last.zone, what);
        assert.equal(now.tenancy, last.tenancy, `${what}: not a tenancy change`);
        assert.equal((await store.versions(z2.id)).zone, otherZone, `${what}: another zone is untouched`);
        last = now;
      };
      await store.write((r) => r.aop.upsertAssociation(assoc('ver1.example.com', z1.id, uuid(1))));
      await changed('association inserted');
      await store.write((r) => r.aop.upsertAssociation(assoc('ver1.example.com', z1.id, uuid(1), { status: 'active' })));
      await changed('association updated');
      await store.write((r) => r.aop.upsertAssociations([assoc('ver2.example.com', z1.id, uuid(1)), assoc('ver3.example.com', z1.id, uuid(1))]));
      await changed('associations upserted in bulk');
      await store.write((r) => r.aop.upsertAssociations([assoc('ver2.example.com', z1.id, uuid(1), { enabled: false }), assoc('ver3.example.com', z1.id, uuid(1), { enabled: false })]));
      await changed('associations updated in bulk');
      await store.write((r) => r.aop.upsertAssociations([assoc('ver3.example.com', z1.id, uuid(1)), assoc('ver5.example.com', z1.id, uuid(1))]));
      await changed('one association updated and one inserted by one statement');
      await store.write((r) => r.aop.insertCertificate(cert(90, z1.id, 'hostname', { fingerprintSha256: 'fp-versions' })));
      await changed('certificate inserted');
      await store.write((r) => r.aop.updateCertificate(cert(90, z1.id, 'hostname', { fingerprintSha256: 'fp-versions', status: 'active' })));
      await changed('certificate updated');
      await store.write(async (r) => {
        for (const h of ['ver1', 'ver2', 'ver3', 'ver5']) await r.aop.purgeAssociation(z1.id, `${h}.example.com`);
      });
      await changed('associations purged');
      await store.write((r) => r.aop.purgeCertificate(uuid(90)));
      await changed('certificate purged');

      await assert.rejects(
        store.write(async (r) => {
          await r.aop.upsertAssociation(assoc('ver4.example.com', z1.id, uuid(1)));
          throw new Error('rolled back');
        }),
      );
      assert.deepEqual(await store.versions(z1.id), last, 'a rolled-back write changes no version');

      await store.write((r) => r.tenancy.insertAccount({ id: hex(78), name: 'versions', createdAt: T0 }));
      const afterTenancy = await store.versions(z1.id);
      assert.notEqual(afterTenancy.tenancy, last.tenancy);
      assert.equal(afterTenancy.zone, last.zone);
    });
  });
}

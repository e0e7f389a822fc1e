/**
 * Copies one installation into another store (SQLite → PostgreSQL for a team that outgrows one machine). Works only
 * through the storage ports, so it is dialect-neutral. The target must be empty; everything is written in one
 * transaction, so a failed copy leaves the target empty. Sealed private keys are copied as they are: start the
 * target with the same master key.
 */
import type { Store } from '../domain/ports.js';
import type { Zone } from '../domain/model.js';

export interface CopyReport {
  accounts: number;
  zones: number;
  users: number;
  tokens: number;
  aop_certificates: number;
  associations: number;
  access_certificates: number;
  access_settings: number;
  edge_hostnames: number;
  edge_nodes: number;
  config_version: number;
}

export class CopyError extends Error {
  override readonly name = 'CopyError';
}

const ALL = { page: 1, perPage: 1_000_000_000 };

export async function copyStore(from: Store, to: Store): Promise<CopyReport> {
  if ((await to.read((r) => r.tenancy.listAccounts())).length > 0) {
    throw new CopyError('the target database is not empty (it has accounts); copy into an empty database');
  }
  // Read a consistent picture of the source: its writes are queued behind this transaction.
  const snapshot = await from.write(async (r) => {
    const accounts = await r.tenancy.listAccounts();
    const zones: Zone[] = (await r.tenancy.listZones({}, ALL)).items;
    const users = await r.tenancy.listUsers();
    const memberships = await Promise.all(users.map(async (u) => ({ user: u.id, accounts: await r.tenancy.listMemberships(u.id) })));
    const tokens = await r.tenancy.listTokens();
    const meta = await r.tenancy.listMeta();
    const certs = [];
    for (let after = ''; ; ) {
      const page = await r.aop.listCertificatesAfter(after, 1000);
      if (page.length === 0) break;
      certs.push(...page);
      after = page[page.length - 1].id;
    }
    const associations = [];
    const accessCerts = [];
    const settings = [];
    const rollouts = [];
    const scopes = [
      ...accounts.map((a) => ({ type: 'account' as const, id: a.id })),
      ...zones.map((z) => ({ type: 'zone' as const, id: z.id })),
    ];
    for (const z of zones) associations.push(...(await r.aop.listAssociations(z.id, undefined, ALL)).items);
    for (const s of scopes) {
      accessCerts.push(...(await r.access.listCertificates(s.type, s.id, ALL)).items);
      settings.push(...(await r.access.listSettings(s.type, s.id)));
      const rollout = await r.access.getSettingsRollout(s.type, s.id);
      if (rollout) rollouts.push(rollout);
    }
    const edgeHostnames = await r.edge.listHostnames();
    const edgeNodes = await r.edge.listNodes();
    const version = await r.currentVersion();
    return { accounts, zones, users, memberships, tokens, meta, certs, associations, accessCerts, settings, rollouts, edgeHostnames, edgeNodes, version };
  });

  await to.write(async (r) => {
    if ((await r.tenancy.listAccounts()).length > 0) throw new CopyError('the target database is not empty');
    for (const a of snapshot.accounts) await r.tenancy.insertAccount(a);
    for (const z of snapshot.zones) await r.tenancy.insertZone(z);
    for (const u of snapshot.users) await r.tenancy.insertUser(u);
    for (const m of snapshot.memberships) for (const a of m.accounts) await r.tenancy.addMembership(a, m.user);
    for (const t of snapshot.tokens) await r.tenancy.insertToken(t);
    for (const [k, v] of snapshot.meta) await r.tenancy.setMeta(k, v);
    for (const c of snapshot.certs) await r.aop.insertCertificate(c);
    // A PUT's bulk statement, a thousand rows at a time (one round trip each on PostgreSQL, not one a row).
    for (let i = 0; i < snapshot.associations.length; i += 1000) await r.aop.upsertAssociations(snapshot.associations.slice(i, i + 1000));
    for (const c of snapshot.accessCerts) await r.access.insertCertificate(c);
    for (const s of snapshot.settings) await r.access.upsertSetting(s);
    for (const ro of snapshot.rollouts) await r.access.putSettingsRollout(ro);
    for (const h of snapshot.edgeHostnames) await r.edge.upsertHostname(h);
    // Edge nodes keep their credentials; after the move they start again from a full snapshot.
    for (const n of snapshot.edgeNodes) await r.edge.insertNode({ ...n, ackedVersion: 0, lastSeenAt: null });
    await r.advanceVersionTo(snapshot.version);
  });

  return {
    accounts: snapshot.accounts.length,
    zones: snapshot.zones.length,
    users: snapshot.users.length,
    tokens: snapshot.tokens.length,
    aop_certificates: snapshot.certs.length,
    associations: snapshot.associations.length,
    access_certificates: snapshot.accessCerts.length,
    access_settings: snapshot.settings.length,
    edge_hostnames: snapshot.edgeHostnames.length,
    edge_nodes: snapshot.edgeNodes.length,
    config_version: snapshot.version,
  };
}

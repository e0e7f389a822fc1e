/**
 * The data plane's side of the control plane: hostnames the edge serves, edge nodes and their credentials, the
 * configuration feed (full snapshots and deltas from the change log) and acknowledgements.
 *
 * The feed never carries a private key in clear: keys travel sealed, exactly as stored, and an edge opens them with
 * the installation's master key. A feed response therefore reveals nothing to whoever reads it without that key.
 */
import { randomBytes } from 'node:crypto';
import { PkiError, keyMatchesCertificate, parseCertificates, parsePrivateKey } from '../pki/index.js';
import { DomainError } from './errors.js';
import { isSubdomainOrEqual } from './hostnames.js';
import type { AccessCertificate, AccessHostnameSetting, AopCertificate, EdgeFailure, EdgeHostname, EdgeNode, Zone } from './model.js';
import type { Clock, Ids, Repos, Sealer, Store } from './ports.js';
import { bumpVersion, owningZone, requireHostname } from './shared.js';
import { hashSecret } from './tenancy.js';

/** Record id under which an edge hostname's server key is sealed. */
export const serverKeyRecordId = (hostname: string) => `edge-hostname:${hostname}`;

/** One hostname as an edge receives it (wire format of the feed). */
export interface FeedHostname {
  hostname: string;
  zone_id: string;
  origin: { address: string; port: number; tls: boolean; sni: string | null; ca_pem: string | null };
  server_certificate: { cert_pem: string; key_sealed: string; record_id: string };
  access_cas: { id: string; pem: string }[];
  forward_client_certificate: boolean;
  /** AOP: the effective client certificate for origin connections (null = none). */
  origin_client_certificate: { id: string; cert_pem: string; key_sealed: string; record_id: string } | null;
}

export interface FeedResponse {
  version: number;
  /** true: `hostnames` is the whole configuration; false: a delta (`hostnames` upserted, `remove` removed). */
  full: boolean;
  hostnames: FeedHostname[];
  remove: string[];
}

export interface EdgeHostnameInput {
  hostname: string;
  origin: { address: string; port: number; tls: boolean; sni?: string | null; caPem?: string | null };
  certificatePem: string;
  keyPem: string;
}

const EDGE_SECRET_RE = /^cpe_[A-Za-z0-9_-]{43}$/;

const LIVE: AopCertificate['status'][] = ['initializing', 'pending_deployment', 'active', 'deployment_timed_out'];

export type EdgeService = ReturnType<typeof createEdgeService>;

export function createEdgeService(deps: { store: Store; clock: Clock; ids: Ids; sealer: Sealer }) {
  const { store, clock, ids, sealer } = deps;

  /** Everything an edge needs to serve one hostname, from the current state. */
  /** Per-feed memo of Access settings by scope: a zone's settings are read once, not once per hostname. */
  type SettingsMemo = Map<string, Promise<AccessHostnameSetting[]>>;
  const settingsOf = (r: Repos, memo: SettingsMemo, scopeType: 'zone' | 'account', scopeId: string) => {
    const key = `${scopeType}/${scopeId}`;
    let p = memo.get(key);
    if (!p) memo.set(key, (p = r.access.listSettings(scopeType, scopeId)));
    return p;
  };

  async function hostnameConfig(
    r: Repos,
    h: EdgeHostname,
    zone: Zone,
    accessCerts: AccessCertificate[],
    settings: SettingsMemo,
  ): Promise<FeedHostname> {
    // Access: CAs associated with this hostname, account-scoped or scoped to its zone.
    const cas = accessCerts.filter(
      (c) =>
        c.associatedHostnames.includes(h.hostname) &&
        ((c.scopeType === 'account' && c.scopeId === zone.accountId) || (c.scopeType === 'zone' && c.scopeId === zone.id)),
    );
    const zoneSetting = (await settingsOf(r, settings, 'zone', zone.id)).find((s) => s.hostname === h.hostname);
    const accountSetting = (await settingsOf(r, settings, 'account', zone.accountId)).find((s) => s.hostname === h.hostname);
    const forwarding = (zoneSetting ?? accountSetting)?.clientCertificateForwarding ?? false;

    // AOP precedence: hostname association (true pins, false suppresses) > zone-level > none.
    let client: AopCertificate | null = null;
    const assoc = await r.aop.getAssociation(zone.id, h.hostname);
    const assocLive = assoc && assoc.enabled !== null && assoc.status !== 'pending_deletion' && assoc.status !== 'deleted';
    if (assocLive && assoc.enabled === true) {
      const cert = await r.aop.getCertificate(zone.id, 'hostname', assoc.certId);
      client = cert && LIVE.includes(cert.status) ? cert : null;
    } else if (!assocLive && zone.aopEnabled) {
      // "The most recently deployed certificate is the one used": the active one whose deployment finished last.
      const active = (await r.aop.listCertificates(zone.id, 'zone', ['deleted'])).filter((c) => c.status === 'active');
      active.sort((a, b) => b.statusChangedAt.getTime() - a.statusChangedAt.getTime());
      client = active[0] ?? null;
    }
    return {
      hostname: h.hostname,
      zone_id: zone.id,
      origin: { address: h.originAddress, port: h.originPort, tls: h.originTls, sni: h.originSni, ca_pem: h.originCaPem },
      server_certificate: { cert_pem: h.serverCertificate, key_sealed: h.serverKeySealed, record_id: serverKeyRecordId(h.hostname) },
      access_cas: cas.map((c) => ({ id: c.id, pem: c.certificate })),
      forward_client_certificate: forwarding,
      origin_client_certificate: client
        ? { id: client.id, cert_pem: client.certificate, key_sealed: client.privateKeySealed, record_id: client.id }
        : null,
    };
  }

  async function configsFor(r: Repos, hostnames: EdgeHostname[]): Promise<FeedHostname[]> {
    const zones = new Map<string, Zone | null>();
    const access = new Map<string, AccessCertificate[]>();
    const settings: SettingsMemo = new Map();
    const out: FeedHostname[] = [];
    for (const h of hostnames) {
      if (!zones.has(h.zoneId)) zones.set(h.zoneId, await r.tenancy.getZone(h.zoneId));
      const zone = zones.get(h.zoneId);
      if (!zone) continue;
      if (!access.has(zone.accountId)) {
        const all = [
          ...(await r.access.listCertificates('account', zone.accountId, { page: 1, perPage: 100_000 })).items,
        ];
        const zonesOfAccount = await r.tenancy.listZones({ accountIds: [zone.accountId] }, { page: 1, perPage: 100_000 });
        for (const z of zonesOfAccount.items) all.push(...(await r.access.listCertificates('zone', z.id, { page: 1, perPage: 100_000 })).items);
        access.set(zone.accountId, all);
      }
      out.push(await hostnameConfig(r, h, zone, access.get(zone.accountId)!, settings));
    }
    return out;
  }

  /**
   * The feed: a full snapshot when the edge has nothing yet (`after` null) or claims a version this database never
   * reached (a restored backup), else the delta since `after` (empty when it is current).
   */
  async function feed(after: number | null): Promise<FeedResponse> {
    // One snapshot: the version and every hostname's state as of the same commit (never half of a bulk PUT).
    return store.read(async (r) => {
      const version = await r.currentVersion();
      if (after === null || after > version) {
        return { version, full: true, hostnames: await configsFor(r, await r.edge.listHostnames()), remove: [] };
      }
      if (after === version) return { version, full: false, hostnames: [], remove: [] };
      const changes = await r.edge.listChanges(after, version);
      const affected = new Set<string>();
      const removed = new Set<string>();
      for (const c of changes) {
        if (c.scopeType === 'hostname') affected.add(c.scopeId);
        else if (c.scopeType === 'zone') for (const h of await r.edge.listHostnamesOfZone(c.scopeId)) affected.add(h.hostname);
        else {
          const zones = await r.tenancy.listZones({ accountIds: [c.scopeId] }, { page: 1, perPage: 100_000 });
          for (const z of zones.items) for (const h of await r.edge.listHostnamesOfZone(z.id)) affected.add(h.hostname);
        }
      }
      const present: EdgeHostname[] = [];
      for (const name of affected) {
        const h = await r.edge.getHostname(name);
        if (h) present.push(h);
        else removed.add(name);
      }
      return { version, full: false, hostnames: await configsFor(r, present), remove: [...removed].sort() };
    }, { snapshot: true });
  }

  return {
    feed,

    async addHostname(input: EdgeHostnameInput): Promise<EdgeHostname> {
      const hostname = requireHostname(input.hostname);
      const o = input.origin;
      if (!o.address || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
        throw new DomainError('validation', 'origin must be address:port with a port from 1 to 65535');
      }
      let chain;
      let key;
      try {
        chain = parseCertificates(input.certificatePem);
        key = parsePrivateKey(input.keyPem);
      } catch (e) {
        if (e instanceof PkiError) throw new DomainError('validation', `server certificate or key: ${e.message}`);
        throw e;
      }
      if (!keyMatchesCertificate(key, chain[0])) throw new DomainError('validation', 'the server key does not match the certificate');
      if (o.caPem) {
        try {
          parseCertificates(o.caPem);
        } catch {
          throw new DomainError('validation', 'origin CA bundle: unable to parse certificate');
        }
      }
      return store.write(async (r) => {
        const zone = await owningZone(r, hostname);
        if (!zone || !isSubdomainOrEqual(hostname, zone.name)) {
          throw new DomainError('validation', `no zone owns ${hostname}; create the zone first`);
        }
        await r.locks.zone(zone.id);
        const now = clock.now();
        const existing = await r.edge.getHostname(hostname);
        const h: EdgeHostname = {
          hostname,
          zoneId: zone.id,
          originAddress: o.address,
          originPort: o.port,
          originTls: o.tls,
          originSni: o.sni ?? null,
          originCaPem: o.caPem ?? null,
          serverCertificate: chain.map((c) => c.pem).join(''),
          serverKeySealed: sealer.seal(serverKeyRecordId(hostname), input.keyPem),
          createdAt: existing?.createdAt ?? now,
          updatedAt: now,
          version: await bumpVersion(r, 'hostname', hostname),
        };
        await r.edge.upsertHostname(h);
        return h;
      });
    },

    async removeHostname(input: string): Promise<void> {
      const hostname = requireHostname(input);
      await store.write(async (r) => {
        const h = await r.edge.getHostname(hostname);
        if (!h) throw new DomainError('validation', `the edge does not serve ${hostname}`);
        await r.locks.zone(h.zoneId);
        await r.edge.deleteHostname(hostname);
        await bumpVersion(r, 'hostname', hostname);
      });
    },

    listHostnames: () => store.read((r) => r.edge.listHostnames()),

    /** Registers an edge node; its credential is returned once and stored only as a hash. */
    async registerNode(name: string): Promise<{ node: EdgeNode; credential: string }> {
      const credential = `cpe_${randomBytes(32).toString('base64url')}`;
      const node: EdgeNode = {
        id: ids.hex32(),
        name,
        secretHash: hashSecret(credential),
        registeredAt: clock.now(),
        lastSeenAt: null,
        ackedVersion: 0,
        revokedAt: null,
        healthy: true,
        healthReason: null,
      };
      await store.write((r) => r.edge.insertNode(node));
      return { node, credential };
    },

    async revokeNode(id: string): Promise<EdgeNode> {
      return store.write(async (r) => {
        const node = await r.edge.getNode(id);
        if (!node) throw new DomainError('validation', `no edge node ${id}`);
        const next = { ...node, revokedAt: node.revokedAt ?? clock.now() };
        await r.edge.updateNode(next);
        return next;
      });
    },

    listNodes: () => store.read((r) => r.edge.listNodes()),
    listFailures: (edgeId: string) => store.read((r) => r.edge.listFailures(edgeId)),

    /** The node behind a credential (null when unknown or revoked). */
    async authenticateNode(credential: string): Promise<EdgeNode | null> {
      if (!EDGE_SECRET_RE.test(credential)) return null;
      const node = await store.read((r) => r.edge.getNodeBySecretHash(hashSecret(credential)));
      return node && !node.revokedAt ? node : null;
    },

    /** Heartbeat: any feed request counts. */
    async seen(nodeId: string): Promise<void> {
      await store.write(async (r) => {
        const node = await r.edge.getNode(nodeId);
        if (node) await r.edge.updateNode({ ...node, lastSeenAt: clock.now() });
      });
    },

    /**
     * An edge reports whether its data plane serves (HAProxy died and is being restarted, say). An edge that does not
     * serve is not live: changes do not wait for it, and it must acknowledge again once it serves.
     */
    async reportHealth(nodeId: string, healthy: boolean, reason: string | null): Promise<EdgeNode> {
      return store.write(async (r) => {
        const node = await r.edge.getNode(nodeId);
        if (!node) throw new DomainError('validation', 'unknown edge node');
        const clean = reason === null || healthy ? null : reason.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 500);
        const next = { ...node, healthy, healthReason: clean, lastSeenAt: clock.now() };
        await r.edge.updateNode(next);
        return next;
      });
    },

    /** An edge reports the version now live on it, with what it could not apply. */
    async acknowledge(nodeId: string, version: number, failed: { hostname: string; reason: string }[]): Promise<EdgeNode> {
      return store.write(async (r) => {
        const node = await r.edge.getNode(nodeId);
        if (!node) throw new DomainError('validation', 'unknown edge node');
        if (version > (await r.currentVersion())) throw new DomainError('validation', 'cannot acknowledge a future version');
        const clean = (s: string) => s.replace(/[\u0000-\u001f\u007f]/g, ' ');
        const failures: EdgeFailure[] = failed.map((f) => ({ edgeId: node.id, version, hostname: clean(f.hostname).slice(0, 255), reason: clean(f.reason).slice(0, 500) }));
        await r.edge.putFailures(node.id, version, failures);
        const next = { ...node, ackedVersion: Math.max(node.ackedVersion, version), lastSeenAt: clock.now() };
        await r.edge.updateNode(next);
        return next;
      });
    },
  };
}

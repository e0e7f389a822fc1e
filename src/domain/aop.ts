/**
 * Authenticated Origin Pulls: zone-level certificates, hostname certificates, the zone setting and per-hostname
 * associations. Every rule lives here; the API only translates HTTP to these calls.
 */
import { PkiError, parseCertificates, privateKeyMatches, type ParsedCertificate } from '../pki/index.js';
import type { DomainConfig } from './config.js';
import { DomainError, type DomainErrorKind } from './errors.js';
import { isSubdomainOrEqual, parentDomains } from './hostnames.js';
import { DEPLOYING } from './lifecycle.js';
import type {
  AopCertificate,
  AopCertificateKind,
  HostnameAssociation,
  LifecycleStatus,
  Page,
  PageRequest,
  Zone,
} from './model.js';
import type { Clock, Ids, Repos, Sealer, Store } from './ports.js';
import { bumpVersion, isUuid, owningZone, requireHostname } from './shared.js';

export interface UploadInput {
  certificate: string;
  private_key: string;
}

export interface AssociationInput {
  hostname?: unknown;
  cert_id?: unknown;
  enabled?: unknown;
}

/** An association with the certificate it points at (when that certificate still exists). */
export interface AssociationView {
  association: HostnameAssociation;
  certificate: AopCertificate | null;
}

const GONE: LifecycleStatus[] = ['pending_deletion', 'deleted'];
/** A PUT that repeats a timed-out association retries it (the deployer never moves these on by itself). */
const TIMED_OUT: LifecycleStatus[] = ['deployment_timed_out', 'deletion_timed_out'];
const ENTRY_FIELDS = new Set(['hostname', 'cert_id', 'enabled']);

const KEY_ERRORS: Record<string, DomainErrorKind> = {
  key_empty: 'aop.key_missing',
  key_unparseable: 'aop.key_unparseable',
  key_encrypted: 'aop.key_encrypted',
  key_unsupported: 'aop.key_unsupported',
};

export type AopService = ReturnType<typeof createAopService>;

export function createAopService(deps: {
  store: Store;
  clock: Clock;
  ids: Ids;
  sealer: Sealer;
  config: DomainConfig;
}) {
  const { store, clock, ids, sealer, config } = deps;
  const notFound = (kind: AopCertificateKind): DomainErrorKind =>
    kind === 'zone' ? 'aop.zone_cert_not_found' : 'aop.hostname_cert_not_found';

  /** Parses and checks an upload outside any transaction (CPU work only). */
  function parseUpload(input: UploadInput): { chain: ParsedCertificate[]; pem: string } {
    let chain: ParsedCertificate[];
    try {
      chain = parseCertificates(input.certificate);
    } catch (e) {
      if (e instanceof PkiError) throw new DomainError('aop.cert_unparseable', undefined, '/certificate');
      throw e;
    }
    const leaf = chain[0];
    if (leaf.isCA) throw new DomainError('aop.missing_leaf', undefined, '/certificate');
    let matches;
    try {
      matches = privateKeyMatches(input.private_key, leaf);
    } catch (e) {
      if (e instanceof PkiError) throw new DomainError(KEY_ERRORS[e.kind] ?? 'aop.key_unparseable', undefined, '/private_key');
      throw e;
    }
    if (!matches) throw new DomainError('aop.key_mismatch', undefined, '/private_key');
    return { chain, pem: chain.map((c) => c.pem).join('') };
  }

  async function loadCertificate(r: Repos, zone: Zone, kind: AopCertificateKind, id: string): Promise<AopCertificate> {
    const normalized = id.toLowerCase();
    if (!isUuid(normalized)) throw new DomainError('aop.cert_id_malformed');
    const cert = await r.aop.getCertificate(zone.id, kind, normalized);
    if (!cert) throw new DomainError(notFound(kind));
    return cert;
  }

  async function upload(zone: Zone, kind: AopCertificateKind, input: UploadInput): Promise<AopCertificate> {
    const { chain, pem } = parseUpload(input);
    const leaf = chain[0];
    return store.write(async (r) => {
      await r.locks.zone(zone.id);
      const now = clock.now();
      const existing = await r.aop.getCertificateByFingerprint(zone.id, kind, leaf.fingerprintSha256);
      if (existing && existing.status !== 'deleted') throw new DomainError('aop.cert_duplicate');
      const limit = kind === 'zone' ? config.limits.zoneCertificatesPerZone : config.limits.hostnameCertificatesPerZone;
      if ((await r.aop.countCertificates(zone.id, kind, ['deleted'])) >= limit) {
        throw new DomainError(kind === 'zone' ? 'aop.zone_cert_limit' : 'aop.hostname_cert_limit', String(limit));
      }
      // A deleted tombstone of the same certificate comes back to life under its old id (observed behaviour).
      const id = existing?.id ?? ids.uuid();
      const cert: AopCertificate = {
        id,
        zoneId: zone.id,
        kind,
        certificate: pem,
        privateKeySealed: sealer.seal(id, input.private_key),
        fingerprintSha256: leaf.fingerprintSha256,
        issuer: leaf.issuer,
        serialNumber: leaf.serialNumber,
        signature: leaf.signature,
        expiresOn: leaf.notAfter,
        uploadedOn: now,
        updatedAt: now,
        status: 'initializing',
        statusChangedAt: now,
        version: await bumpVersion(r, 'zone', zone.id),
      };
      if (existing) await r.aop.updateCertificate(cert);
      else await r.aop.insertCertificate(cert);
      return cert;
    });
  }

  async function remove(zone: Zone, kind: AopCertificateKind, id: string): Promise<AopCertificate> {
    return store.write(async (r) => {
      await r.locks.zone(zone.id);
      const cert = await loadCertificate(r, zone, kind, id);
      if (DEPLOYING.includes(cert.status)) throw new DomainError('aop.cert_pending_deployment');
      if (cert.status === 'pending_deletion') throw new DomainError('aop.cert_pending_deletion');
      if (cert.status === 'deleted') throw new DomainError('aop.cert_already_deleted');
      if (kind === 'hostname' && (await r.aop.countLiveAssociations(cert.id)) > 0) {
        throw new DomainError('aop.cert_in_use');
      }
      const now = clock.now();
      const next: AopCertificate = {
        ...cert,
        status: 'pending_deletion',
        statusChangedAt: now,
        updatedAt: now,
        version: await bumpVersion(r, 'zone', zone.id),
      };
      await r.aop.updateCertificate(next);
      return next;
    });
  }

  function normalizeEntry(zone: Zone, e: AssociationInput, i: number) {
    const at = `/config/${i}`;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) {
      throw new DomainError('validation', 'each config entry must be an object', at);
    }
    for (const key of Object.keys(e)) {
      if (!ENTRY_FIELDS.has(key)) throw new DomainError('validation', `unknown field "${key}"`, `${at}/${key}`);
    }
    if (e.cert_id === undefined || e.cert_id === null || e.cert_id === '') {
      throw new DomainError('aop.cert_id_required', undefined, `${at}/cert_id`);
    }
    if (typeof e.cert_id !== 'string') throw new DomainError('aop.cert_id_invalid', undefined, `${at}/cert_id`);
    if (e.hostname === undefined || e.hostname === null || e.hostname === '') {
      throw new DomainError('aop.hostname_required', undefined, `${at}/hostname`);
    }
    const hostname = requireHostname(e.hostname, `${at}/hostname`);
    if (!isSubdomainOrEqual(hostname, zone.name)) {
      throw new DomainError('aop.hostname_not_in_zone', hostname, `${at}/hostname`);
    }
    const enabled = e.enabled === undefined ? null : e.enabled;
    if (enabled !== null && typeof enabled !== 'boolean') {
      throw new DomainError('aop.enabled_invalid', undefined, `${at}/enabled`);
    }
    return { hostname, certId: e.cert_id.toLowerCase(), enabled: enabled as boolean | null };
  }

  /**
   * Bulk upsert keyed by hostname. Every entry is validated (and every limit checked against the state the whole
   * batch would produce) before anything is written; then all entries are written in one transaction.
   */
  async function putAssociations(zone: Zone, entries: AssociationInput[]): Promise<AssociationView[]> {
    const wanted = entries.map((e, i) => normalizeEntry(zone, e, i));
    const seen = new Set<string>();
    wanted.forEach((w, i) => {
      if (seen.has(w.hostname)) {
        throw new DomainError('aop.hostname_duplicate_in_request', w.hostname, `/config/${i}/hostname`);
      }
      seen.add(w.hostname);
    });

    return store.write(async (r) => {
      await r.locks.zone(zone.id);
      const now = clock.now();
      const certs = new Map<string, AopCertificate>();
      // Every zone any hostname could belong to, in one read (a PUT of 100 on PostgreSQL is then a handful of round
      // trips, not hundreds): names that are no zone are remembered as such.
      const zonesByName = new Map<string, Zone | null>();
      const candidates = [...new Set(wanted.flatMap((w) => parentDomains(w.hostname)))];
      for (const name of candidates) zonesByName.set(name, null);
      for (const z of await r.tenancy.getZonesByNames(candidates)) zonesByName.set(z.name, z);
      for (const [i, w] of wanted.entries()) {
        // With nested zones (example.com and sub.example.com), a hostname belongs to the most specific one.
        if ((await owningZone(r, w.hostname, zonesByName))?.id !== zone.id) {
          throw new DomainError('aop.hostname_not_in_zone', w.hostname, `/config/${i}/hostname`);
        }
        if (certs.has(w.certId)) continue;
        const cert = isUuid(w.certId) ? await r.aop.getCertificate(zone.id, 'hostname', w.certId) : null;
        if (!cert || GONE.includes(cert.status)) {
          throw new DomainError('aop.cert_id_invalid', undefined, `/config/${i}/cert_id`);
        }
        certs.set(w.certId, cert);
      }

      // Net change in live associations per certificate, to enforce the limit on the batch as a whole.
      const delta = new Map<string, number>();
      const bump = (id: string, n: number) => delta.set(id, (delta.get(id) ?? 0) + n);
      const current = new Map<string, HostnameAssociation>();
      for (const a of await r.aop.getAssociations(zone.id, wanted.map((w) => w.hostname))) current.set(a.hostname, a);
      for (const w of wanted) {
        const cur = current.get(w.hostname) ?? null;
        const wasLive = cur !== null && cur.enabled !== null && !GONE.includes(cur.status);
        if (wasLive) bump(cur.certId, -1);
        if (w.enabled !== null) bump(w.certId, +1);
      }
      for (const [certId, d] of delta) {
        if (d <= 0) continue;
        const count = (await r.aop.countLiveAssociations(certId)) + d;
        if (count > config.limits.associationsPerCertificate) {
          throw new DomainError('aop.association_limit', String(config.limits.associationsPerCertificate));
        }
      }

      let version: number | undefined;
      const views: AssociationView[] = [];
      const writes: HostnameAssociation[] = [];
      for (const w of wanted) {
        const cur = current.get(w.hostname) ?? null;
        const cert = certs.get(w.certId)!;
        const unchanged =
          cur !== null &&
          cur.certId === w.certId &&
          cur.enabled === w.enabled &&
          !GONE.includes(cur.status) &&
          !TIMED_OUT.includes(cur.status);
        if (unchanged) {
          views.push({ association: cur, certificate: cert });
          continue;
        }
        const voided = cur !== null && cur.enabled === null && cur.status !== 'deletion_timed_out';
        if (w.enabled === null && (cur === null || GONE.includes(cur.status) || voided)) {
          // Voiding something that is not associated: nothing to deploy; echo the (absent) association.
          const shown: HostnameAssociation = cur ?? {
            zoneId: zone.id,
            hostname: w.hostname,
            certId: w.certId,
            enabled: null,
            status: 'deleted',
            statusChangedAt: now,
            version: 0,
            createdAt: now,
            updatedAt: now,
          };
          views.push({ association: { ...shown, certId: w.certId, enabled: null }, certificate: cert });
          continue;
        }
        version ??= await bumpVersion(r, 'zone', zone.id);
        const next: HostnameAssociation = {
          zoneId: zone.id,
          hostname: w.hostname,
          certId: w.certId,
          enabled: w.enabled,
          status: w.enabled === null ? 'pending_deletion' : 'pending_deployment',
          statusChangedAt: now,
          version,
          createdAt: cur && !GONE.includes(cur.status) ? cur.createdAt : now,
          updatedAt: now,
        };
        writes.push(next);
        views.push({ association: next, certificate: cert });
      }
      await r.aop.upsertAssociations(writes);
      return views;
    });
  }

  async function getAssociation(zone: Zone, hostnameInput: string): Promise<AssociationView> {
    const hostname = requireHostname(hostnameInput);
    return store.read(async (r) => {
      const association = await r.aop.getAssociation(zone.id, hostname);
      if (!association) throw new DomainError('aop.association_not_found');
      const certificate = await r.aop.getCertificate(zone.id, 'hostname', association.certId);
      return { association, certificate };
    });
  }

  async function listAssociations(
    zone: Zone,
    statuses: LifecycleStatus[] | undefined,
    page: PageRequest,
  ): Promise<Page<HostnameAssociation>> {
    return store.read((r) => r.aop.listAssociations(zone.id, statuses, page));
  }

  return {
    uploadCertificate: upload,
    deleteCertificate: remove,
    getCertificate: (zone: Zone, kind: AopCertificateKind, id: string) =>
      store.read((r) => loadCertificate(r, zone, kind, id)),
    /** Certificates that are not `deleted` (pending deletion included), newest upload first. */
    listCertificates: (zone: Zone, kind: AopCertificateKind) =>
      store.read((r) => r.aop.listCertificates(zone.id, kind, ['deleted'])),
    getZoneSetting: async (zone: Zone) => ({ enabled: zone.aopEnabled }),
    setZoneSetting: (zone: Zone, enabled: boolean) =>
      store.write(async (r) => {
        await r.locks.zone(zone.id);
        const current = await r.tenancy.getZone(zone.id);
        if (!current) throw new DomainError('zone_not_found');
        if (current.aopEnabled !== enabled) {
          await r.tenancy.updateZone({ ...current, aopEnabled: enabled, modifiedAt: clock.now() });
          await bumpVersion(r, 'zone', zone.id);
        }
        return { enabled };
      }),
    putAssociations,
    getAssociation,
    listAssociations,
  };
}

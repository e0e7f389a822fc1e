/**
 * Access mTLS: CA certificates (account- or zone-scoped) that visitors' client certificates are verified against,
 * and per-hostname settings (china_network, client_certificate_forwarding).
 */
import { PkiError, parseCertificates, verifyChainOrder } from '../pki/index.js';
import type { DomainConfig } from './config.js';
import { DomainError } from './errors.js';
import { isSubdomainOrEqual } from './hostnames.js';
import type { AccessCertificate, AccessHostnameSetting, AccessScopeType, Page, PageRequest, Zone } from './model.js';
import type { Clock, Ids, Repos, Store } from './ports.js';
import { bumpVersion, isUuid, owningZone, requireHostname } from './shared.js';

/** Who an Access request is for: an account, or one zone of an account. */
export interface AccessScope {
  type: AccessScopeType;
  id: string;
  accountId: string;
  /** The zone, for zone-scoped requests. */
  zone?: Zone;
}

/** Signature algorithms Cloudflare accepts for an mTLS CA (BYO CA requirements). */
export const ACCESS_SIGNATURES = new Set([
  'SHA1WithRSA',
  'SHA256WithRSA',
  'SHA384WithRSA',
  'SHA512WithRSA',
  'ECDSAWithSHA1',
  'ECDSAWithSHA256',
  'ECDSAWithSHA384',
  'ECDSAWithSHA512',
]);

export interface CreateAccessCertificateInput {
  name: string;
  certificate: string;
  associated_hostnames?: unknown[];
}

export interface UpdateAccessCertificateInput {
  name?: string;
  associated_hostnames: unknown[];
}

export interface SettingInput {
  hostname: unknown;
  china_network: unknown;
  client_certificate_forwarding: unknown;
}

export type AccessService = ReturnType<typeof createAccessService>;

export function createAccessService(deps: { store: Store; clock: Clock; ids: Ids; config: DomainConfig }) {
  const { store, clock, ids, config } = deps;

  function invalid(detail: string, pointer?: string): DomainError {
    return new DomainError('access.invalid_request', detail, pointer);
  }

  function checkName(name: unknown, pointer = '/name'): string {
    if (typeof name !== 'string' || name.trim() === '') throw invalid('name must be a non-empty string', pointer);
    if (name.length > 255) throw invalid('name must be at most 255 characters', pointer);
    // Control characters (NUL among them, which PostgreSQL text cannot hold) have no place in a name.
    if (/[\u0000-\u001f\u007f]/.test(name)) throw invalid('name must not contain control characters', pointer);
    return name;
  }

  /** Every hostname must be a valid hostname inside the scope: the zone, or one of the account's zones. */
  async function checkHostnames(r: Repos, scope: AccessScope, input: unknown[], field: string): Promise<string[]> {
    const out: string[] = [];
    for (const [i, raw] of input.entries()) {
      const pointer = `/${field}/${i}`;
      let hostname: string;
      try {
        hostname = requireHostname(raw, pointer);
      } catch (e) {
        if (e instanceof DomainError) throw invalid(`invalid hostname: ${e.detail}`, pointer);
        throw e;
      }
      await checkInScope(r, scope, hostname, pointer);
      if (!out.includes(hostname)) out.push(hostname);
    }
    return out;
  }

  async function checkInScope(r: Repos, scope: AccessScope, hostname: string, pointer: string): Promise<Zone> {
    if (scope.type === 'zone') {
      // With nested zones (example.com and sub.example.com), a hostname belongs to the most specific one (as in AOP).
      if (
        !scope.zone ||
        !isSubdomainOrEqual(hostname, scope.zone.name) ||
        (await owningZone(r, hostname))?.id !== scope.zone.id
      ) {
        throw new DomainError('access.hostnames_not_in_domain', hostname, pointer);
      }
      return scope.zone;
    }
    const zone = await owningZone(r, hostname);
    if (!zone || zone.accountId !== scope.accountId) {
      throw new DomainError('access.hostnames_not_in_domain', hostname, pointer);
    }
    return zone;
  }

  async function load(r: Repos, scope: AccessScope, id: string): Promise<AccessCertificate> {
    const cert = isUuid(id) ? await r.access.getCertificate(scope.type, scope.id, id) : null;
    if (!cert) throw new DomainError('access.cert_not_found');
    return cert;
  }

  async function create(scope: AccessScope, input: CreateAccessCertificateInput): Promise<AccessCertificate> {
    const name = checkName(input.name);
    let chain;
    try {
      chain = parseCertificates(input.certificate);
    } catch (e) {
      if (e instanceof PkiError) throw new DomainError('access.cert_unparseable', undefined, '/certificate');
      throw e;
    }
    for (const cert of chain) {
      if (!cert.isCA) throw new DomainError('access.not_a_ca', undefined, '/certificate');
      if (!ACCESS_SIGNATURES.has(cert.signature)) {
        throw new DomainError('access.signature_unsupported', cert.signature, '/certificate');
      }
    }
    if (!verifyChainOrder(chain)) {
      throw invalid('certificate chain must be ordered from the issuing CA to the root, each signed by the next', '/certificate');
    }
    const first = chain[0];
    return store.write(async (r) => {
      await r.locks.account(scope.accountId);
      const hostnames = await checkHostnames(r, scope, input.associated_hostnames ?? [], 'associated_hostnames');
      if (await r.access.getCertificateByFingerprint(scope.type, scope.id, first.fingerprintSha256)) {
        throw new DomainError('access.cert_duplicate');
      }
      if ((await r.access.countAccountCertificates(scope.accountId)) >= config.limits.accessCertificatesPerAccount) {
        throw new DomainError('access.cert_limit');
      }
      const now = clock.now();
      const cert: AccessCertificate = {
        id: ids.uuid(),
        scopeType: scope.type,
        scopeId: scope.id,
        accountId: scope.accountId,
        name,
        certificate: chain.map((c) => c.pem).join(''),
        fingerprintSha256: first.fingerprintSha256,
        fingerprintMd5: first.fingerprintMd5,
        associatedHostnames: hostnames,
        expiresOn: new Date(Math.min(...chain.map((c) => c.notAfter.getTime()))),
        createdAt: now,
        updatedAt: now,
        version: await bumpVersion(r, 'account', scope.accountId),
      };
      await r.access.insertCertificate(cert);
      return cert;
    });
  }

  async function update(scope: AccessScope, id: string, input: UpdateAccessCertificateInput): Promise<AccessCertificate> {
    const name = input.name === undefined ? undefined : checkName(input.name);
    return store.write(async (r) => {
      await r.locks.account(scope.accountId);
      const cert = await load(r, scope, id);
      const hostnames = await checkHostnames(r, scope, input.associated_hostnames, 'associated_hostnames');
      const next: AccessCertificate = {
        ...cert,
        name: name ?? cert.name,
        associatedHostnames: hostnames,
        updatedAt: clock.now(),
        version: await bumpVersion(r, 'account', scope.accountId),
      };
      await r.access.updateCertificate(next);
      return next;
    });
  }

  async function remove(scope: AccessScope, id: string): Promise<{ id: string }> {
    return store.write(async (r) => {
      await r.locks.account(scope.accountId);
      const cert = await load(r, scope, id);
      if (cert.associatedHostnames.length > 0) throw new DomainError('access.cert_has_hostnames');
      await r.access.deleteCertificate(cert.id);
      await bumpVersion(r, 'account', scope.accountId);
      return { id: cert.id };
    });
  }

  /**
   * Upsert by hostname; hostnames not named are left alone; an entry with both flags false removes the hostname's
   * settings (it no longer appears in the list). Answered while the previous update of the scope is still
   * deploying: 409, as Cloudflare does.
   */
  async function putSettings(scope: AccessScope, entries: SettingInput[]): Promise<AccessHostnameSetting[]> {
    const normalized = entries.map((e, i) => {
      const at = `/settings/${i}`;
      if (typeof e.china_network !== 'boolean') throw invalid('china_network must be a boolean', `${at}/china_network`);
      if (typeof e.client_certificate_forwarding !== 'boolean') {
        throw invalid('client_certificate_forwarding must be a boolean', `${at}/client_certificate_forwarding`);
      }
      let hostname: string;
      try {
        hostname = requireHostname(e.hostname, `${at}/hostname`);
      } catch (err) {
        if (err instanceof DomainError) throw invalid(`invalid hostname: ${err.detail}`, `${at}/hostname`);
        throw err;
      }
      return { hostname, chinaNetwork: e.china_network, forwarding: e.client_certificate_forwarding, at };
    });
    const seen = new Set<string>();
    for (const n of normalized) {
      if (seen.has(n.hostname)) throw invalid(`duplicate hostname ${n.hostname}`, `${n.at}/hostname`);
      seen.add(n.hostname);
    }
    return store.write(async (r) => {
      await r.locks.account(scope.accountId);
      const now = clock.now();
      if (config.fidelity.accessSettingsConflict) {
        const rollout = await r.access.getSettingsRollout(scope.type, scope.id);
        if (rollout && rollout.status === 'pending_deployment') throw new DomainError('access.settings_conflict');
      }
      for (const n of normalized) {
        const zone = await checkInScope(r, scope, n.hostname, `${n.at}/hostname`);
        if (n.chinaNetwork && !zone.chinaNetwork) {
          throw new DomainError('access.china_network_not_enabled', n.hostname, `${n.at}/china_network`);
        }
      }
      const version = await bumpVersion(r, 'account', scope.accountId);
      const result: AccessHostnameSetting[] = [];
      for (const n of normalized) {
        const setting: AccessHostnameSetting = {
          scopeType: scope.type,
          scopeId: scope.id,
          hostname: n.hostname,
          chinaNetwork: n.chinaNetwork,
          clientCertificateForwarding: n.forwarding,
          updatedAt: now,
          version,
        };
        if (!n.chinaNetwork && !n.forwarding) await r.access.deleteSetting(scope.type, scope.id, n.hostname);
        else await r.access.upsertSetting(setting);
        result.push(setting);
      }
      if (normalized.length > 0) {
        await r.access.putSettingsRollout({
          scopeType: scope.type,
          scopeId: scope.id,
          status: 'pending_deployment',
          statusChangedAt: now,
          version,
        });
      }
      return result;
    });
  }

  return {
    createCertificate: create,
    updateCertificate: update,
    deleteCertificate: remove,
    getCertificate: (scope: AccessScope, id: string) => store.read((r) => load(r, scope, id)),
    listCertificates: (scope: AccessScope, page: PageRequest): Promise<Page<AccessCertificate>> =>
      store.read((r) => r.access.listCertificates(scope.type, scope.id, page)),
    listSettings: (scope: AccessScope) => store.read((r) => r.access.listSettings(scope.type, scope.id)),
    putSettings,
  };
}

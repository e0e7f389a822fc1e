/** Domain values → Cloudflare wire JSON. Private keys are never part of any presenter's output. */
import type { AssociationView } from '../domain/aop.js';
import type {
  AccessCertificate,
  AccessHostnameSetting,
  AopCertificate,
  ApiToken,
  HostnameAssociation,
  Zone,
  Account,
} from '../domain/model.js';
import { toIso } from '../util/time.js';

const ts = toIso;

/** Hostname certificate (and the GET/LIST/DELETE shape of zone certificates, which also carry serial_number). */
export const aopCertificate = (c: AopCertificate) => ({
  id: c.id,
  certificate: c.certificate,
  expires_on: ts(c.expiresOn),
  issuer: c.issuer,
  serial_number: c.serialNumber,
  signature: c.signature,
  status: c.status,
  uploaded_on: ts(c.uploadedOn),
});

/** Association as listed by GET /hostnames. */
export const association = (a: HostnameAssociation) => ({
  cert_id: a.certId,
  created_at: ts(a.createdAt),
  enabled: a.enabled,
  hostname: a.hostname,
  status: a.status,
  updated_at: ts(a.updatedAt),
});

/**
 * Association with its certificate, as GET /hostnames/{hostname} and PUT /hostnames answer. One object literal for
 * every case (absent fields are `undefined`, which JSON leaves out): a spread in front of it made V8 build each one
 * slowly and in dictionary mode, 14 % of a PUT of 100 in the profile.
 */
export function associationDetail(v: AssociationView, withId = false) {
  const a = v.association;
  const c = v.certificate;
  return {
    id: withId ? a.certId : undefined,
    cert_id: a.certId,
    cert_status: c?.status ?? 'deleted',
    cert_updated_at: c ? ts(c.updatedAt) : undefined,
    cert_uploaded_on: c ? ts(c.uploadedOn) : undefined,
    certificate: c?.certificate,
    created_at: ts(a.createdAt),
    enabled: a.enabled,
    expires_on: c ? ts(c.expiresOn) : undefined,
    hostname: a.hostname,
    issuer: c?.issuer,
    serial_number: c?.serialNumber,
    signature: c?.signature,
    status: a.status,
    updated_at: ts(a.updatedAt),
  };
}

/** Access CA: the PEM is never returned. */
export const accessCertificate = (c: AccessCertificate) => ({
  id: c.id,
  name: c.name,
  fingerprint: c.fingerprintMd5,
  associated_hostnames: c.associatedHostnames,
  expires_on: ts(c.expiresOn),
  created_at: ts(c.createdAt),
  updated_at: ts(c.updatedAt),
});

export const accessSetting = (s: AccessHostnameSetting) => ({
  china_network: s.chinaNetwork,
  client_certificate_forwarding: s.clientCertificateForwarding,
  hostname: s.hostname,
});

export const zone = (z: Zone, account: Account | null) => ({
  id: z.id,
  name: z.name,
  status: z.status,
  paused: false,
  type: 'full',
  development_mode: 0,
  name_servers: [] as string[],
  original_name_servers: null,
  original_registrar: null,
  original_dnshost: null,
  created_on: ts(z.createdAt),
  modified_on: ts(z.modifiedAt),
  activated_on: ts(z.createdAt),
  meta: { china_network_enabled: z.chinaNetwork },
  owner: { id: null, type: 'user', email: null },
  account: { id: z.accountId, name: account?.name ?? '' },
  permissions: [] as string[],
});

export const tokenVerification = (t: ApiToken) => ({
  id: t.id,
  status: t.status,
  ...(t.notBefore ? { not_before: ts(t.notBefore) } : {}),
  ...(t.expiresOn ? { expires_on: ts(t.expiresOn) } : {}),
});

/**
 * What every data plane checks before it serves a hostname, whatever the engine: the hostname itself, the visitor
 * certificate and key (they must load together), each Access CA (it must parse and load), and how the origin is
 * reached (origin.ts). Both the Node edge and the HAProxy edge use it, so a configuration one refuses the other refuses
 * too, with the same reason.
 */
import { createHash, type X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import { parseCertificates } from '../pki/index.js';
import type { HostnameConfig } from './contract.js';
import { prepareOriginTarget, type OriginTarget } from './node/origin.js';

export interface PreparedHostname {
  hostname: string;
  config: HostnameConfig;
  fingerprint: string;
  secureContext: tls.SecureContext;
  /** Trust-domain key: '' for hostnames without Access CAs, else the sorted CA ids and content hashes. */
  caKey: string;
  caPems: string[];
  anchors: X509Certificate[];
  target: OriginTarget;
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Lowercase, trailing dot removed; null when it cannot be a hostname (a leading `*` label is a wildcard). */
export function normalizeHostname(name: unknown): string | null {
  if (typeof name !== 'string') return null;
  let h = name.trim().toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h.length === 0 || h.length > 253 || !/^(\*|[a-z0-9_-]+)(\.[a-z0-9_-]+)*$/.test(h)) return null;
  return h;
}

/** The hostname named by a Host header: port removed, lowercase, trailing dot removed. */
export function hostFromHeader(value: string | undefined): string | null {
  if (!value) return null;
  let h = value.trim();
  if (h.startsWith('[')) return null; // IPv6 literal: never one of our hostnames
  const colon = h.indexOf(':');
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return null;
    h = h.slice(0, colon);
  }
  return normalizeHostname(h);
}

export function fingerprintConfig(cfg: HostnameConfig): string {
  return sha256(JSON.stringify(cfg));
}

/** Validates one hostname's configuration and builds what serving it needs. Throws with a readable reason. */
export function prepareHostname(hostname: string, cfg: HostnameConfig): PreparedHostname {
  const sc = cfg.serverCertificate;
  if (!sc || typeof sc.certPem !== 'string' || typeof sc.keyPem !== 'string') throw new Error('server certificate is missing');
  try {
    tls.createSecureContext({ cert: sc.certPem, key: sc.keyPem });
  } catch (e) {
    throw new Error(`server certificate or key is unusable: ${(e as Error).message}`);
  }
  const cas = Array.isArray(cfg.accessCAs) ? cfg.accessCAs : [];
  const anchors: X509Certificate[] = [];
  const caPems: string[] = [];
  const keyParts: string[] = [];
  const seenIds = new Set<string>();
  for (const ca of cas) {
    if (!ca || typeof ca.id !== 'string' || typeof ca.pem !== 'string') throw new Error('access CA entry is malformed');
    if (seenIds.has(ca.id)) continue;
    seenIds.add(ca.id);
    let parsed;
    try {
      parsed = parseCertificates(ca.pem);
    } catch (e) {
      throw new Error(`access CA ${ca.id} does not parse: ${(e as Error).message}`);
    }
    try {
      tls.createSecureContext({ ca: ca.pem });
    } catch (e) {
      throw new Error(`access CA ${ca.id} is unusable: ${(e as Error).message}`);
    }
    for (const p of parsed) anchors.push(p.x509);
    caPems.push(ca.pem);
    keyParts.push(`${ca.id}:${sha256(parsed.map((p) => p.der.toString('base64')).join(','))}`);
  }
  keyParts.sort();
  // Node takes the verify store and the CA names of the CertificateRequest from the context chosen by SNICallback
  // (TLSWrap::SetCACerts), so the hostname's context carries its Access CAs; session tickets and the session cache
  // stay with the trust domain's server.
  const secureContext = tls.createSecureContext({ cert: sc.certPem, key: sc.keyPem, ca: caPems.length ? caPems : undefined });
  let target: OriginTarget;
  try {
    target = prepareOriginTarget(hostname, cfg.origin, cfg.originClientCertificate ?? null);
  } catch (e) {
    throw new Error((e as Error).message);
  }
  return {
    hostname,
    config: cfg,
    fingerprint: fingerprintConfig(cfg),
    secureContext,
    caKey: keyParts.join('|'),
    caPems,
    anchors,
    target,
  };
}


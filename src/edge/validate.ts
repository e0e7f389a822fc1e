/**
 * What every data plane checks before it serves a hostname, whatever the engine: the hostname itself, the visitor
 * certificate and key (they must load together), each Access CA (it must parse and load), and how the origin is
 * reached (origin.ts). Both the Node edge and the HAProxy edge use it, so a configuration one refuses the other refuses
 * too, with the same reason.
 */
import { createHash, createPrivateKey, type X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import { parseCertificates } from '../pki/index.js';
import { publicKeySpkiOf } from '../pki/keys.js';
import { decodeBase64Strict, scanPem } from '../pki/pem.js';
import { readCertificateFields } from '../pki/x509.js';
import type { HostnameConfig } from './contract.js';
import { prepareOriginTarget, type OriginTarget } from './node/origin.js';

export interface PreparedHostname {
  hostname: string;
  config: HostnameConfig;
  fingerprint: string;
  /** The Node TLS context (undefined when prepared with `contexts: false`). */
  secureContext?: tls.SecureContext;
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

/** True when `cfg` is the configuration `prev` was prepared from (same object, or same content). */
export function sameConfig(prev: { config: HostnameConfig; fingerprint: string } | undefined, cfg: HostnameConfig): boolean {
  if (!prev) return false;
  if (prev.config === cfg) return true;
  try {
    return prev.fingerprint === fingerprintConfig(cfg);
  } catch {
    return false; // not serialisable: prepareHostname will say what is wrong with it
  }
}

/**
 * Adds one hostname of a change to `into`, or reports it in `failed`: an invalid name, or the same name twice in one
 * change (the first one applies). `seen` tracks names when `into` already holds others (a delta on top of a state).
 */
export function collectHostname(
  cfg: HostnameConfig,
  into: Map<string, HostnameConfig>,
  failed: { hostname: string; reason: string }[],
  seen?: Set<string>,
): void {
  const name = normalizeHostname(cfg?.hostname);
  if (!name) {
    failed.push({ hostname: String(cfg?.hostname ?? ''), reason: 'invalid hostname' });
    return;
  }
  if ((seen && seen.has(name)) || (!seen && into.has(name))) {
    failed.push({ hostname: name, reason: 'duplicate hostname in the same change (first one applied)' });
    return;
  }
  seen?.add(name);
  into.set(name, cfg);
}

/** Runs changes one at a time, in call order; a failed change does not stop the next. */
export class ChangeQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Resolves once every change queued so far has finished. */
  idle(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}

/** Pairs already checked, by content (one origin client certificate often serves many hostnames). */
const checkedPairs = new Set<string>();

/**
 * A certificate (chain, leaf first) and the private key of its leaf: both parse, and they belong together.
 * `quick`: the certificates are walked by certplane's DER reader and the key's public half is read from the key's own
 * structure (publicKeySpkiOf) instead of loading it with OpenSSL (about 0.5 ms a key), for an engine that loads every
 * key itself right after (HAProxy) and reports one it cannot load; keys it cannot read that way are loaded.
 */
export function checkKeyPair(certPem: string, keyPem: string, opts: { quick?: boolean } = {}): void {
  const k = sha256(`${certPem}\0${keyPem}`);
  if (checkedPairs.has(k)) return;
  if (opts.quick) {
    const certs = scanPem(certPem).filter((b) => b.label === 'CERTIFICATE');
    if (certs.length === 0) throw new Error('no certificate');
    const leaf = certs.map((b) => {
      const der = b.terminated ? decodeBase64Strict(b.body) : null;
      if (!der) throw new Error('a certificate does not parse');
      return readCertificateFields(der);
    })[0];
    const spki = publicKeySpkiOf(keyPem);
    if (spki && !spki.equals(leaf.spki)) throw new Error('the private key does not match the certificate');
    if (spki) return; // not remembered: a full check of the same pair later still loads the key
    checkPair(certPem, keyPem);
  } else {
    checkPair(certPem, keyPem);
  }
  if (checkedPairs.size > 10_000) checkedPairs.clear();
  checkedPairs.add(k);
}

function checkPair(certPem: string, keyPem: string): void {
  const chain = parseCertificates(certPem);
  if (chain.length === 0) throw new Error('no certificate');
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new Error(`the private key does not parse: ${(e as Error).message}`);
  }
  if (!chain[0].x509.checkPrivateKey(key)) throw new Error('the private key does not match the certificate');
}

/** Parsed CA bundles, by content: the same bundle is usually shared by many hostnames. */
const caCache = new Map<string, X509Certificate[]>();

function parseCaBundle(pem: string): X509Certificate[] {
  const k = sha256(pem);
  let anchors = caCache.get(k);
  if (!anchors) {
    anchors = parseCertificates(pem).map((p) => p.x509);
    if (anchors.length === 0) throw new Error('no certificate');
    if (caCache.size > 10_000) caCache.clear();
    caCache.set(k, anchors);
  }
  return anchors;
}

/**
 * Validates one hostname's configuration and builds what serving it needs. Throws with a readable reason.
 * `contexts: false` (an engine that builds its own TLS contexts, like HAProxy) checks the same things without building
 * Node TLS contexts: the certificates parse, each key matches its certificate; `secureContext` is then undefined.
 * `checkServerKey: false` leaves the visitor certificate and key to the caller (checkKeyPair), who can do it later.
 */
export function prepareHostname(hostname: string, cfg: HostnameConfig, opts: { contexts?: boolean; checkServerKey?: boolean } = {}): PreparedHostname {
  const contexts = opts.contexts ?? true;
  const sc = cfg.serverCertificate;
  if (!sc || typeof sc.certPem !== 'string' || typeof sc.keyPem !== 'string') throw new Error('server certificate is missing');
  if (!contexts && opts.checkServerKey !== false) {
    try {
      checkKeyPair(sc.certPem, sc.keyPem);
    } catch (e) {
      throw new Error(`server certificate or key is unusable: ${(e as Error).message}`);
    }
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
    let parsed: X509Certificate[];
    try {
      parsed = parseCaBundle(ca.pem);
    } catch (e) {
      throw new Error(`access CA ${ca.id} does not parse: ${(e as Error).message}`);
    }
    if (contexts) {
      try {
        tls.createSecureContext({ ca: ca.pem });
      } catch (e) {
        throw new Error(`access CA ${ca.id} is unusable: ${(e as Error).message}`);
      }
      anchors.push(...parsed);
    }
    caPems.push(ca.pem);
    keyParts.push(`${ca.id}:${sha256(parsed.map((p) => p.raw.toString('base64')).join(','))}`);
  }
  keyParts.sort();
  let secureContext: tls.SecureContext | undefined;
  if (contexts) {
    // Node takes the verify store and the CA names of the CertificateRequest from the context chosen by SNICallback
    // (TLSWrap::SetCACerts), so the hostname's context carries its Access CAs; session tickets and the session cache
    // stay with the trust domain's server.
    try {
      secureContext = tls.createSecureContext({ cert: sc.certPem, key: sc.keyPem, ca: caPems.length ? caPems : undefined });
    } catch (e) {
      throw new Error(`server certificate or key is unusable: ${(e as Error).message}`);
    }
  }
  const target = prepareOriginTarget(hostname, cfg.origin, cfg.originClientCertificate ?? null, {
    context: contexts,
    checkKeyPair,
    checkCaBundle: (pem) => void parseCaBundle(pem),
  });
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

/**
 * Explicit verification of a visitor's client certificate against one hostname's Access CAs, independent of what the
 * TLS library concluded: the HTTP layer re-checks every request with the certificate of THIS connection.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket, DetailedPeerCertificate } from 'node:tls';

const MAX_DEPTH = 8;

export interface PresentedCertificate {
  leaf: X509Certificate;
  /** DER of the leaf (what is forwarded to origins). */
  der: Buffer;
  /** Further certificates the client sent (intermediates), leaf excluded. */
  intermediates: X509Certificate[];
}

/** The client certificate (and chain) presented on this TLS connection, or null if none. */
export function presentedCertificate(socket: TLSSocket): PresentedCertificate | null {
  let detailed: DetailedPeerCertificate | Record<string, never>;
  try {
    detailed = socket.getPeerCertificate(true) as DetailedPeerCertificate;
  } catch {
    return null;
  }
  if (!detailed || !('raw' in detailed) || !detailed.raw) return null;
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(detailed.raw);
  } catch {
    return null;
  }
  const intermediates: X509Certificate[] = [];
  const seen = new Set<DetailedPeerCertificate>([detailed]);
  let cur = detailed.issuerCertificate;
  while (cur && !seen.has(cur) && intermediates.length < MAX_DEPTH && cur.raw) {
    seen.add(cur);
    try {
      intermediates.push(new X509Certificate(cur.raw));
    } catch {
      break;
    }
    cur = cur.issuerCertificate;
  }
  return { leaf, der: Buffer.from(detailed.raw), intermediates };
}

function validAt(cert: X509Certificate, now: number): boolean {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  return Number.isFinite(from) && Number.isFinite(to) && from <= now && now <= to;
}

function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return child.checkIssued(issuer) && child.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * True when `presented.leaf` chains, through certificates the client sent or the bundle holds, to one of `anchors`
 * (every certificate of the hostname's Access CA bundles is a trust anchor), with every certificate on the path
 * valid now and every issuer a CA.
 */
export function chainsTo(presented: PresentedCertificate, anchors: X509Certificate[], now = Date.now()): boolean {
  if (anchors.length === 0) return false;
  if (!validAt(presented.leaf, now)) return false;
  const pool = [...presented.intermediates, ...anchors];
  let current = presented.leaf;
  const used = new Set<X509Certificate>();
  for (let depth = 0; depth <= MAX_DEPTH; depth++) {
    for (const anchor of anchors) {
      if (anchor.ca && validAt(anchor, now) && issuedBy(current, anchor)) return true;
    }
    let next: X509Certificate | undefined;
    for (const cand of pool) {
      if (used.has(cand) || !cand.ca || !validAt(cand, now)) continue;
      if (issuedBy(current, cand)) {
        next = cand;
        break;
      }
    }
    if (!next) return false;
    used.add(next);
    current = next;
  }
  return false;
}

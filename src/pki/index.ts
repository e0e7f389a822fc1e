/**
 * Runtime PKI for certplane: certificate and private-key parsing with Cloudflare-compatible presentation.
 * Uses only node:crypto and Node built-ins. Every function here either returns or throws a PkiError — never any other
 * exception, whatever string it is given.
 *
 * Error-kind rules for parseCertificates (and, symmetrically, parsePrivateKey):
 *  - empty / whitespace-only text                       -> cert_empty
 *  - PEM blocks present but none labelled CERTIFICATE  -> cert_empty (e.g. only a private key was pasted)
 *  - non-empty text with no PEM armour at all           -> cert_unparseable (garbage)
 *  - a CERTIFICATE block that is unterminated, has invalid/truncated base64, or whose DER is not a certificate
 *                                                       -> cert_unparseable
 * Only blocks labelled exactly "CERTIFICATE" count (not "TRUSTED CERTIFICATE" / "X509 CERTIFICATE"). DER must be
 * strict (definite, minimal lengths, no trailing data) and the inner/outer signature algorithms must match, as in Go.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { PkiError } from './errors.js';
import { decodeBase64Strict, scanPem, toPem } from './pem.js';
import type { ParsedCertificate } from './types.js';
import { readCertificateFields, signatureAlgorithmOf } from './x509.js';

export { PkiError, type PkiErrorKind } from './errors.js';
export type { ParsedCertificate } from './types.js';
export { parsePrivateKey, keyMatchesCertificate, privateKeyMatches } from './keys.js';
export { signatureAlgorithmOf };

function md5Fingerprint(der: Buffer): string {
  const hex = createHash('md5').update(der).digest('hex').toUpperCase();
  let out = 'MD5 Fingerprint=';
  for (let i = 0; i < hex.length; i += 2) out += (i ? ':' : '') + hex.slice(i, i + 2);
  return out;
}

/**
 * Node's X509Certificate, built on first use (chain and issuer checks, the edge): OpenSSL's decoder costs about
 * 200 µs a certificate, and an upload needs none of it. readCertificateFields refuses whatever that decoder refuses,
 * so this only fails (PkiError) if the two ever disagree.
 */
function lazyX509(der: Buffer): () => X509Certificate {
  let x509: X509Certificate | undefined;
  return () => {
    if (!x509) {
      try {
        x509 = new X509Certificate(der);
      } catch {
        throw new PkiError('cert_unparseable');
      }
    }
    return x509;
  };
}

function parseDer(der: Buffer): ParsedCertificate {
  const fields = readCertificateFields(der);
  const x509 = lazyX509(der);
  return {
    pem: toPem('CERTIFICATE', der),
    der,
    issuer: fields.issuerDisplay,
    subject: fields.subjectDisplay,
    serialNumber: fields.serial.toString(10),
    signature: fields.signature,
    notBefore: fields.notBefore,
    notAfter: fields.notAfter,
    isCA: fields.isCA,
    fingerprintSha256: createHash('sha256').update(der).digest('hex'),
    fingerprintMd5: md5Fingerprint(der),
    // The SPKI exactly as encoded in the certificate (re-encoding through OpenSSL costs ~150 µs per certificate).
    publicKeySpki: Buffer.from(fields.spki),
    get x509() {
      return x509();
    },
  };
}

function parseCertificatesInner(pemText: string): ParsedCertificate[] {
  if (typeof pemText !== 'string' || pemText.trim() === '') throw new PkiError('cert_empty');
  const blocks = scanPem(pemText);
  const certBlocks = blocks.filter((b) => b.label === 'CERTIFICATE');
  if (certBlocks.length === 0) {
    if (blocks.length === 0) throw new PkiError('cert_unparseable', 'certificate could not be parsed: no PEM block found');
    throw new PkiError('cert_empty');
  }
  return certBlocks.map((block) => {
    if (!block.terminated) throw new PkiError('cert_unparseable', 'certificate could not be parsed: PEM block is not terminated');
    const der = decodeBase64Strict(block.body);
    if (!der) throw new PkiError('cert_unparseable', 'certificate could not be parsed: invalid base64');
    return parseDer(der);
  });
}

/** All CERTIFICATE blocks of `pemText`, in order. Throws only PkiError (cert_empty / cert_unparseable). */
export function parseCertificates(pemText: string): ParsedCertificate[] {
  try {
    return parseCertificatesInner(pemText);
  } catch (e) {
    if (e instanceof PkiError) throw e;
    throw new PkiError('cert_unparseable');
  }
}

/** `child` names `issuer` as its issuer (OpenSSL X509_check_issued) and its signature verifies with issuer's key. */
export function isIssuedBy(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
  try {
    return child.x509.checkIssued(issuer.x509) && child.x509.verify(issuer.x509.publicKey);
  } catch {
    return false;
  }
}

/** True if each certs[i] is issued by certs[i+1]. A single certificate (or an empty list) is trivially in order. */
export function verifyChainOrder(certs: ParsedCertificate[]): boolean {
  if (!Array.isArray(certs)) return false;
  for (let i = 0; i + 1 < certs.length; i++) {
    if (!isIssuedBy(certs[i], certs[i + 1])) return false;
  }
  return true;
}

import type { X509Certificate } from 'node:crypto';

export interface ParsedCertificate {
  /** Canonical PEM of this one certificate (base64 in 64-character lines, trailing newline). */
  pem: string;
  der: Buffer;
  /** Issuer as Cloudflare shows it: issuer O if present, else issuer CN, else the whole issuer DN on one line (Go's pkix.Name.String format). */
  issuer: string;
  /** Subject CN if present, else the whole subject DN on one line (Go's pkix.Name.String format). */
  subject: string;
  /** Decimal serial, no leading zeros (a negative serial, which some old certificates have, gets a leading "-"). */
  serialNumber: string;
  /** Go x509.SignatureAlgorithm constant name ("SHA256WithRSA", "ECDSAWithSHA384", "Ed25519", ...) or "UnknownSignatureAlgorithm". */
  signature: string;
  notBefore: Date;
  notAfter: Date;
  /** basicConstraints cA is TRUE. */
  isCA: boolean;
  /** Lowercase hex SHA-256 of the DER, no separators. */
  fingerprintSha256: string;
  /** "MD5 Fingerprint=1E:80:..." (uppercase, colon-separated) of the DER. */
  fingerprintMd5: string;
  /** SPKI DER of the certificate's public key, exactly as encoded in the certificate. */
  publicKeySpki: Buffer;
  /** Node's view of the certificate, built (by OpenSSL's decoder, ~200 µs) on first use. */
  readonly x509: X509Certificate;
}

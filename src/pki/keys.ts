/**
 * Private-key parsing. Supported: RSA (any size, PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY"), EC on P-256,
 * P-384 and P-521 (SEC1 "EC PRIVATE KEY", optionally preceded by an "EC PARAMETERS" block, or PKCS#8) and Ed25519
 * (PKCS#8) — the key types Go's crypto/tls (and so Cloudflare) accepts for a certificate/key pair.
 *
 * Deliberately unsupported (PkiError 'key_unsupported'), even where Node could sign with them: DSA, DH, X25519, X448,
 * Ed448, RSA-PSS-restricted keys (PKCS#8 with the id-RSASSA-PSS OID — Go's x509.ParsePKCS8PrivateKey rejects them),
 * EC keys on other curves or with explicit curve parameters, and OpenSSH-format keys.
 *
 * Error messages are fixed strings: neither key material nor Node/OpenSSL error text is ever included.
 */
import { type KeyObject, createPrivateKey, createPublicKey } from 'node:crypto';
import { PkiError } from './errors.js';
import { type PemBlock, decodeBase64Strict, scanPem, toPem } from './pem.js';
import type { ParsedCertificate } from './types.js';

type DerKeyType = 'pkcs1' | 'pkcs8' | 'sec1';

const SUPPORTED_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

function isEncrypted(block: PemBlock): boolean {
  if (block.label === 'ENCRYPTED PRIVATE KEY') return true;
  return block.headers.some((h) => /^Proc-Type:\s*4\s*,\s*ENCRYPTED/i.test(h));
}

function tryOrder(label: string): DerKeyType[] {
  switch (label) {
    case 'RSA PRIVATE KEY':
      return ['pkcs1', 'pkcs8', 'sec1'];
    case 'EC PRIVATE KEY':
      return ['sec1', 'pkcs8', 'pkcs1'];
    default:
      return ['pkcs8', 'pkcs1', 'sec1'];
  }
}

function isMissingPassphrase(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'ERR_MISSING_PASSPHRASE';
}

function decodeKey(block: PemBlock, der: Buffer): KeyObject {
  for (const type of tryOrder(block.label)) {
    try {
      return createPrivateKey({ key: der, format: 'der', type });
    } catch (e) {
      if (isMissingPassphrase(e)) throw new PkiError('key_encrypted');
    }
  }
  // Last resort for labels Node only understands through OpenSSL's PEM decoders (e.g. "DSA PRIVATE KEY").
  // The passphrase is an empty string so OpenSSL can never fall back to prompting on a terminal.
  try {
    return createPrivateKey({ key: toPem(block.label, der), format: 'pem', passphrase: '' });
  } catch (e) {
    if (isMissingPassphrase(e)) throw new PkiError('key_encrypted');
  }
  throw new PkiError('key_unparseable');
}

function checkSupported(key: KeyObject): KeyObject {
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'ed25519':
      return key;
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve && SUPPORTED_CURVES.has(curve)) return key;
      throw new PkiError('key_unsupported', 'private key uses an unsupported elliptic curve');
    }
    default:
      throw new PkiError('key_unsupported');
  }
}

function parsePrivateKeyInner(pemText: string): KeyObject {
  if (typeof pemText !== 'string' || pemText.trim() === '') throw new PkiError('key_empty');
  const blocks = scanPem(pemText);
  const block = blocks.find((b) => b.label.endsWith('PRIVATE KEY'));
  if (!block) {
    // Text without any PEM armour is garbage; well-formed PEM without a key block (e.g. only a certificate) is "empty".
    if (blocks.length === 0) throw new PkiError('key_unparseable', 'private key could not be parsed: no PEM block found');
    throw new PkiError('key_empty');
  }
  if (isEncrypted(block)) throw new PkiError('key_encrypted');
  if (!block.terminated) throw new PkiError('key_unparseable', 'private key could not be parsed: PEM block is not terminated');
  if (block.label === 'OPENSSH PRIVATE KEY') {
    throw new PkiError('key_unsupported', 'OpenSSH private keys are not supported; convert to PKCS#8');
  }
  const der = decodeBase64Strict(block.body);
  if (!der) throw new PkiError('key_unparseable', 'private key could not be parsed: invalid base64');
  const key = decodeKey(block, der);
  if (key.type !== 'private') throw new PkiError('key_unparseable');
  return checkSupported(key);
}

/** Parses the first private-key block of `pemText`. Throws only PkiError. */
export function parsePrivateKey(pemText: string): KeyObject {
  try {
    return parsePrivateKeyInner(pemText);
  } catch (e) {
    if (e instanceof PkiError) throw e;
    throw new PkiError('key_unparseable');
  }
}

/**
 * True when `key` (private, or public) belongs to the certificate's public key: SPKI DER comparison, with a semantic
 * comparison as fallback (e.g. a certificate that encodes its EC point compressed). Never throws.
 */
export function keyMatchesCertificate(key: KeyObject, cert: ParsedCertificate): boolean {
  try {
    // OpenSSL's own check (X509_check_private_key: the same semantic comparison, done on the parsed keys) takes about
    // 1 µs; exporting the public key to SPKI DER took about 300 µs with Node 20's OpenSSL 3.0, a fifth of an upload.
    if (key.type === 'private' && cert.x509.checkPrivateKey(key)) return true;
    const pub = key.type === 'public' ? key : createPublicKey(key);
    const spki = pub.export({ type: 'spki', format: 'der' });
    if (spki.equals(cert.publicKeySpki)) return true;
    return pub.equals(cert.x509.publicKey);
  } catch {
    return false;
  }
}

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
import { TAG, children, contents, decodeOid, encodeLength, expectTag, rawElement, readTlv, type Tlv } from './der.js';
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

// ---------------------------------------------------------------------------------------------------------------
// Matching a key to a certificate without loading the key
// ---------------------------------------------------------------------------------------------------------------

const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
/** OBJECT IDENTIFIER 1.2.840.10045.2.1 (id-ecPublicKey), DER. */
const EC_PUBLIC_KEY_OID_DER = Buffer.from([0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);

function tlvBytes(tag: number, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

/**
 * The SubjectPublicKeyInfo (DER) of a private key, read from the key's own structure: EC keys (PKCS#8 or SEC1) carry
 * their public point, RSA keys (PKCS#8 or PKCS#1) their modulus and exponent. Pure DER reading, no cryptography:
 * about a hundred times cheaper than loading the key with OpenSSL 3, for an engine that must match thousands of
 * keys to their certificates and loads the keys itself afterwards (HAProxy). null when it cannot tell this way (an
 * EC key without its public point, Ed25519, an encrypted key, anything unexpected): load the key then.
 */
export function publicKeySpkiOf(keyPem: string): Buffer | null {
  try {
    const blocks = scanPem(keyPem).filter((b) => /PRIVATE KEY$/.test(b.label) && b.terminated);
    if (blocks.length !== 1 || isEncrypted(blocks[0])) return null;
    const der = decodeBase64Strict(blocks[0].body);
    if (!der) return null;
    const top = readTlv(der, 0, der.length);
    if (top.end !== der.length) return null;
    const f = children(der, expectTag(top, TAG.SEQUENCE, 'key'));
    const label = blocks[0].label;
    if (label === 'PRIVATE KEY') {
      // PKCS#8: version, AlgorithmIdentifier, OCTET STRING privateKey, ...
      if (f.length < 3 || f[1].tag !== TAG.SEQUENCE || f[2].tag !== TAG.OCTET_STRING) return null;
      const algId = rawElement(der, f[1]);
      const alg = children(der, f[1]);
      const oid = decodeOid(der, alg[0]);
      const inner = contents(der, f[2]);
      const innerTop = readTlv(inner, 0, inner.length);
      if (oid === OID_EC_PUBLIC_KEY) return ecSpki(inner, innerTop, algId);
      if (oid === OID_RSA_ENCRYPTION) return rsaSpki(inner, innerTop, algId);
      return null;
    }
    if (label === 'EC PRIVATE KEY') {
      // SEC1: version, privateKey, [0] parameters (the curve), [1] publicKey
      const params = f.find((t) => t.tag === 0xa0);
      if (!params) return null;
      const curve = children(der, params)[0];
      if (!curve || curve.tag !== TAG.OID) return null;
      const algId = tlvBytes(TAG.SEQUENCE, Buffer.concat([EC_PUBLIC_KEY_OID_DER, rawElement(der, curve)]));
      return ecSpki(der, top, algId);
    }
    if (label === 'RSA PRIVATE KEY') {
      return rsaSpki(der, top, Buffer.from([0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]));
    }
    return null;
  } catch {
    return null;
  }
}

/** ECPrivateKey → SPKI: the algorithm of the key and its [1] publicKey BIT STRING, as a certificate encodes them. */
function ecSpki(buf: Uint8Array, top: Tlv, algId: Uint8Array): Buffer | null {
  const f = children(buf, expectTag(top, TAG.SEQUENCE, 'ECPrivateKey'));
  const pub = f.find((t) => t.tag === 0xa1);
  if (!pub) return null;
  const bits = children(buf, pub)[0];
  if (!bits || bits.tag !== TAG.BIT_STRING) return null;
  return tlvBytes(TAG.SEQUENCE, Buffer.concat([algId, rawElement(buf, bits)]));
}

/** RSAPrivateKey (version, n, e, ...) → SPKI with RSAPublicKey (n, e). */
function rsaSpki(buf: Uint8Array, top: Tlv, algId: Uint8Array): Buffer | null {
  const f = children(buf, expectTag(top, TAG.SEQUENCE, 'RSAPrivateKey'));
  if (f.length < 3 || f[1].tag !== TAG.INTEGER || f[2].tag !== TAG.INTEGER) return null;
  const rsaPublicKey = tlvBytes(TAG.SEQUENCE, Buffer.concat([rawElement(buf, f[1]), rawElement(buf, f[2])]));
  return tlvBytes(TAG.SEQUENCE, Buffer.concat([algId, tlvBytes(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), rsaPublicKey]))]));
}

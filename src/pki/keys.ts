/**
 * Private-key parsing. Supported: RSA (any size, PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY"), EC on P-256,
 * P-384 and P-521 (SEC1 "EC PRIVATE KEY", optionally preceded by an "EC PARAMETERS" block, or PKCS#8) and Ed25519
 * (PKCS#8) — the key types Go's crypto/tls (and so Cloudflare) accepts for a certificate/key pair.
 *
 * Deliberately unsupported (PkiError 'key_unsupported'), even where Node could sign with them: DSA, DH, X25519, X448,
 * Ed448, RSA-PSS-restricted keys (PKCS#8 with the id-RSASSA-PSS OID — Go's x509.ParsePKCS8PrivateKey rejects them),
 * EC keys on other curves or with explicit curve parameters, and OpenSSH-format keys.
 *
 * Two entry points. parsePrivateKey loads the key with OpenSSL and returns a KeyObject. privateKeyMatches, what an
 * upload runs, proves RSA and EC keys from their own DER and arithmetic (section "Keys read from their own DER"),
 * without OpenSSL's decoders (about 500 µs a key on Node 20), and hands everything else to parsePrivateKey: the error
 * kinds are the same, except that privateKeyMatches also refuses keys whose values do not make a key
 * (key_unparseable; OpenSSL loads such a key, and what it signs with it need not verify) and RSA keys larger than
 * 16384 bits, whose signatures OpenSSL refuses to verify (key_unsupported).
 *
 * Error messages are fixed strings: neither key material nor Node/OpenSSL error text is ever included.
 */
import { ECDH, type KeyObject, createECDH, createPrivateKey, createPublicKey } from 'node:crypto';
import { TAG, checkInteger, children, contents, decodeInteger, decodeOid, encodeLength, rawElement, readTlv, type Tlv } from './der.js';
import { PkiError } from './errors.js';
import { type PemBlock, decodeBase64Strict, scanPem, toPem } from './pem.js';
import type { ParsedCertificate } from './types.js';

type DerKeyType = 'pkcs1' | 'pkcs8' | 'sec1';

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
      // Not key.asymmetricKeyDetails: for an EC key whose scalar is longer than its curve allows, Node 20 aborts the
      // whole process there (a failed CHECK in GetEcKeyDetail). Exporting it throws instead (key_unparseable), and
      // the export's AlgorithmIdentifier names the curve.
      if (EC_CURVES.has(namedCurveOf(key.export({ type: 'pkcs8', format: 'der' })) ?? '')) return key;
      throw new PkiError('key_unsupported', 'private key uses an unsupported elliptic curve');
    }
    default:
      throw new PkiError('key_unsupported');
  }
}

/** The first private-key block of a paste and its DER, after the PEM-level checks every key goes through. */
interface KeyDer {
  block: PemBlock;
  der: Buffer;
}

function readKeyPem(pemText: string): KeyDer {
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
  return { block, der };
}

/** The key loaded by OpenSSL (about 500 µs on Node 20), of a supported type. */
function loadKey({ block, der }: KeyDer): KeyObject {
  const key = decodeKey(block, der);
  if (key.type !== 'private') throw new PkiError('key_unparseable');
  return checkSupported(key);
}

/** Any exception as a key PkiError (never with Node/OpenSSL text; the DER reader's cert_unparseable included). */
function asPkiError(e: unknown): PkiError {
  return e instanceof PkiError && e.kind.startsWith('key_') ? e : new PkiError('key_unparseable');
}

/** The namedCurve OID (dotted) of a PKCS#8 EC key's AlgorithmIdentifier; undefined for explicit parameters. */
function namedCurveOf(pkcs8: Buffer): string | undefined {
  try {
    const alg = children(pkcs8, children(pkcs8, readTlv(pkcs8, 0, pkcs8.length))[1]);
    return alg[1]?.tag === TAG.OID ? decodeOid(pkcs8, alg[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Parses the first private-key block of `pemText`. Throws only PkiError. */
export function parsePrivateKey(pemText: string): KeyObject {
  try {
    return loadKey(readKeyPem(pemText));
  } catch (e) {
    throw asPkiError(e);
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
// Keys read from their own DER: the common formats without OpenSSL's decoders
// ---------------------------------------------------------------------------------------------------------------

const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
/** AlgorithmIdentifier { rsaEncryption, NULL }, DER. */
const RSA_ALGORITHM_DER = Buffer.from('300d06092a864886f70d0101010500', 'hex');
/** OBJECT IDENTIFIER 1.2.840.10045.2.1 (id-ecPublicKey), DER. */
const EC_PUBLIC_KEY_OID_DER = Buffer.from('06072a8648ce3d0201', 'hex');
/**
 * OpenSSL refuses to verify signatures of larger RSA moduli (OPENSSL_RSA_MAX_MODULUS_BITS), so an origin could not
 * check what the edge signs with such a key; the bound also keeps hostile input from making the arithmetic expensive.
 */
const MAX_RSA_BITS = 16384;

interface EcCurve {
  /** OpenSSL's name, as createECDH wants it. */
  name: string;
  /** Octets of a field element (and of the private scalar). */
  bytes: number;
  /** Order of the base point: a private scalar d must satisfy 1 <= d < order. */
  order: bigint;
}

const EC_CURVES: ReadonlyMap<string, EcCurve> = new Map([
  ['1.2.840.10045.3.1.7', { name: 'prime256v1', bytes: 32, order: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n }],
  ['1.3.132.0.34', { name: 'secp384r1', bytes: 48, order: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n }],
  [
    '1.3.132.0.35',
    {
      name: 'secp521r1',
      bytes: 66,
      order: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
    },
  ],
]);

/** The parts of a private key the checks below need, located in the key's DER (`buf`). */
type KeyStructure =
  | { kind: 'rsa'; buf: Uint8Array; /** n, e, d, p, q, dp, dq, qinv: positive, minimal INTEGERs */ ints: Tlv[] }
  | {
      kind: 'ec';
      buf: Uint8Array;
      curve: EcCurve;
      /** The namedCurve OBJECT IDENTIFIER element. */
      curveOid: Uint8Array;
      /** The private scalar, big-endian, 1 to curve.bytes octets. */
      d: Uint8Array;
      /** The public point the key carries ([1] publicKey, without the unused-bits octet), if any. */
      publicKey: Uint8Array | null;
    };

function tlvBytes(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

function isPositiveInteger(buf: Uint8Array, t: Tlv): boolean {
  if (t.tag !== TAG.INTEGER) return false;
  checkInteger(buf, t);
  return (buf[t.valueStart] & 0x80) === 0;
}

function isSmallInteger(buf: Uint8Array, t: Tlv | undefined, value: number): boolean {
  return !!t && t.tag === TAG.INTEGER && t.end - t.valueStart === 1 && buf[t.valueStart] === value;
}

/**
 * Locates the parts of an RSA or EC private key in its DER: PKCS#8 (version 0, no attributes), PKCS#1 (two-prime)
 * or SEC1 (with its named curve), whatever the PEM label says, as OpenSSL tries all three. Strict DER (definite
 * minimal lengths, minimal positive INTEGERs, no trailing data) and only the shapes listed; null for anything else
 * (Ed25519, other algorithms or curves, explicit curve parameters, multi-prime RSA, attributes, malformed DER): the
 * caller then leaves the key to OpenSSL, which accepts or refuses it as before.
 */
function readKeyStructure(der: Uint8Array): KeyStructure | null {
  try {
    const top = readTlv(der, 0, der.length);
    if (top.end !== der.length || top.tag !== TAG.SEQUENCE) return null;
    const f = children(der, top);
    if (f.length === 3 && isSmallInteger(der, f[0], 0) && f[1].tag === TAG.SEQUENCE && f[2].tag === TAG.OCTET_STRING) {
      // PKCS#8 PrivateKeyInfo: version 0, AlgorithmIdentifier, OCTET STRING privateKey
      const alg = children(der, f[1]);
      if (alg.length !== 2) return null;
      const oid = decodeOid(der, alg[0]);
      const inner = contents(der, f[2]);
      if (oid === OID_RSA_ENCRYPTION) {
        if (alg[1].tag !== TAG.NULL || alg[1].end !== alg[1].valueStart) return null;
        return rsaStructure(inner);
      }
      if (oid === OID_EC_PUBLIC_KEY && alg[1].tag === TAG.OID) return ecStructure(inner, rawElement(der, alg[1]));
      return null;
    }
    if (f.length === 9 && isSmallInteger(der, f[0], 0)) return rsaStructure(der);
    if (isSmallInteger(der, f[0], 1)) return ecStructure(der, null);
    return null;
  } catch {
    return null;
  }
}

/** RSAPrivateKey ::= SEQUENCE { version 0, n, e, d, p, q, dp, dq, qinv } (two-prime), filling `buf` exactly. */
function rsaStructure(buf: Uint8Array): KeyStructure | null {
  const top = readTlv(buf, 0, buf.length);
  if (top.end !== buf.length || top.tag !== TAG.SEQUENCE) return null;
  const f = children(buf, top);
  if (f.length !== 9 || !isSmallInteger(buf, f[0], 0)) return null;
  const ints = f.slice(1);
  if (!ints.every((t) => isPositiveInteger(buf, t))) return null;
  return { kind: 'rsa', buf, ints };
}

/**
 * ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [0] namedCurve OPTIONAL, [1] publicKey OPTIONAL },
 * filling `buf` exactly. `algCurve`: the curve named by the PKCS#8 AlgorithmIdentifier (then [0], if present, must
 * name the same one).
 */
function ecStructure(buf: Uint8Array, algCurve: Uint8Array | null): KeyStructure | null {
  const top = readTlv(buf, 0, buf.length);
  if (top.end !== buf.length || top.tag !== TAG.SEQUENCE) return null;
  const f = children(buf, top);
  if (f.length < 2 || f.length > 4 || !isSmallInteger(buf, f[0], 1) || f[1].tag !== TAG.OCTET_STRING) return null;
  let curveOid = algCurve;
  let publicKey: Uint8Array | null = null;
  let next = 2;
  if (f[next]?.tag === 0xa0) {
    const c = children(buf, f[next++]);
    if (c.length !== 1 || c[0].tag !== TAG.OID) return null;
    const named = rawElement(buf, c[0]);
    if (curveOid && !Buffer.from(curveOid).equals(named)) return null;
    curveOid = named;
  }
  if (f[next]?.tag === 0xa1) {
    const c = children(buf, f[next++]);
    if (c.length !== 1 || c[0].tag !== TAG.BIT_STRING || c[0].end - c[0].valueStart < 2 || buf[c[0].valueStart] !== 0) return null;
    publicKey = buf.subarray(c[0].valueStart + 1, c[0].end);
  }
  if (next !== f.length || !curveOid) return null;
  const curve = EC_CURVES.get(decodeOid(curveOid, readTlv(curveOid, 0, curveOid.length)));
  const d = contents(buf, f[1]);
  if (!curve || d.length < 1 || d.length > curve.bytes) return null;
  return { kind: 'ec', buf, curve, curveOid, d, publicKey };
}

function rsaSpkiOf(s: Extract<KeyStructure, { kind: 'rsa' }>): Buffer {
  const rsaPublicKey = tlvBytes(TAG.SEQUENCE, rawElement(s.buf, s.ints[0]), rawElement(s.buf, s.ints[1]));
  return tlvBytes(TAG.SEQUENCE, RSA_ALGORITHM_DER, tlvBytes(TAG.BIT_STRING, Buffer.from([0]), rsaPublicKey));
}

/** The SPKI of an EC public point (as a certificate encodes it: the uncompressed point, if the key gave one). */
function ecSpkiOf(curveOid: Uint8Array, point: Uint8Array): Buffer {
  const algId = tlvBytes(TAG.SEQUENCE, EC_PUBLIC_KEY_OID_DER, curveOid);
  return tlvBytes(TAG.SEQUENCE, algId, tlvBytes(TAG.BIT_STRING, Buffer.from([0]), point));
}

function inconsistent(): never {
  throw new PkiError('key_unparseable', 'private key could not be parsed: its values are inconsistent');
}

/**
 * RSA: the values must make a key, with the checks Go's rsa.PrivateKey.Validate makes (which Cloudflare runs) and
 * those OpenSSL's CRT arithmetic relies on: n = p·q, e·d ≡ 1 mod (p−1) and mod (q−1), e·dp ≡ 1 mod (p−1),
 * e·dq ≡ 1 mod (q−1), qinv·q ≡ 1 mod p, 3 <= e < n. Primality is not tested (nor by Go or OpenSSL when loading).
 * The sizes are bounded before any arithmetic: n at most MAX_RSA_BITS, no other value longer than n.
 */
function checkRsa(s: Extract<KeyStructure, { kind: 'rsa' }>): void {
  const lengths = s.ints.map((t) => {
    const n = t.end - t.valueStart;
    return s.buf[t.valueStart] === 0 ? n - 1 : n;
  });
  const nLength = lengths[0];
  if (nLength * 8 > MAX_RSA_BITS) throw new PkiError('key_unsupported', 'RSA keys larger than 16384 bits are not supported');
  if (lengths.some((len) => len > nLength)) inconsistent();
  const [n, e, d, p, q, dp, dq, qinv] = s.ints.map((t) => decodeInteger(s.buf, t));
  const p1 = p - 1n;
  const q1 = q - 1n;
  const ok =
    e >= 3n && e < n && p > 1n && q > 1n && p * q === n &&
    (e * d) % p1 === 1n && (e * d) % q1 === 1n && (e * dp) % p1 === 1n && (e * dq) % q1 === 1n &&
    qinv < p && (qinv * q) % p === 1n;
  if (!ok) inconsistent();
}

/**
 * EC: 1 <= d < order, and the public point is computed from d (createECDH does d·G with OpenSSL's EC arithmetic,
 * without its decoders: about 36 µs on P-256, 1 ms on P-384, 2.3 ms on P-521 with Node 20's OpenSSL). A public point
 * the key carries must be that point. Returns the uncompressed point.
 */
function ecPublicPoint(s: Extract<KeyStructure, { kind: 'ec' }>): Buffer {
  const d = BigInt('0x' + Buffer.from(s.d).toString('hex'));
  if (d < 1n || d >= s.curve.order) inconsistent();
  const ecdh = createECDH(s.curve.name);
  ecdh.setPrivateKey(Buffer.from(s.d));
  const point = ecdh.getPublicKey();
  if (s.publicKey) {
    // A compressed point (02/03) is compared in its uncompressed form; convertKey refuses a point not on the curve.
    const carried = s.publicKey[0] === 0x04 ? Buffer.from(s.publicKey) : (ECDH.convertKey(s.publicKey, s.curve.name, undefined, undefined, 'uncompressed') as Buffer);
    if (!carried.equals(point)) inconsistent();
  }
  return point;
}

/**
 * The SPKI of a key whose values were checked to make a valid key (see checkRsa, ecPublicPoint): what OpenSSL would
 * derive after loading it, for about 20 µs (RSA 2048) to 40 µs (P-256) instead of 500 µs. Throws PkiError when the
 * values do not make a key.
 */
function provenSpki(s: KeyStructure): Buffer {
  if (s.kind === 'rsa') {
    checkRsa(s);
    return rsaSpkiOf(s);
  }
  return ecSpkiOf(s.curveOid, ecPublicPoint(s));
}

/**
 * Parses the first private-key block of `keyPem` (the rules and error kinds of parsePrivateKey) and tells whether it
 * is the private key of `cert`. Throws only PkiError.
 *
 * RSA and EC keys (P-256, P-384, P-521) in PKCS#8, PKCS#1 or SEC1 are read from their DER and their mathematics
 * checked (a key whose values do not make a key is key_unparseable, even when its public half matches); the key
 * matches when the SPKI derived from it is the certificate's. Anything else (Ed25519, unusual encodings, keys that do
 * not match, so that every refusal keeps its former kind) goes through OpenSSL: parsePrivateKey + keyMatchesCertificate.
 */
export function privateKeyMatches(keyPem: string, cert: ParsedCertificate): boolean {
  try {
    const key = readKeyPem(keyPem);
    const structure = readKeyStructure(key.der);
    if (structure && provenSpki(structure).equals(cert.publicKeySpki)) return true;
    return keyMatchesCertificate(loadKey(key), cert);
  } catch (e) {
    throw asPkiError(e);
  }
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
    const s = der && readKeyStructure(der);
    if (!s) return null;
    if (s.kind === 'rsa') return rsaSpkiOf(s);
    return s.publicKey && s.publicKey[0] === 0x04 ? ecSpkiOf(s.curveOid, s.publicKey) : null;
  } catch {
    return null;
  }
}

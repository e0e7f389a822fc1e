/**
 * Structural walk of an X.509 certificate with our own DER reader (Node 20's X509Certificate exposes neither the
 * signature algorithm nor the raw names/times), plus the Go-compatible presentation rules Cloudflare uses.
 */
import { isUtf8 } from 'node:buffer';
import { PkiError } from './errors.js';
import {
  TAG,
  type Tlv,
  checkAny,
  checkBitString,
  checkInteger,
  children,
  decodeDirectoryString,
  decodeInteger,
  decodeOid,
  decodeSmallInteger,
  decodeTime,
  encodeLength,
  expectTag,
  malformed,
  rawElement,
  readTlv,
} from './der.js';

// ---------------------------------------------------------------------------------------------------------------
// Signature algorithms (names are Go's x509.SignatureAlgorithm constant names, which Cloudflare's API shows)
// ---------------------------------------------------------------------------------------------------------------

const OID_RSASSA_PSS = '1.2.840.113549.1.1.10';
const OID_MGF1 = '1.2.840.113549.1.1.8';
const OID_ED25519 = '1.3.101.112';

const SIGNATURE_NAMES: ReadonlyMap<string, string> = new Map([
  ['1.2.840.113549.1.1.2', 'MD2WithRSA'],
  ['1.2.840.113549.1.1.4', 'MD5WithRSA'],
  ['1.2.840.113549.1.1.5', 'SHA1WithRSA'],
  ['1.3.14.3.2.29', 'SHA1WithRSA'], // legacy OIWSEC sha1WithRSASignature, mapped by Go too
  ['1.2.840.113549.1.1.11', 'SHA256WithRSA'],
  ['1.2.840.113549.1.1.12', 'SHA384WithRSA'],
  ['1.2.840.113549.1.1.13', 'SHA512WithRSA'],
  ['1.2.840.10040.4.3', 'DSAWithSHA1'],
  ['2.16.840.1.101.3.4.3.2', 'DSAWithSHA256'],
  ['1.2.840.10045.4.1', 'ECDSAWithSHA1'],
  ['1.2.840.10045.4.3.2', 'ECDSAWithSHA256'],
  ['1.2.840.10045.4.3.3', 'ECDSAWithSHA384'],
  ['1.2.840.10045.4.3.4', 'ECDSAWithSHA512'],
  [OID_ED25519, 'Ed25519'],
]);

/** PSS hash OID -> [name, the salt length Go requires]. */
const PSS_HASHES: ReadonlyMap<string, [string, number]> = new Map([
  ['2.16.840.1.101.3.4.2.1', ['SHA256WithRSAPSS', 32]],
  ['2.16.840.1.101.3.4.2.2', ['SHA384WithRSAPSS', 48]],
  ['2.16.840.1.101.3.4.2.3', ['SHA512WithRSAPSS', 64]],
]);

export const UNKNOWN_SIGNATURE = 'UnknownSignatureAlgorithm';

/** True when an AlgorithmIdentifier's parameters are absent or NULL. */
function paramsAbsentOrNull(alg: Tlv[]): boolean {
  if (alg.length === 1) return true;
  return alg.length === 2 && alg[1].tag === TAG.NULL && alg[1].end === alg[1].valueStart;
}

/**
 * RSASSA-PSS parameters, with Go's rules (crypto/x509 getSignatureAlgorithmFromAI): hash, MGF and salt length must
 * be present; MGF must be MGF1 with the same hash; the salt length must equal the hash length; the trailer field, if
 * present, must be 1. Anything else is an unknown algorithm (not a parse error).
 */
function pssName(buf: Uint8Array, params: Tlv | undefined): string {
  try {
    if (!params || params.tag !== TAG.SEQUENCE) return UNKNOWN_SIGNATURE;
    const fields = children(buf, params);
    const [hashF, mgfF, saltF, trailerF] = fields;
    if (fields.length < 3 || fields.length > 4) return UNKNOWN_SIGNATURE;
    if (hashF.tag !== 0xa0 || mgfF.tag !== 0xa1 || saltF.tag !== 0xa2 || (trailerF && trailerF.tag !== 0xa3)) {
      return UNKNOWN_SIGNATURE;
    }
    const one = (t: Tlv): Tlv => {
      const c = children(buf, t);
      if (c.length !== 1) malformed('explicit tag');
      return c[0];
    };
    const hashAlg = children(buf, expectTag(one(hashF), TAG.SEQUENCE, 'hash AlgorithmIdentifier'));
    if (hashAlg.length < 1 || !paramsAbsentOrNull(hashAlg)) return UNKNOWN_SIGNATURE;
    const hashOid = decodeOid(buf, hashAlg[0]);

    const mgfAlg = children(buf, expectTag(one(mgfF), TAG.SEQUENCE, 'MGF AlgorithmIdentifier'));
    if (mgfAlg.length !== 2 || decodeOid(buf, mgfAlg[0]) !== OID_MGF1) return UNKNOWN_SIGNATURE;
    const mgfHash = children(buf, expectTag(mgfAlg[1], TAG.SEQUENCE, 'MGF1 hash'));
    if (mgfHash.length < 1 || !paramsAbsentOrNull(mgfHash)) return UNKNOWN_SIGNATURE;
    if (decodeOid(buf, mgfHash[0]) !== hashOid) return UNKNOWN_SIGNATURE;

    const salt = decodeSmallInteger(buf, one(saltF));
    if (trailerF && decodeSmallInteger(buf, one(trailerF)) !== 1) return UNKNOWN_SIGNATURE;
    const known = PSS_HASHES.get(hashOid);
    return known && known[1] === salt ? known[0] : UNKNOWN_SIGNATURE;
  } catch {
    return UNKNOWN_SIGNATURE;
  }
}

/** Maps a signature AlgorithmIdentifier element to its Go/Cloudflare name. */
function signatureName(buf: Uint8Array, algId: Tlv): string {
  const parts = children(buf, expectTag(algId, TAG.SEQUENCE, 'AlgorithmIdentifier'));
  if (parts.length < 1 || parts.length > 2) malformed('AlgorithmIdentifier');
  const oid = decodeOid(buf, parts[0]);
  if (oid === OID_RSASSA_PSS) return pssName(buf, parts[1]);
  // RFC 8410: parameters MUST be absent for Ed25519 (Go treats present parameters as an unknown algorithm).
  if (oid === OID_ED25519 && parts.length !== 1) return UNKNOWN_SIGNATURE;
  return SIGNATURE_NAMES.get(oid) ?? UNKNOWN_SIGNATURE;
}

interface OuterParts {
  tbs: Tlv;
  sigAlg: Tlv;
  sigValue: Tlv;
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }, no trailing data. */
function readOuter(der: Uint8Array): OuterParts {
  const outer = readTlv(der, 0, der.length);
  expectTag(outer, TAG.SEQUENCE, 'Certificate SEQUENCE');
  if (outer.end !== der.length) malformed('trailing data after certificate');
  const parts = children(der, outer);
  if (parts.length !== 3) malformed('Certificate must have three fields');
  expectTag(parts[0], TAG.SEQUENCE, 'tbsCertificate');
  expectTag(parts[1], TAG.SEQUENCE, 'signatureAlgorithm');
  expectTag(parts[2], TAG.BIT_STRING, 'signatureValue');
  if (parts[2].end - parts[2].valueStart < 1) malformed('empty signatureValue');
  return { tbs: parts[0], sigAlg: parts[1], sigValue: parts[2] };
}

function asUint8Array(der: unknown): Uint8Array {
  if (der instanceof Uint8Array) return der;
  throw new PkiError('cert_unparseable', 'certificate could not be parsed: not a byte buffer');
}

/** The Go/Cloudflare name of a certificate's outer signatureAlgorithm. Throws only PkiError('cert_unparseable'). */
export function signatureAlgorithmOf(der: Buffer): string {
  try {
    const buf = asUint8Array(der);
    return signatureName(buf, readOuter(buf).sigAlg);
  } catch (e) {
    if (e instanceof PkiError) throw e;
    throw new PkiError('cert_unparseable');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------------

interface Atv {
  oid: string;
  /** Decoded string value, or null when the value is not a (valid) character string. */
  value: string | null;
  /** The whole value element (tag+length+contents), for hex display of non-string values. */
  rawValue: Uint8Array;
}
type Rdn = Atv[];

/** Universal tag numbers OpenSSL accepts, primitive, as an attribute value (its ASN1_PRINTABLE set, unknown types included). */
const NAME_VALUE_TAGS = new Set([0x03, 0x07, 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x12, 0x13, 0x14, 0x16, 0x1c, 0x1d, 0x1e]);

/**
 * An attribute value OpenSSL would decode (a certificate it cannot decode is no certificate for the edge either): a
 * SEQUENCE (opaque) or one of NAME_VALUE_TAGS, primitive; and the strings it converts to UTF-8 to compare names must
 * convert: valid UTF-8, whole BMP (UCS-2, no surrogates) and UniversalString (UCS-4, no surrogates, at most U+10FFFF)
 * characters, a valid BIT STRING. Constructed strings are not DER and are refused.
 */
function checkNameValue(buf: Uint8Array, t: Tlv): void {
  if (t.tag === TAG.SEQUENCE) return;
  if (!NAME_VALUE_TAGS.has(t.tag)) malformed('attribute value type');
  const b = Buffer.from(buf.buffer, buf.byteOffset + t.valueStart, t.end - t.valueStart);
  switch (t.tag) {
    case TAG.BIT_STRING:
      return checkBitString(buf, t);
    case TAG.UTF8_STRING:
      if (!isUtf8(b)) malformed('UTF8String');
      return;
    case TAG.BMP_STRING:
      if (b.length % 2 !== 0) malformed('BMPString');
      for (let i = 0; i < b.length; i += 2) if ((b[i] & 0xf8) === 0xd8) malformed('BMPString');
      return;
    case TAG.UNIVERSAL_STRING:
      if (b.length % 4 !== 0) malformed('UniversalString');
      for (let i = 0; i < b.length; i += 4) {
        const cp = b.readUInt32BE(i);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) malformed('UniversalString');
      }
      return;
    default:
      return;
  }
}

function parseName(buf: Uint8Array, name: Tlv): Rdn[] {
  expectTag(name, TAG.SEQUENCE, 'Name');
  const rdns: Rdn[] = [];
  for (const set of children(buf, name)) {
    expectTag(set, TAG.SET, 'RelativeDistinguishedName');
    const rdn: Rdn = [];
    for (const atvSeq of children(buf, set)) {
      expectTag(atvSeq, TAG.SEQUENCE, 'AttributeTypeAndValue');
      const parts = children(buf, atvSeq);
      if (parts.length !== 2) malformed('AttributeTypeAndValue');
      checkNameValue(buf, parts[1]);
      rdn.push({
        oid: decodeOid(buf, parts[0]),
        value: decodeDirectoryString(buf, parts[1]),
        rawValue: rawElement(buf, parts[1]),
      });
    }
    rdns.push(rdn);
  }
  return rdns;
}

const OID_CN = '2.5.4.3';
const OID_O = '2.5.4.10';

/** Go's pkix attributeTypeNames. */
const ATTRIBUTE_NAMES: ReadonlyMap<string, string> = new Map([
  ['2.5.4.6', 'C'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.3', 'CN'],
  ['2.5.4.5', 'SERIALNUMBER'],
  ['2.5.4.7', 'L'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.9', 'STREET'],
  ['2.5.4.17', 'POSTALCODE'],
]);

/** Order of Go's pkix.Name.ToRDNSequence for the multi-valued fields. */
const MULTI_VALUED_ORDER = ['2.5.4.6', '2.5.4.8', '2.5.4.7', '2.5.4.9', '2.5.4.17', '2.5.4.10', '2.5.4.11'];

function escapeGo(value: string): string {
  let out = '';
  const last = value.length - 1;
  for (let k = 0; k < value.length; k++) {
    const c = value[k];
    let escape = false;
    switch (c) {
      case ',':
      case '+':
      case '"':
      case '\\':
      case '<':
      case '>':
      case ';':
        escape = true;
        break;
      case ' ':
        escape = k === 0 || k === last;
        break;
      case '#':
        escape = k === 0;
        break;
    }
    out += escape ? '\\' + c : c;
  }
  return out;
}

/** Go's asn1 "printable" set used when marshalling an untyped string (no '*' and no '&'). */
const GO_PRINTABLE_RE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** Hex of the value as Go re-marshals it (PrintableString if possible, else UTF8String) for "OID=#hex" output. */
function goValueHex(atv: Atv): string {
  if (atv.value === null) return Buffer.from(atv.rawValue).toString('hex');
  const body = Buffer.from(atv.value, 'utf8');
  const tag = GO_PRINTABLE_RE.test(atv.value) ? TAG.PRINTABLE_STRING : TAG.UTF8_STRING;
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]).toString('hex');
}

/**
 * The one-line distinguished name exactly as Go's pkix.Name.String() prints a parsed certificate name (RFC 2253
 * order: most specific first; "," between RDNs, "+" inside one; unknown attribute types as "OID=#hex").
 */
function goNameString(rdns: Rdn[]): string {
  const all = rdns.flat();
  const out: Rdn[] = [];
  // Non-standard attributes first (so they print last), one RDN each.
  for (const atv of all) if (!ATTRIBUTE_NAMES.has(atv.oid)) out.push([atv]);
  const stringsOf = (oid: string): Atv[] => all.filter((a) => a.oid === oid && a.value !== null);
  for (const oid of MULTI_VALUED_ORDER) {
    const vals = stringsOf(oid);
    if (vals.length > 0) out.push(vals);
  }
  for (const oid of [OID_CN, '2.5.4.5']) {
    const vals = stringsOf(oid);
    const lastVal = vals[vals.length - 1];
    if (lastVal && lastVal.value) out.push([lastVal]);
  }
  const rdnStrings: string[] = [];
  for (let i = out.length - 1; i >= 0; i--) {
    rdnStrings.push(
      out[i]
        .map((atv) => {
          const short = ATTRIBUTE_NAMES.get(atv.oid);
          if (!short) return `${atv.oid}=#${goValueHex(atv)}`;
          return `${short}=${escapeGo(atv.value ?? '')}`;
        })
        .join('+'),
    );
  }
  return rdnStrings.join(',');
}

/** First non-empty string value of an attribute. */
function firstValue(rdns: Rdn[], oid: string): string | undefined {
  for (const rdn of rdns) for (const atv of rdn) if (atv.oid === oid && atv.value) return atv.value;
  return undefined;
}

/** Last string value of an attribute (Go keeps the last CN it sees), if non-empty. */
function lastValue(rdns: Rdn[], oid: string): string | undefined {
  let found: string | undefined;
  for (const rdn of rdns) for (const atv of rdn) if (atv.oid === oid && atv.value !== null) found = atv.value;
  return found || undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Certificate walk
// ---------------------------------------------------------------------------------------------------------------

export interface CertificateFields {
  serial: bigint;
  /** Issuer O (first), else issuer CN, else the whole issuer DN on one line (Go format). */
  issuerDisplay: string;
  /** Subject CN, else the whole subject DN on one line (Go format). */
  subjectDisplay: string;
  signature: string;
  notBefore: Date;
  notAfter: Date;
  isCA: boolean;
  /** SubjectPublicKeyInfo exactly as encoded in the certificate. */
  spki: Uint8Array;
}

const OID_BASIC_CONSTRAINTS = '2.5.29.19';

/** AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }. */
function checkAlgorithmIdentifier(buf: Uint8Array, t: Tlv): void {
  const parts = children(buf, expectTag(t, TAG.SEQUENCE, 'AlgorithmIdentifier'));
  if (parts.length < 1 || parts.length > 2) malformed('AlgorithmIdentifier');
  decodeOid(buf, parts[0]);
  if (parts[1]) checkAny(buf, parts[1]);
}

/**
 * The [3] extensions element: every Extension is { extnID, critical BOOLEAN OPTIONAL, extnValue OCTET STRING }
 * (their contents are opaque, as they are to OpenSSL when it decodes a certificate). Returns the cA flag of the first
 * basicConstraints extension; false when there is none.
 */
function readExtensions(buf: Uint8Array, extsExplicit: Tlv): boolean {
  const wrapped = children(buf, extsExplicit);
  if (wrapped.length !== 1) malformed('extensions');
  const exts = children(buf, expectTag(wrapped[0], TAG.SEQUENCE, 'Extensions'));
  let isCA: boolean | undefined;
  for (const ext of exts) {
    const parts = children(buf, expectTag(ext, TAG.SEQUENCE, 'Extension'));
    if (parts.length < 2 || parts.length > 3) malformed('Extension');
    if (parts.length === 3 && (parts[1].tag !== TAG.BOOLEAN || parts[1].end - parts[1].valueStart !== 1)) malformed('Extension critical');
    const value = expectTag(parts[parts.length - 1], TAG.OCTET_STRING, 'extnValue');
    if (decodeOid(buf, parts[0]) !== OID_BASIC_CONSTRAINTS || isCA !== undefined) continue;
    isCA = basicConstraintsCA(buf, value);
  }
  return isCA ?? false;
}

/** basicConstraints cA flag from the extension's extnValue. */
function basicConstraintsCA(buf: Uint8Array, value: Tlv): boolean {
  const bc = readTlv(buf, value.valueStart, value.end);
  if (bc.end !== value.end) malformed('basicConstraints');
  const fields = children(buf, expectTag(bc, TAG.SEQUENCE, 'BasicConstraints'));
  const first = fields[0];
  if (!first || first.tag !== TAG.BOOLEAN) return false; // cA DEFAULT FALSE
  if (first.end - first.valueStart !== 1) malformed('BOOLEAN');
  return buf[first.valueStart] !== 0;
}

/** Optional trailing fields of tbsCertificate, in this order, each at most once: [1] issuerUID, [2] subjectUID, [3] extensions. */
const TRAILING_FIELDS = [0x81, 0x82, 0xa3];

/**
 * Walks the certificate structure. Throws PkiError('cert_unparseable') on any structural problem.
 *
 * Strict enough to stand in for OpenSSL's decoder (d2i_X509, what `new X509Certificate` runs), which costs about
 * 200 µs a certificate on Node 20: whatever that decoder refuses is refused here too — the field layout, minimal
 * INTEGERs, valid BIT STRINGs and OIDs, AlgorithmIdentifier parameters, attribute value types and their character
 * encodings, the Extension layout. test/pki-x509.test.ts checks it against OpenSSL on mutated certificates.
 */
export function readCertificateFields(der: Uint8Array): CertificateFields {
  const { tbs, sigAlg, sigValue } = readOuter(der);
  checkBitString(der, sigValue);
  checkAlgorithmIdentifier(der, sigAlg);
  const f = children(der, tbs);
  let i = 0;
  if (f[i]?.tag === 0xa0) {
    // [0] EXPLICIT version
    const v = children(der, f[i++]);
    if (v.length !== 1) malformed('version');
    checkInteger(der, expectTag(v[0], TAG.INTEGER, 'version'));
  }
  const serialT = expectTag(f[i++], TAG.INTEGER, 'serialNumber');
  checkInteger(der, serialT);
  const innerSig = expectTag(f[i++], TAG.SEQUENCE, 'signature');
  const issuerT = expectTag(f[i++], TAG.SEQUENCE, 'issuer');
  const validityT = expectTag(f[i++], TAG.SEQUENCE, 'validity');
  const subjectT = expectTag(f[i++], TAG.SEQUENCE, 'subject');
  const spkiT = expectTag(f[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo');
  const spkiParts = children(der, spkiT);
  if (spkiParts.length !== 2) malformed('subjectPublicKeyInfo');
  checkAlgorithmIdentifier(der, spkiParts[0]);
  checkBitString(der, spkiParts[1]);
  let isCA = false;
  for (let next = 0; i < f.length; i++) {
    const rank = TRAILING_FIELDS.indexOf(f[i].tag, next);
    if (rank < 0) malformed('unexpected field in tbsCertificate');
    next = rank + 1;
    if (f[i].tag === 0xa3) isCA = readExtensions(der, f[i]);
    else checkBitString(der, f[i], f[i].tag);
  }
  // Like Go and OpenSSL, the signature AlgorithmIdentifier inside the signed part must match the outer one.
  if (Buffer.compare(rawElement(der, innerSig), rawElement(der, sigAlg)) !== 0) {
    malformed('inner and outer signature algorithms differ');
  }

  const validity = children(der, validityT);
  if (validity.length !== 2) malformed('validity');
  const notBefore = decodeTime(der, validity[0]);
  const notAfter = decodeTime(der, validity[1]);

  const issuer = parseName(der, issuerT);
  const subject = parseName(der, subjectT);
  const issuerDisplay = firstValue(issuer, OID_O) ?? lastValue(issuer, OID_CN) ?? goNameString(issuer);
  const subjectDisplay = lastValue(subject, OID_CN) ?? goNameString(subject);

  return {
    serial: decodeInteger(der, serialT),
    issuerDisplay,
    subjectDisplay,
    signature: signatureName(der, sigAlg),
    notBefore,
    notAfter,
    isCA,
    spki: rawElement(der, spkiT),
  };
}

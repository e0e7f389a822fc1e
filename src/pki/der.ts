/**
 * A minimal, strict DER reader: definite lengths only, minimal length encodings, low tag numbers only, and every
 * length bounds-checked against its enclosing element. All failures throw PkiError('cert_unparseable') — the reader is
 * only used on certificate bytes. Nothing here allocates more than O(input) or does more than linear work.
 */
import { PkiError } from './errors.js';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  VISIBLE_STRING: 0x1a,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One decoded element: `buf[start, end)` is the whole TLV, `buf[valueStart, end)` its contents. */
export interface Tlv {
  tag: number;
  start: number;
  valueStart: number;
  end: number;
}

export function malformed(what: string): never {
  throw new PkiError('cert_unparseable', `certificate could not be parsed: malformed DER (${what})`);
}

/** Reads the element starting at `pos`; it must end at or before `limit`. */
export function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (!(pos >= 0) || limit > buf.length || pos + 2 > limit) malformed('truncated header');
  const tag = buf[pos];
  if ((tag & 0x1f) === 0x1f) malformed('unsupported high tag number');
  const first = buf[pos + 1];
  let p = pos + 2;
  let len: number;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) malformed('indefinite length');
    if (n > 4) malformed('length too large');
    if (p + n > limit) malformed('truncated length');
    if (buf[p] === 0) malformed('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++];
    if (len < 0x80) malformed('non-minimal length');
  }
  const end = p + len;
  if (end > limit) malformed('truncated value');
  return { tag, start: pos, valueStart: p, end };
}

/** The contents of a constructed element, which must consist exactly of whole elements. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  if ((parent.tag & 0x20) === 0) malformed('expected a constructed element');
  const out: Tlv[] = [];
  let pos = parent.valueStart;
  while (pos < parent.end) {
    const t = readTlv(buf, pos, parent.end);
    out.push(t);
    pos = t.end;
  }
  return out;
}

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) malformed(`expected ${what}`);
  return t;
}

export function contents(buf: Uint8Array, t: Tlv): Uint8Array {
  return buf.subarray(t.valueStart, t.end);
}

export function rawElement(buf: Uint8Array, t: Tlv): Uint8Array {
  return buf.subarray(t.start, t.end);
}

/** Dotted-decimal OID. Rejects empty OIDs, non-minimal arcs and a dangling continuation byte. */
export function decodeOid(buf: Uint8Array, t: Tlv): string {
  if (t.tag !== TAG.OID) malformed('expected OBJECT IDENTIFIER');
  if (t.end - t.valueStart < 1) malformed('empty OBJECT IDENTIFIER');
  if (t.end - t.valueStart > 256) malformed('OBJECT IDENTIFIER too long');
  // Arcs are accumulated as numbers while that is exact, and as bigints beyond 2^53 (only exotic OIDs get there).
  const arcs: (number | bigint)[] = [];
  let acc: number | bigint = 0;
  let inArc = false;
  for (let i = t.valueStart; i < t.end; i++) {
    const b = buf[i];
    if (!inArc && b === 0x80) malformed('non-minimal OBJECT IDENTIFIER arc');
    if (typeof acc === 'number' && acc < 2 ** 45) acc = acc * 128 + (b & 0x7f);
    else acc = (BigInt(acc) << 7n) | BigInt(b & 0x7f);
    inArc = true;
    if ((b & 0x80) === 0) {
      arcs.push(acc);
      acc = 0;
      inArc = false;
    }
  }
  if (inArc) malformed('truncated OBJECT IDENTIFIER');
  const head = arcs[0];
  let parts: string;
  if (typeof head === 'bigint') parts = '2.' + (head - 80n).toString();
  else parts = head < 40 ? '0.' + head : head < 80 ? '1.' + (head - 40) : '2.' + (head - 80);
  for (let i = 1; i < arcs.length; i++) parts += '.' + arcs[i].toString();
  return parts;
}

/** Two's-complement INTEGER as a bigint. */
export function decodeInteger(buf: Uint8Array, t: Tlv): bigint {
  if (t.tag !== TAG.INTEGER) malformed('expected INTEGER');
  const n = t.end - t.valueStart;
  if (n < 1) malformed('empty INTEGER');
  const hex = Buffer.from(buf.buffer, buf.byteOffset + t.valueStart, n).toString('hex');
  let v = BigInt('0x' + hex);
  if (buf[t.valueStart] & 0x80) v -= 1n << BigInt(8 * n);
  return v;
}

/** An INTEGER's contents are non-empty and minimal (no redundant leading 0x00 / 0xff octet), as DER and OpenSSL require. */
export function checkInteger(buf: Uint8Array, t: Tlv): void {
  if (t.tag !== TAG.INTEGER && t.tag !== TAG.ENUMERATED) malformed('expected INTEGER');
  const n = t.end - t.valueStart;
  if (n < 1) malformed('empty INTEGER');
  if (n > 1) {
    const a = buf[t.valueStart];
    const b = buf[t.valueStart + 1];
    if ((a === 0x00 && (b & 0x80) === 0) || (a === 0xff && (b & 0x80) !== 0)) malformed('non-minimal INTEGER');
  }
}

/** A primitive BIT STRING (or an IMPLICIT one, any `tag`): an unused-bits octet of at most 7, as OpenSSL requires. */
export function checkBitString(buf: Uint8Array, t: Tlv, tag: number = TAG.BIT_STRING): void {
  if (t.tag !== tag) malformed('expected BIT STRING');
  if (t.end - t.valueStart < 1 || buf[t.valueStart] > 7) malformed('BIT STRING');
}

/**
 * The parameters of an AlgorithmIdentifier (ASN.1 ANY): the universal types OpenSSL checks when it decodes an ANY
 * must be well formed (BOOLEAN one octet, minimal INTEGER/ENUMERATED, NULL empty, a valid OID, a valid BIT STRING,
 * whole BMPString/UniversalString characters); a constructed encoding is only accepted for SEQUENCE and SET (DER never
 * constructs a string). Other tags, and what a SEQUENCE holds, are opaque here as they are to OpenSSL.
 */
export function checkAny(buf: Uint8Array, t: Tlv): void {
  if ((t.tag & 0xc0) !== 0) return; // application, context-specific or private: opaque
  if (t.tag & 0x20) {
    if (t.tag !== TAG.SEQUENCE && t.tag !== TAG.SET) malformed('constructed string');
    return;
  }
  const n = t.end - t.valueStart;
  switch (t.tag) {
    case 0x00:
    case 0x10:
    case 0x11:
      malformed('invalid universal tag');
    case TAG.BOOLEAN:
      if (n !== 1) malformed('BOOLEAN');
      return;
    case TAG.INTEGER:
    case TAG.ENUMERATED:
      return checkInteger(buf, t);
    case TAG.BIT_STRING:
      return checkBitString(buf, t);
    case TAG.NULL:
      if (n !== 0) malformed('NULL with contents');
      return;
    case TAG.OID:
      decodeOid(buf, t);
      return;
    case TAG.BMP_STRING:
      if (n % 2 !== 0) malformed('BMPString');
      return;
    case TAG.UNIVERSAL_STRING:
      if (n % 4 !== 0) malformed('UniversalString');
      return;
    default:
      return;
  }
}

/** Small non-negative INTEGER (e.g. a salt length); anything else is malformed for our purposes. */
export function decodeSmallInteger(buf: Uint8Array, t: Tlv): number {
  if (t.end - t.valueStart > 6) malformed('INTEGER too large');
  const v = decodeInteger(buf, t);
  if (v < 0n) malformed('negative INTEGER');
  return Number(v);
}

const UTC_TIME_RE = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(Z|[+-]\d{4})$/;
const GENERALIZED_TIME_RE = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{4})$/;

/** UTCTime (RFC 5280 two-digit year window: 50..99 -> 19xx) or GeneralizedTime, with Z or a numeric offset. */
export function decodeTime(buf: Uint8Array, t: Tlv): Date {
  if (t.end - t.valueStart > 40) malformed('time too long');
  const s = Buffer.from(buf.buffer, buf.byteOffset + t.valueStart, t.end - t.valueStart).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  let frac = 0;
  if (t.tag === TAG.UTC_TIME) {
    m = UTC_TIME_RE.exec(s);
    if (!m) malformed('bad UTCTime');
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (t.tag === TAG.GENERALIZED_TIME) {
    m = GENERALIZED_TIME_RE.exec(s);
    if (!m) malformed('bad GeneralizedTime');
    year = Number(m[1]);
    if (m[7]) frac = Number((m[7] + '00').slice(0, 3));
  } else {
    malformed('expected a time');
  }
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const zone = m[t.tag === TAG.UTC_TIME ? 7 : 8];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) malformed('time out of range');
  const d = new Date(0);
  d.setUTCFullYear(year, month, 0); // day 0 of the next month = last day of `month`
  if (day > d.getUTCDate()) malformed('time out of range');
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, frac);
  if (zone !== 'Z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(3, 5));
    if (oh > 23 || om > 59) malformed('time zone out of range');
    const offsetMs = (oh * 60 + om) * 60_000 * (zone[0] === '+' ? 1 : -1);
    d.setTime(d.getTime() - offsetMs);
  }
  if (Number.isNaN(d.getTime())) malformed('time out of range');
  return d;
}

/**
 * Decodes a directory string for display. Returns null for tags that are not character strings (the caller then
 * shows the value as hex) or for structurally invalid BMP/Universal strings. Decoding is lenient about the character
 * repertoire (e.g. a '*' in a PrintableString) since we only display the value.
 */
export function decodeDirectoryString(buf: Uint8Array, t: Tlv): string | null {
  const n = t.end - t.valueStart;
  const b = Buffer.from(buf.buffer, buf.byteOffset + t.valueStart, n);
  switch (t.tag) {
    case TAG.UTF8_STRING:
      return b.toString('utf8');
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.T61_STRING:
    case TAG.VISIBLE_STRING:
    case TAG.NUMERIC_STRING:
      return b.toString('latin1');
    case TAG.BMP_STRING: {
      if (n % 2 !== 0) return null;
      let len = n;
      if (len >= 2 && b[len - 1] === 0 && b[len - 2] === 0) len -= 2; // strip a NUL terminator, as Go does
      const swapped = Buffer.allocUnsafe(len);
      for (let i = 0; i < len; i += 2) {
        swapped[i] = b[i + 1];
        swapped[i + 1] = b[i];
      }
      return swapped.toString('utf16le');
    }
    case TAG.UNIVERSAL_STRING: {
      if (n % 4 !== 0) return null;
      let s = '';
      for (let i = 0; i < n; i += 4) {
        const cp = b.readUInt32BE(i);
        s += cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) ? String.fromCodePoint(cp) : '\ufffd';
      }
      return s;
    }
    default:
      return null;
  }
}

/** DER length octets for `len`. */
export function encodeLength(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  const bytes: number[] = [];
  for (let v = len; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/**
 * A small, bounds-checked reader of the first TLS flight: just enough of the TLS record layer, the ClientHello and its
 * server_name extension (RFC 8446 §4.1.2, RFC 6066 §3) to learn which hostname a visitor asks for, before any TLS
 * library sees the connection. It never throws, whatever bytes it is given.
 *
 * The ClientHello may span several TLS records (record fragmentation) and arrive over several TCP segments: call
 * `parseClientHelloSni` again with all bytes received so far while it answers `need-more`.
 */

export type ClientHelloResult =
  /** Not enough bytes yet: read more and call again with everything received so far. */
  | { kind: 'need-more' }
  /** A complete, well-formed ClientHello. `serverName` is lowercase without a trailing dot; null = no SNI. */
  | { kind: 'ok'; serverName: string | null }
  /** Not a TLS ClientHello, malformed, or larger than allowed: close the connection. */
  | { kind: 'error'; reason: string };

/** Largest ClientHello handshake message accepted (hybrid post-quantum key shares make real ones ~2 KB). */
export const DEFAULT_MAX_CLIENT_HELLO = 16 * 1024;

const RECORD_HEADER = 5;
const MAX_RECORD_PAYLOAD = 16384; // TLSPlaintext.length <= 2^14
const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const NAME_TYPE_HOST = 0;

function err(reason: string): ClientHelloResult {
  return { kind: 'error', reason };
}

/**
 * Extracts the SNI of the ClientHello at the start of `data`.
 * @param maxHelloBytes largest ClientHello handshake message accepted (default 16 KiB).
 */
export function parseClientHelloSni(data: Uint8Array, maxHelloBytes = DEFAULT_MAX_CLIENT_HELLO): ClientHelloResult {
  try {
    return parse(data, maxHelloBytes);
  } catch {
    // Defensive: every access below is bounds-checked, but a reader of hostile input must never throw.
    return err('malformed ClientHello');
  }
}

function parse(data: Uint8Array, maxHelloBytes: number): ClientHelloResult {
  // 1. Reassemble the handshake message from consecutive handshake records.
  const fragments: Uint8Array[] = [];
  let have = 0;
  let need = -1; // total handshake bytes needed (4-byte header + body), once known
  let pos = 0;
  for (;;) {
    if (data.length - pos < 1) return { kind: 'need-more' };
    if (data[pos] !== CONTENT_HANDSHAKE) {
      return err(pos === 0 ? 'not a TLS handshake record' : 'unexpected record type inside the ClientHello');
    }
    if (data.length - pos >= 2 && data[pos + 1] !== 3) return err('not a TLS record (bad version major)');
    if (data.length - pos < RECORD_HEADER) return { kind: 'need-more' };
    const recLen = (data[pos + 3] << 8) | data[pos + 4];
    if (recLen === 0) return err('empty handshake record');
    if (recLen > MAX_RECORD_PAYLOAD) return err('TLS record too long');
    const start = pos + RECORD_HEADER;
    const available = Math.min(recLen, data.length - start);
    if (available > 0) {
      fragments.push(data.subarray(start, start + available));
      have += available;
    }
    if (need < 0 && have >= 4) {
      const head = concat(fragments, 4);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return err('first handshake message is not a ClientHello');
      const bodyLen = (head[1] << 16) | (head[2] << 8) | head[3];
      if (bodyLen > maxHelloBytes) return err(`ClientHello too large (${bodyLen} bytes)`);
      need = 4 + bodyLen;
    }
    if (need >= 0 && have >= need) break;
    if (available < recLen) return { kind: 'need-more' };
    pos = start + recLen;
  }
  const msg = concat(fragments, need);
  return parseClientHelloBody(msg.subarray(4));
}

function concat(parts: Uint8Array[], len: number): Uint8Array {
  if (parts.length === 1 && parts[0].length >= len) return parts[0].subarray(0, len);
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    if (off >= len) break;
    const take = Math.min(p.length, len - off);
    out.set(p.subarray(0, take), off);
    off += take;
  }
  return out;
}

/** A cursor over a byte range that refuses to read past its end. */
class Reader {
  constructor(
    private readonly buf: Uint8Array,
    public pos: number,
    private readonly end: number,
  ) {}
  get remaining(): number {
    return this.end - this.pos;
  }
  u8(): number | null {
    if (this.remaining < 1) return null;
    return this.buf[this.pos++];
  }
  u16(): number | null {
    if (this.remaining < 2) return null;
    const v = (this.buf[this.pos] << 8) | this.buf[this.pos + 1];
    this.pos += 2;
    return v;
  }
  skip(n: number): boolean {
    if (n < 0 || this.remaining < n) return false;
    this.pos += n;
    return true;
  }
  /** A sub-reader over the next `n` bytes (advancing past them), or null if they are not all there. */
  sub(n: number): Reader | null {
    if (n < 0 || this.remaining < n) return null;
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
  bytes(n: number): Uint8Array | null {
    if (n < 0 || this.remaining < n) return null;
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

function parseClientHelloBody(body: Uint8Array): ClientHelloResult {
  const r = new Reader(body, 0, body.length);
  // legacy_version (2) + random (32)
  const major = r.u8();
  if (major === null || r.u8() === null) return err('truncated ClientHello');
  if (major !== 3) return err('unsupported ClientHello version');
  if (!r.skip(32)) return err('truncated ClientHello (random)');
  const sidLen = r.u8();
  if (sidLen === null || sidLen > 32 || !r.skip(sidLen)) return err('malformed ClientHello (session id)');
  const csLen = r.u16();
  if (csLen === null || csLen < 2 || csLen % 2 !== 0 || !r.skip(csLen)) return err('malformed ClientHello (cipher suites)');
  const compLen = r.u8();
  if (compLen === null || compLen < 1 || !r.skip(compLen)) return err('malformed ClientHello (compression methods)');
  if (r.remaining === 0) return { kind: 'ok', serverName: null }; // no extensions at all (old clients)
  const extLen = r.u16();
  if (extLen === null) return err('malformed ClientHello (extensions length)');
  const exts = r.sub(extLen);
  if (!exts) return err('malformed ClientHello (extensions overrun the message)');
  if (r.remaining !== 0) return err('malformed ClientHello (trailing bytes)');
  let serverName: string | null = null;
  let sawSni = false;
  while (exts.remaining > 0) {
    const type = exts.u16();
    const len = exts.u16();
    if (type === null || len === null) return err('malformed extension header');
    const ext = exts.sub(len);
    if (!ext) return err('extension overruns the extensions block');
    if (type !== EXT_SERVER_NAME) continue;
    if (sawSni) return err('duplicate server_name extension');
    sawSni = true;
    const parsed = parseServerNameExtension(ext);
    if (typeof parsed === 'object' && parsed !== null) return parsed;
    serverName = parsed;
  }
  return { kind: 'ok', serverName };
}

/** The host_name of a server_name extension body, null if it names none, or an error result. */
function parseServerNameExtension(ext: Reader): string | null | ClientHelloResult {
  const listLen = ext.u16();
  if (listLen === null) return err('malformed server_name extension');
  const list = ext.sub(listLen);
  if (!list || ext.remaining !== 0) return err('malformed server_name list');
  let host: string | null = null;
  while (list.remaining > 0) {
    const nameType = list.u8();
    const nameLen = list.u16();
    if (nameType === null || nameLen === null) return err('malformed server_name entry');
    const name = list.bytes(nameLen);
    if (!name) return err('server_name entry overruns its list');
    if (nameType !== NAME_TYPE_HOST) continue;
    if (host !== null) return err('more than one host_name in server_name');
    const decoded = decodeHostName(name);
    if (decoded === null) return err('invalid host_name in server_name');
    host = decoded;
  }
  return host;
}

/** ASCII host name, lowercased, trailing dot removed; null if empty, too long or holding non-printable bytes. */
function decodeHostName(name: Uint8Array): string | null {
  if (name.length === 0 || name.length > 255) return null;
  let s = '';
  for (const b of name) {
    if (b <= 0x20 || b >= 0x7f) return null;
    s += String.fromCharCode(b >= 0x41 && b <= 0x5a ? b + 0x20 : b);
  }
  if (s.endsWith('.')) s = s.slice(0, -1);
  return s.length > 0 ? s : null;
}

/**
 * Key vault: envelope encryption of private keys at rest (node:crypto only).
 *
 * Envelope format (one printable ASCII string, six '.'-separated segments):
 *
 *   v1.<keyId>.<wrapIv>.<wrappedKey>.<dataIv>.<ciphertext>
 *
 *   v1          format version (literal)
 *   keyId       16 lowercase hex: first 16 hex chars of sha256(master key). Lets `open` tell a wrong
 *               master key ('wrong_key') apart from corruption ('tampered').
 *   wrapIv      base64url (no padding) of the 12-byte random IV used to wrap the data key
 *   wrappedKey  base64url of AES-256-GCM(masterKey, wrapIv, dataKey) || 16-byte tag   (48 bytes)
 *   dataIv      base64url of the 12-byte random IV used to encrypt the plaintext
 *   ciphertext  base64url of AES-256-GCM(dataKey, dataIv, utf8(plaintext)) || 16-byte tag
 *
 * A fresh random 32-byte data key is generated for every `seal`. Both GCM operations authenticate
 * additional data that binds the version, the key id, which of the two operations it is, and the
 * record id:
 *
 *   "certplane-vault/v1/<keyId>/wrap/<recordId>"   (data-key wrap)
 *   "certplane-vault/v1/<keyId>/data/<recordId>"   (plaintext encryption)
 *
 * so an envelope copied to another row (different record id) fails to open with 'tampered'. The record
 * id is the last element of the AAD and the prefix is fixed, so the encoding is unambiguous.
 *
 * base64url segments are decoded strictly (the segment must be the canonical encoding of its bytes),
 * so any change to any character of the envelope makes `open` fail with a VaultError.
 *
 * Cost: two AES-GCM operations over a few KB plus 32 random bytes — microseconds; no KDF per record.
 * Error messages never contain plaintext, key bytes or envelope contents.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSecretKey,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export type VaultErrorKind = 'tampered' | 'wrong_key' | 'malformed';

export interface KeyVault {
  /** Encrypts `plaintext` for the row `recordId`; returns an opaque printable envelope (format above). */
  seal(recordId: string, plaintext: string): string;
  /** Decrypts an envelope sealed for `recordId`. Throws VaultError('tampered' | 'wrong_key' | 'malformed'). */
  open(recordId: string, envelope: string): string;
  /** First 16 hex chars of sha256(master key). */
  readonly keyId: string;
  /** The id of the master key an envelope was sealed with (null if it is not an envelope). */
  keyIdOf(envelope: string): string | null;
}

const VAULT_MESSAGES: Record<VaultErrorKind, string> = {
  tampered: 'encrypted value failed authentication (tampered, corrupted, or sealed for another record)',
  wrong_key: 'encrypted value was sealed with a different master key',
  malformed: 'encrypted value is not a valid vault envelope',
};

export class VaultError extends Error {
  readonly kind: VaultErrorKind;
  constructor(kind: VaultErrorKind) {
    super(VAULT_MESSAGES[kind]);
    this.name = 'VaultError';
    this.kind = kind;
  }
}


const VERSION = 'v1';
const ALG = 'aes-256-gcm';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID_RE = /^[0-9a-f]{16}$/;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;

function b64u(buf: Buffer): string {
  return buf.toString('base64url');
}

/** Strict base64url decode: returns null unless `s` is exactly the canonical unpadded encoding of its bytes. */
function fromB64u(s: string): Buffer | null {
  if (!B64URL_RE.test(s) || s.length % 4 === 1) return null;
  const buf = Buffer.from(s, 'base64url');
  return buf.toString('base64url') === s ? buf : null;
}

function aad(keyId: string, purpose: 'wrap' | 'data', recordId: string): Buffer {
  return Buffer.from(`certplane-vault/${VERSION}/${keyId}/${purpose}/${recordId}`, 'utf8');
}

function gcmEncrypt(key: KeyObject | Buffer, iv: Buffer, additional: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv(ALG, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(additional);
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([head, tail, cipher.getAuthTag()]);
}

/** Returns null when authentication fails. */
function gcmDecrypt(key: KeyObject | Buffer, iv: Buffer, additional: Buffer, sealed: Buffer): Buffer | null {
  const body = sealed.subarray(0, sealed.length - TAG_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv(ALG, key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(additional);
    decipher.setAuthTag(tag);
    const head = decipher.update(body);
    const tail = decipher.final();
    return tail.length ? Buffer.concat([head, tail]) : head;
  } catch {
    return null;
  }
}

function keyIdOf(masterKey: Buffer): string {
  return createHash('sha256').update(masterKey).digest('hex').slice(0, 16);
}

function importMasterKey(masterKey: Buffer): { keyId: string; master: KeyObject } {
  if (!(masterKey instanceof Uint8Array) || masterKey.length !== KEY_BYTES) {
    const got = masterKey instanceof Uint8Array ? `${masterKey.length} bytes` : typeof masterKey;
    throw new Error(`master key must be exactly ${KEY_BYTES} bytes (got ${got})`);
  }
  const keyBytes = Buffer.from(masterKey); // private copy
  const keyId = keyIdOf(keyBytes);
  const master = createSecretKey(keyBytes);
  keyBytes.fill(0);
  return { keyId, master };
}

/**
 * Creates a vault around a 32-byte master key, which seals. `previous` keys (during a key rotation) only open
 * envelopes sealed with them. The key bytes are copied; the caller may wipe its buffers.
 */
export function createKeyVault(masterKey: Buffer, previous: Buffer[] = []): KeyVault {
  const { keyId, master } = importMasterKey(masterKey);
  const ring = new Map<string, KeyObject>([[keyId, master]]);
  for (const p of previous) {
    const k = importMasterKey(p);
    if (!ring.has(k.keyId)) ring.set(k.keyId, k.master);
  }

  function seal(recordId: string, plaintext: string): string {
    if (typeof recordId !== 'string') throw new TypeError('recordId must be a string');
    if (typeof plaintext !== 'string') throw new TypeError('plaintext must be a string');
    // One CSPRNG call for the data key and both IVs (fewer calls is measurably faster).
    const rnd = randomBytes(KEY_BYTES + 2 * IV_BYTES);
    const dataKey = rnd.subarray(0, KEY_BYTES);
    const wrapIv = rnd.subarray(KEY_BYTES, KEY_BYTES + IV_BYTES);
    const dataIv = rnd.subarray(KEY_BYTES + IV_BYTES);
    try {
      const wrapped = gcmEncrypt(master, wrapIv, aad(keyId, 'wrap', recordId), dataKey);
      const ct = gcmEncrypt(dataKey, dataIv, aad(keyId, 'data', recordId), Buffer.from(plaintext, 'utf8'));
      return [VERSION, keyId, b64u(wrapIv), b64u(wrapped), b64u(dataIv), b64u(ct)].join('.');
    } finally {
      dataKey.fill(0);
    }
  }

  function open(recordId: string, envelope: string): string {
    if (typeof recordId !== 'string') throw new TypeError('recordId must be a string');
    if (typeof envelope !== 'string') throw new VaultError('malformed');
    const parts = envelope.split('.');
    if (parts.length !== 6 || parts[0] !== VERSION) throw new VaultError('malformed');
    const [, envKeyId, wrapIvS, wrappedS, dataIvS, ctS] = parts;
    if (!KEY_ID_RE.test(envKeyId)) throw new VaultError('malformed');
    const wrapIv = fromB64u(wrapIvS);
    const wrapped = fromB64u(wrappedS);
    const dataIv = fromB64u(dataIvS);
    const ct = fromB64u(ctS);
    if (
      !wrapIv || wrapIv.length !== IV_BYTES ||
      !wrapped || wrapped.length !== KEY_BYTES + TAG_BYTES ||
      !dataIv || dataIv.length !== IV_BYTES ||
      !ct || ct.length < TAG_BYTES
    ) {
      throw new VaultError('malformed');
    }
    const opener = ring.get(envKeyId);
    if (!opener) throw new VaultError('wrong_key');

    const dataKey = gcmDecrypt(opener, wrapIv, aad(envKeyId, 'wrap', recordId), wrapped);
    if (!dataKey) throw new VaultError('tampered');
    try {
      const pt = gcmDecrypt(dataKey, dataIv, aad(envKeyId, 'data', recordId), ct);
      if (!pt) throw new VaultError('tampered');
      return pt.toString('utf8');
    } finally {
      dataKey.fill(0);
    }
  }

  return Object.freeze({ seal, open, keyId, keyIdOf: envelopeKeyId });
}

/** The id of the master key an envelope was sealed with (null if it is not an envelope). */
function envelopeKeyId(envelope: string): string | null {
  const parts = envelope.split('.');
  return parts.length === 6 && parts[0] === VERSION && KEY_ID_RE.test(parts[1]) ? parts[1] : null;
}

const MASTER_KEY_FORMAT_ERROR = 'CERTPLANE_MASTER_KEY must be 32 bytes, as 64 hex characters or base64';

/**
 * Parses a master key: 64 hex characters, or base64 (standard or URL-safe alphabet, padding optional)
 * of exactly 32 bytes. Surrounding whitespace is ignored.
 */
export function parseMasterKey(text: string): Buffer {
  if (typeof text !== 'string') throw new Error(MASTER_KEY_FORMAT_ERROR);
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  // 32 bytes = 43 base64 chars + one '=' of padding. The last char carries 2 spare bits that must be zero.
  const m = /^([A-Za-z0-9+/]{43}|[A-Za-z0-9_-]{43})=?$/.exec(t);
  if (m) {
    const body = m[1];
    const urlSafe = /[_-]/.test(body);
    const buf = Buffer.from(body, urlSafe ? 'base64url' : 'base64');
    const canonical = urlSafe ? buf.toString('base64url') : buf.toString('base64').replace(/=+$/, '');
    if (buf.length === KEY_BYTES && canonical === body) return buf;
  }
  throw new Error(MASTER_KEY_FORMAT_ERROR);
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}

/** Reads and validates an existing key file. Returns null if it does not exist. */
function readKeyFile(keyFile: string): Buffer | null {
  let fd: number;
  try {
    fd = openSync(keyFile, 'r');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return null;
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`master key file ${keyFile} is not a regular file`);
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw new Error(
        `master key file ${keyFile} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); ` +
          `run: chmod 600 ${keyFile}`,
      );
    }
    if (st.size > 4096) throw new Error(`master key file ${keyFile} is too large to be a master key`);
    const buf = Buffer.alloc(4096);
    let len = 0;
    for (;;) {
      const n = readSync(fd, buf, len, buf.length - len, null);
      if (n === 0) break;
      len += n;
      if (len === buf.length) break;
    }
    const text = buf.subarray(0, len).toString('utf8');
    buf.fill(0);
    try {
      return parseMasterKey(text);
    } catch {
      if (text.trim() === '') throw new Error(`master key file ${keyFile} is empty`);
      throw new Error(`master key file ${keyFile} is invalid: it must contain 32 bytes, as 64 hex characters or base64`);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Loads the master key:
 *  1. `env` (the value of CERTPLANE_MASTER_KEY) if set to a non-blank value — a blank value is treated as
 *     unset, since container tooling often defines empty variables;
 *  2. otherwise the existing `keyFile` (must not be group/world accessible);
 *  3. otherwise creates `keyFile` with 32 random bytes (64 hex + "\n"), parent directory mode 0o700,
 *     file mode 0o600 created atomically with O_EXCL ('wx'), so it is never world-readable. If another process
 *     wins the creation race, its key is read instead.
 */
export function loadOrCreateMasterKey(opts: { env?: string | undefined; keyFile: string; create?: boolean }): {
  key: Buffer;
  source: 'env' | 'file' | 'created';
} {
  if (opts.env !== undefined && opts.env.trim() !== '') {
    return { key: parseMasterKey(opts.env), source: 'env' };
  }
  const { keyFile } = opts;
  const existing = readKeyFile(keyFile);
  if (existing) return { key: existing, source: 'file' };
  if (opts.create === false) {
    throw new Error(`no master key: set CERTPLANE_MASTER_KEY or provide the key file ${keyFile} (CERTPLANE_MASTER_KEY_FILE)`);
  }

  mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  let fd: number;
  try {
    fd = openSync(keyFile, 'wx', 0o600);
  } catch (e) {
    if (!isErrno(e, 'EEXIST')) throw e;
    key.fill(0);
    // Lost a creation race: the winner may still be writing; wait briefly for its content.
    for (let attempt = 0; ; attempt++) {
      try {
        const k = readKeyFile(keyFile);
        if (k) return { key: k, source: 'file' };
      } catch (err) {
        if (attempt >= 50 || !(err instanceof Error) || !/is empty$/.test(err.message)) throw err;
      }
      sleepMs(20);
    }
  }
  const text = Buffer.from(key.toString('hex') + '\n', 'utf8');
  try {
    let off = 0;
    while (off < text.length) off += writeSync(fd, text, off, text.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(keyFile);
    } catch {
      /* best effort */
    }
    throw e;
  } finally {
    text.fill(0);
  }
  closeSync(fd);
  return { key, source: 'created' };
}

const VERIFICATION_RECORD = 'certplane:verification';
const VERIFICATION_VALUE = 'ok';

/** A token to store once at bootstrap; later `checkVerificationToken` tells whether the master key is the same. */
export function verificationToken(vault: KeyVault): string {
  return vault.seal(VERIFICATION_RECORD, VERIFICATION_VALUE);
}

/**
 * True if the token opens to 'ok' with this vault; false if it was sealed with another master key
 * ('wrong_key'). A 'tampered' or 'malformed' token is not a key mismatch: that VaultError is rethrown so the
 * caller can report corruption rather than a wrong key.
 */
export function checkVerificationToken(vault: KeyVault, token: string): boolean {
  try {
    return vault.open(VERIFICATION_RECORD, token) === VERIFICATION_VALUE;
  } catch (e) {
    if (e instanceof VaultError && e.kind === 'wrong_key') return false;
    throw e;
  }
}

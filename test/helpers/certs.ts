/**
 * Certificate factory for tests: every test generates its own CAs, leaves and chains (no checked-in fixtures).
 *
 * Built on @peculiar/x509 with Node's WebCrypto. Keys are generated with node:crypto and the issuer's private key is
 * imported into WebCrypto only to sign. RSA key generation is slow, so RSA key pairs come from a small per-process
 * pool (see POOL_SIZE); certificates are always fresh, each with its own random 16-byte serial, so two calls never
 * produce the same certificate (or fingerprint) by accident. Consecutive calls always get different keys.
 *
 * @peculiar/x509 needs the Reflect metadata API (reflect-metadata, loaded first). Tests that want the library
 * directly use the `x509` namespace exported below.
 */
import {
  type KeyObject,
  createPrivateKey,
  createPublicKey,
  generateKeyPair as generateKeyPairCb,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { promisify } from 'node:util';
import type * as X509Types from '@peculiar/x509';

import 'reflect-metadata'; // @peculiar/x509 (through tsyringe) needs the Reflect metadata API

export const x509: typeof X509Types = await import('@peculiar/x509');
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const generateKeyPair = promisify(generateKeyPairCb);
const subtle = webcrypto.subtle;

export type KeyType = 'rsa2048' | 'rsa4096' | 'p256' | 'p384' | 'ed25519';
export type SignHash = 'SHA-256' | 'SHA-384' | 'SHA-512';

export interface Issued {
  certPem: string; // PEM of this certificate
  keyPem: string; // PKCS#8 PEM of its private key
  key: KeyObject;
  keyType: KeyType;
  subjectCN: string;
  keyPemAs(format: 'pkcs1' | 'pkcs8' | 'sec1'): string; // pkcs1 only for RSA, sec1 only for EC (throws otherwise)
  encryptedKeyPem(passphrase?: string): string; // PKCS#8 encrypted PEM ("ENCRYPTED PRIVATE KEY")
  // --- extras (not required by callers, handy for assertions) ---
  certDer: Buffer;
  /** Serial as lowercase hex without leading zeros (what was requested or generated). */
  serialHex: string;
  /** Validity as encoded in the certificate (whole seconds). */
  notBefore: Date;
  notAfter: Date;
  isCA: boolean;
  org?: string;
  signHash: SignHash;
}

export interface CertOptions {
  keyType?: KeyType; // default 'p256' (fast)
  cn?: string; // default unique-ish name
  org?: string; // subject O attribute (and so the issuer O of certificates this one signs)
  issuer?: Issued; // sign with this CA; omitted = self-signed
  isCA?: boolean; // set by makeCA / makeLeaf
  notBefore?: Date;
  notAfter?: Date; // default now-1h .. now+365d; past dates allowed (expired certs)
  serial?: string; // hex serial; default random positive 16 bytes
  signHash?: SignHash; // default 'SHA-256' (ignored for Ed25519, which has no separate hash)
  dnsNames?: string[]; // subjectAltName
}

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

// --- keys -------------------------------------------------------------------------------------------------------

/** Pool size per key type; Infinity = always generate a fresh key (cheap types). */
const POOL_SIZE: Record<KeyType, number> = {
  rsa2048: 4,
  rsa4096: 3,
  p256: Infinity,
  p384: Infinity,
  ed25519: Infinity,
};
const pools = new Map<KeyType, (Promise<KeyPair> | undefined)[]>();
const poolCursor = new Map<KeyType, number>();

function freshKeyPair(keyType: KeyType): Promise<KeyPair> {
  switch (keyType) {
    case 'rsa2048':
      return generateKeyPair('rsa', { modulusLength: 2048 });
    case 'rsa4096':
      return generateKeyPair('rsa', { modulusLength: 4096 });
    case 'p256':
      return generateKeyPair('ec', { namedCurve: 'P-256' });
    case 'p384':
      return generateKeyPair('ec', { namedCurve: 'P-384' });
    case 'ed25519':
      return generateKeyPair('ed25519');
    default:
      throw new Error(`unknown key type ${String(keyType)}`);
  }
}

/** The pool slot `index`, starting its generation if it is empty. */
function poolSlot(keyType: KeyType, index: number): Promise<KeyPair> {
  let pool = pools.get(keyType);
  if (!pool) pools.set(keyType, (pool = []));
  let slot = pool[index];
  if (!slot) {
    const p = freshKeyPair(keyType);
    pool[index] = slot = p;
    p.catch(() => {
      if (pool![index] === p) pool![index] = undefined; // never keep a failed generation
    });
  }
  return slot;
}

/**
 * A key pair of the given type. RSA pairs are pooled: calls take pool slots round-robin (generating a slot the first
 * time it is used), so consecutive calls never return the same pair while at most POOL_SIZE pairs are ever generated.
 * `fresh: true` bypasses the pool.
 */
export function generateKey(keyType: KeyType, opts: { fresh?: boolean } = {}): Promise<KeyPair> {
  const size = POOL_SIZE[keyType];
  if (size === undefined) return Promise.reject(new Error(`unknown key type ${String(keyType)}`));
  if (opts.fresh || size === Infinity) return freshKeyPair(keyType);
  const cursor = poolCursor.get(keyType) ?? 0;
  poolCursor.set(keyType, cursor + 1);
  return poolSlot(keyType, cursor % size);
}

/**
 * Starts generating (in parallel, on libuv's thread pool) the key pairs the next `count` generateKey calls of this
 * type will use, without consuming them. Resolves when they are ready. Handy in a `before` hook for RSA-4096.
 */
export async function warmKeys(keyType: KeyType, count: number): Promise<void> {
  const size = POOL_SIZE[keyType];
  if (size === undefined || size === Infinity) return;
  const cursor = poolCursor.get(keyType) ?? 0;
  const slots: Promise<KeyPair>[] = [];
  for (let i = 0; i < Math.min(count, size); i++) slots.push(poolSlot(keyType, (cursor + i) % size));
  await Promise.all(slots);
}

function keyTypeOf(key: KeyObject): KeyType {
  const t = key.asymmetricKeyType;
  if (t === 'rsa') return (key.asymmetricKeyDetails?.modulusLength ?? 2048) >= 4096 ? 'rsa4096' : 'rsa2048';
  if (t === 'ec') return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'p384' : 'p256';
  if (t === 'ed25519') return 'ed25519';
  throw new Error(`unsupported issuer key type ${String(t)}`);
}

/** WebCrypto import parameters and signing algorithm for a key type and hash. */
function webAlgorithms(keyType: KeyType, hash: SignHash): { importAlg: Parameters<typeof subtle.importKey>[2]; signAlg: Algorithm | EcdsaParams } {
  switch (keyType) {
    case 'rsa2048':
    case 'rsa4096':
      // For RSA the hash is bound to the imported key and @peculiar/x509 takes it from there.
      return { importAlg: { name: 'RSASSA-PKCS1-v1_5', hash }, signAlg: { name: 'RSASSA-PKCS1-v1_5', hash } as Algorithm };
    case 'p256':
    case 'p384':
      return {
        importAlg: { name: 'ECDSA', namedCurve: keyType === 'p256' ? 'P-256' : 'P-384' },
        signAlg: { name: 'ECDSA', hash } as EcdsaParams,
      };
    case 'ed25519':
      return { importAlg: { name: 'Ed25519' }, signAlg: { name: 'Ed25519' } };
  }
}

// --- certificates -----------------------------------------------------------------------------------------------

let nameCounter = 0;
function defaultCN(kind: string): string {
  nameCounter += 1;
  return `certplane-test-${kind}-${nameCounter}-${randomBytes(4).toString('hex')}`;
}

/** Random positive 16-byte serial with a non-zero top byte (so always exactly 16 bytes). */
function randomSerialHex(): string {
  const b = randomBytes(16);
  b[0] = (b[0] & 0x7f) | 0x01;
  return b.toString('hex');
}

function normalizeHexSerial(hex: string): string {
  const clean = hex.replace(/^0x/i, '').replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(clean)) throw new Error(`serial must be hex: ${hex}`);
  const stripped = clean.replace(/^0+(?=.)/, '');
  if (/^0+$/.test(stripped)) throw new Error('serial must be non-zero'); // @peculiar/x509 would substitute a random one
  return stripped;
}

/** Certificates encode whole seconds. */
function toSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function makeIssued(
  cert: X509Types.X509Certificate,
  privateKey: KeyObject,
  keyType: KeyType,
  subjectCN: string,
  extra: { serialHex: string; isCA: boolean; org?: string; signHash: SignHash },
): Issued {
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const certDer = Buffer.from(cert.rawData);
  return {
    certPem: cert.toString('pem').replace(/\r\n/g, '\n').trimEnd() + '\n',
    keyPem,
    key: privateKey,
    keyType,
    subjectCN,
    keyPemAs(format) {
      const isRsa = keyType === 'rsa2048' || keyType === 'rsa4096';
      const isEc = keyType === 'p256' || keyType === 'p384';
      if (format === 'pkcs8') return keyPem;
      if (format === 'pkcs1' && !isRsa) throw new Error(`pkcs1 export needs an RSA key, this is ${keyType}`);
      if (format === 'sec1' && !isEc) throw new Error(`sec1 export needs an EC key, this is ${keyType}`);
      if (format !== 'pkcs1' && format !== 'sec1') throw new Error(`unknown key format ${String(format)}`);
      return privateKey.export({ type: format, format: 'pem' }) as string;
    },
    encryptedKeyPem(passphrase = 'certplane-test-passphrase') {
      return privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
    },
    certDer,
    serialHex: extra.serialHex,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    isCA: extra.isCA,
    org: extra.org,
    signHash: extra.signHash,
  };
}

async function makeCert(opts: CertOptions, isCA: boolean): Promise<Issued> {
  const keyType = opts.keyType ?? 'p256';
  const subjectCN = opts.cn ?? defaultCN(isCA ? 'ca' : 'leaf');
  const signHash = opts.signHash ?? 'SHA-256';
  const now = Date.now();
  const notBefore = toSeconds(opts.notBefore ?? new Date(now - 3600_000));
  const notAfter = toSeconds(opts.notAfter ?? new Date(now + 365 * 86400_000));
  const serialHex = normalizeHexSerial(opts.serial ?? randomSerialHex());

  const { privateKey, publicKey } = await generateKey(keyType);
  const spki = publicKey.export({ type: 'spki', format: 'der' });

  // Signer: the issuer's key, or our own for a self-signed certificate.
  const signerKey = opts.issuer ? opts.issuer.key : privateKey;
  const signerType = opts.issuer ? keyTypeOf(opts.issuer.key) : keyType;
  const { importAlg, signAlg } = webAlgorithms(signerType, signHash);
  const signingKey = await subtle.importKey(
    'pkcs8',
    signerKey.export({ type: 'pkcs8', format: 'der' }),
    importAlg,
    false,
    ['sign'],
  );

  const subjectName: X509Types.JsonName = [];
  if (opts.org !== undefined) subjectName.push({ O: [opts.org] });
  subjectName.push({ CN: [subjectCN] });
  const subject = new x509.Name(subjectName);

  let issuerName: X509Types.Name = subject;
  let issuerSpki: BufferSource = spki;
  if (opts.issuer) {
    const issuerCert = new x509.X509Certificate(opts.issuer.certPem);
    issuerName = issuerCert.subjectName;
    issuerSpki = createPublicKey(opts.issuer.key).export({ type: 'spki', format: 'der' });
  }

  const extensions: X509Types.Extension[] = [
    new x509.BasicConstraintsExtension(isCA, undefined, true),
    isCA
      ? new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)
      : new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(spki),
  ];
  if (opts.issuer) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuerSpki));
  if (!isCA) extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]));
  if (opts.dnsNames?.length) {
    extensions.push(new x509.SubjectAlternativeNameExtension(opts.dnsNames.map((value) => ({ type: 'dns' as const, value }))));
  }

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex,
    subject,
    issuer: issuerName,
    notBefore,
    notAfter,
    publicKey: spki,
    signingKey,
    signingAlgorithm: signAlg,
    extensions,
  });
  return makeIssued(cert, privateKey, keyType, subjectCN, { serialHex, isCA, org: opts.org, signHash });
}

/** A CA certificate (basicConstraints CA:TRUE, critical; keyCertSign + cRLSign). Self-signed unless `issuer` is set. */
export function makeCA(opts: CertOptions = {}): Promise<Issued> {
  return makeCert(opts, opts.isCA ?? true);
}

/** A client-auth leaf (CA:FALSE; digitalSignature; EKU clientAuth). Self-signed unless `issuer` is set. */
export function makeLeaf(opts: CertOptions = {}): Promise<Issued> {
  return makeCert(opts, opts.isCA ?? false);
}

/** root CA -> intermediate CA -> leaf, all of one key type. `chainPem` is intermediate PEM + root PEM. */
export async function makeChain(
  keyType: KeyType = 'p256',
): Promise<{ root: Issued; intermediate: Issued; leaf: Issued; chainPem: string }> {
  await warmKeys(keyType, 3);
  const root = await makeCA({ keyType, cn: defaultCN('root'), org: 'Certplane Test Root' });
  const intermediate = await makeCA({ keyType, cn: defaultCN('intermediate'), org: 'Certplane Test Intermediate', issuer: root });
  const leaf = await makeLeaf({ keyType, issuer: intermediate });
  return { root, intermediate, leaf, chainPem: intermediate.certPem + root.certPem };
}

/** Convenience: re-parse a PEM private key exported by this module (used to check round-tripping). */
export function roundTripKey(pem: string, passphrase?: string): KeyObject {
  return createPrivateKey(passphrase === undefined ? pem : { key: pem, passphrase });
}

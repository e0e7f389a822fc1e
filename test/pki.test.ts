import * as crypto from 'node:crypto';
import { after, before, describe, it, test } from 'node:test';
import { publicKeySpkiOf } from '../src/pki/keys.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { type KeyObject, X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Issued, type KeyType, makeCA, makeChain, makeLeaf, warmKeys } from './helpers/certs.js';
import { assertPkiError, oid, pemToDer, prng, tlv } from './helpers/pki.js';
import {
  type ParsedCertificate,
  PkiError,
  type PkiErrorKind,
  isIssuedBy,
  keyMatchesCertificate,
  parseCertificates,
  parsePrivateKey,
  signatureAlgorithmOf,
  verifyChainOrder,
} from '../src/pki/index.js';

// ------------------------------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------------------------------

const ALL_KINDS: PkiErrorKind[] = ['cert_empty', 'cert_unparseable', 'key_empty', 'key_unparseable', 'key_encrypted', 'key_unsupported'];

function colonHex(buf: Buffer): string {
  return buf.toString('hex').toUpperCase().match(/../g)!.join(':');
}

const NULL = Buffer.from([0x05, 0x00]);
const int = (n: number): Buffer => tlv(0x02, Buffer.from(n < 0x80 ? [n] : [0, n]));
/** A "certificate" that only has the outer shape signatureAlgorithmOf looks at. */
function fakeCertWithSigAlg(algId: Buffer): Buffer {
  return tlv(0x30, tlv(0x30), algId, tlv(0x03, Buffer.from([0x00, 0x01])));
}
function pssAlgId(hashOid: string, salt: number, mgfHashOid = hashOid, trailer?: number): Buffer {
  const fields = [
    tlv(0xa0, tlv(0x30, oid(hashOid), NULL)),
    tlv(0xa1, tlv(0x30, oid('1.2.840.113549.1.1.8'), tlv(0x30, oid(mgfHashOid), NULL))),
    tlv(0xa2, int(salt)),
  ];
  if (trailer !== undefined) fields.push(tlv(0xa3, int(trailer)));
  return tlv(0x30, oid('1.2.840.113549.1.1.10'), tlv(0x30, ...fields));
}

function checkAgainstNode(p: ParsedCertificate): void {
  const x = new X509Certificate(p.der);
  assert.equal(p.serialNumber, BigInt('0x' + x.serialNumber).toString(10), 'serial vs node');
  assert.equal(p.notBefore.getTime(), new Date(x.validFrom).getTime(), 'notBefore vs node');
  assert.equal(p.notAfter.getTime(), new Date(x.validTo).getTime(), 'notAfter vs node');
  assert.equal(p.fingerprintSha256, x.fingerprint256.replace(/:/g, '').toLowerCase(), 'sha256 vs node');
  assert.equal(p.x509.fingerprint256, x.fingerprint256);
}

// ------------------------------------------------------------------------------------------------------------------
// per key type
// ------------------------------------------------------------------------------------------------------------------

const KEY_TYPES: KeyType[] = ['rsa2048', 'rsa4096', 'p256', 'p384', 'ed25519'];
const SIG_DEFAULT: Record<KeyType, string> = {
  rsa2048: 'SHA256WithRSA',
  rsa4096: 'SHA256WithRSA',
  p256: 'ECDSAWithSHA256',
  p384: 'ECDSAWithSHA256',
  ed25519: 'Ed25519',
};
/** An extra (keyType, signHash) -> expected name per type. */
const SIG_VARIANT: Record<KeyType, ['SHA-256' | 'SHA-384' | 'SHA-512', string]> = {
  rsa2048: ['SHA-512', 'SHA512WithRSA'],
  rsa4096: ['SHA-384', 'SHA384WithRSA'],
  p256: ['SHA-512', 'ECDSAWithSHA512'],
  p384: ['SHA-384', 'ECDSAWithSHA384'],
  ed25519: ['SHA-512', 'Ed25519'], // Ed25519 has no separate hash
};

before(async () => {
  // RSA key generation dominates the runtime: start the pool in parallel up front.
  await Promise.all([warmKeys('rsa4096', 3), warmKeys('rsa2048', 4)]);
});

for (const keyType of KEY_TYPES) {
  describe(`key type ${keyType}`, () => {
    let ca: Issued;
    let leaf: Issued;
    let variant: Issued;
    const notBefore = new Date('2024-03-01T10:20:30Z');
    const notAfter = new Date('2031-07-04T05:06:07Z');

    before(async () => {
      ca = await makeCA({ keyType, org: `Certplane ${keyType} CA Org`, cn: `${keyType} root` });
      leaf = await makeLeaf({ keyType, issuer: ca, cn: `${keyType}.leaf.example`, serial: '7f0102030405060708090a0b0c0d0e0f', notBefore, notAfter, dnsNames: ['a.example'] });
      variant = await makeLeaf({ keyType, issuer: ca, signHash: SIG_VARIANT[keyType][0] });
    });

    test('leaf fields are exact', () => {
      const [p] = parseCertificates(leaf.certPem);
      const der = pemToDer(leaf.certPem);
      assert.deepEqual(p.der, der);
      assert.equal(p.pem, leaf.certPem);
      assert.equal(p.issuer, `Certplane ${keyType} CA Org`);
      assert.equal(p.subject, `${keyType}.leaf.example`);
      assert.equal(p.serialNumber, BigInt('0x7f0102030405060708090a0b0c0d0e0f').toString(10));
      assert.equal(p.serialNumber, '168817188565290558664834452051335122447' /* python: int('7f01...0e0f', 16) */);
      assert.equal(p.signature, SIG_DEFAULT[keyType]);
      assert.equal(signatureAlgorithmOf(der), SIG_DEFAULT[keyType]);
      assert.equal(p.notBefore.toISOString(), notBefore.toISOString());
      assert.equal(p.notAfter.toISOString(), notAfter.toISOString());
      assert.equal(p.isCA, false);
      assert.equal(p.fingerprintSha256, createHash('sha256').update(der).digest('hex'));
      assert.match(p.fingerprintSha256, /^[0-9a-f]{64}$/);
      assert.equal(p.fingerprintMd5, 'MD5 Fingerprint=' + colonHex(createHash('md5').update(der).digest()));
      assert.match(p.fingerprintMd5, /^MD5 Fingerprint=([0-9A-F]{2}:){15}[0-9A-F]{2}$/);
      assert.deepEqual(p.publicKeySpki, createPublicKey(leaf.key).export({ type: 'spki', format: 'der' }));
      checkAgainstNode(p);
    });

    test('CA fields are exact (self-signed: issuer O is its own O)', () => {
      const [p] = parseCertificates(ca.certPem);
      assert.equal(p.isCA, true);
      assert.equal(p.x509.ca, true);
      assert.equal(p.issuer, `Certplane ${keyType} CA Org`);
      assert.equal(p.subject, `${keyType} root`);
      assert.equal(p.serialNumber, BigInt('0x' + ca.serialHex).toString(10));
      assert.equal(p.signature, SIG_DEFAULT[keyType]);
      assert.equal(p.notAfter.getTime(), ca.notAfter.getTime());
      assert.ok(isIssuedBy(p, p), 'self-signed');
      checkAgainstNode(p);
    });

    test(`signHash ${SIG_VARIANT[keyType][0]} -> ${SIG_VARIANT[keyType][1]}`, () => {
      const [p] = parseCertificates(variant.certPem);
      assert.equal(p.signature, SIG_VARIANT[keyType][1]);
      const [caP] = parseCertificates(ca.certPem);
      assert.ok(isIssuedBy(p, caP));
    });

    test('key formats parse and match; other keys do not', () => {
      const [p] = parseCertificates(leaf.certPem);
      const formats: ('pkcs1' | 'pkcs8' | 'sec1')[] = keyType.startsWith('rsa') ? ['pkcs8', 'pkcs1'] : keyType === 'ed25519' ? ['pkcs8'] : ['pkcs8', 'sec1'];
      for (const f of formats) {
        const pem = leaf.keyPemAs(f);
        const key = parsePrivateKey(pem);
        assert.equal(key.type, 'private');
        assert.ok(keyMatchesCertificate(key, p), `${f} matches`);
        // CRLF line ends and surrounding text are tolerated.
        const noisy = '# my key\r\n\r\n' + pem.replace(/\n/g, '\r\n') + '\r\ntrailing comment\r\n';
        assert.ok(keyMatchesCertificate(parsePrivateKey(noisy), p), `${f} with CRLF + comments`);
        // round trip through node
        assert.deepEqual(createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' }), leaf.key.export({ type: 'pkcs8', format: 'der' }));
      }
      if (keyType === 'p256' || keyType === 'p384') {
        const params = keyType === 'p256' ? 'BggqhkjOPQMBBw==' : 'BgUrgQQAIg==';
        const withParams = `-----BEGIN EC PARAMETERS-----\n${params}\n-----END EC PARAMETERS-----\n` + leaf.keyPemAs('sec1');
        assert.ok(keyMatchesCertificate(parsePrivateKey(withParams), p), 'EC PARAMETERS + EC PRIVATE KEY');
      }
      if (!keyType.startsWith('rsa')) assert.throws(() => leaf.keyPemAs('pkcs1'));
      if (!keyType.startsWith('p')) assert.throws(() => leaf.keyPemAs('sec1'));
      // key + certificate in one paste: the key is found, certificates are ignored.
      assert.ok(keyMatchesCertificate(parsePrivateKey(leaf.certPem + leaf.keyPem), p));
      // mismatches
      assert.equal(keyMatchesCertificate(ca.key, p), false, 'CA key vs leaf cert');
      assert.equal(keyMatchesCertificate(variant.key, p), false, 'other leaf key');
      assert.equal(keyMatchesCertificate(leaf.key, parseCertificates(ca.certPem)[0]), false, 'leaf key vs CA cert');
    });

    test('encrypted keys -> key_encrypted', () => {
      assertPkiError(() => parsePrivateKey(leaf.encryptedKeyPem()), 'key_encrypted', 'pkcs8 encrypted');
      assert.match(leaf.encryptedKeyPem('pw'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
      if (keyType.startsWith('rsa') || keyType.startsWith('p')) {
        const legacy = leaf.key.export({
          type: keyType.startsWith('rsa') ? 'pkcs1' : 'sec1',
          format: 'pem',
          cipher: 'aes-128-cbc',
          passphrase: 'pw',
        }) as string;
        assert.match(legacy, /Proc-Type: 4,ENCRYPTED/);
        assertPkiError(() => parsePrivateKey(legacy), 'key_encrypted', 'legacy encrypted');
      }
    });
  });
}

// ------------------------------------------------------------------------------------------------------------------
// names, serials, dates
// ------------------------------------------------------------------------------------------------------------------

describe('presentation rules', () => {
  test('issuer falls back to CN when the issuer has no O; subject is the CN', async () => {
    const ca = await makeCA({ cn: 'No Org Root CA' });
    const leaf = await makeLeaf({ issuer: ca, cn: 'client-1', org: 'Leaf Org' });
    const [p] = parseCertificates(leaf.certPem);
    assert.equal(p.issuer, 'No Org Root CA');
    assert.equal(p.subject, 'client-1');
  });

  test('serial numbers are decimal, without leading zeros', async () => {
    const cases: [string, string][] = [
      ['0a1b2c', '662316'],
      ['000001', '1'],
      ['ff', '255'], // encoded as 00 ff
      ['80000000000000000000000000000000', (1n << 127n).toString()],
      ['05123d5bb0a6e41acd8c7c79f5bd6a15', BigInt('0x05123d5bb0a6e41acd8c7c79f5bd6a15').toString()],
    ];
    for (const [hex, dec] of cases) {
      const c = await makeLeaf({ serial: hex });
      const [p] = parseCertificates(c.certPem);
      assert.equal(p.serialNumber, dec, hex);
      checkAgainstNode(p);
    }
  });

  test('expired and far-future (GeneralizedTime) validity', async () => {
    const expired = await makeLeaf({ notBefore: new Date('2019-01-01T00:00:00Z'), notAfter: new Date('2020-02-29T23:59:59Z') });
    const [e] = parseCertificates(expired.certPem);
    assert.equal(e.notBefore.toISOString(), '2019-01-01T00:00:00.000Z');
    assert.equal(e.notAfter.toISOString(), '2020-02-29T23:59:59.000Z');
    const future = await makeCA({ notAfter: new Date('2099-12-31T23:59:59Z') });
    const [f] = parseCertificates(future.certPem);
    assert.equal(f.notAfter.toISOString(), '2099-12-31T23:59:59.000Z');
    checkAgainstNode(e);
    checkAgainstNode(f);
  });

  test('the signature is the issuer\'s algorithm (RSA CA signing an EC leaf)', async () => {
    const rsaCA = await makeCA({ keyType: 'rsa2048', org: 'RSA CA' });
    const ecLeaf = await makeLeaf({ keyType: 'p256', issuer: rsaCA });
    const [p] = parseCertificates(ecLeaf.certPem);
    assert.equal(p.signature, 'SHA256WithRSA');
    assert.ok(keyMatchesCertificate(parsePrivateKey(ecLeaf.keyPem), p));
    const edLeaf = await makeLeaf({ keyType: 'ed25519', issuer: await makeCA({ keyType: 'p384' }), signHash: 'SHA-384' });
    assert.equal(parseCertificates(edLeaf.certPem)[0].signature, 'ECDSAWithSHA384');
  });

  test('signatureAlgorithmOf maps every known OID, PSS parameters, and unknowns', () => {
    const simple: [string, string][] = [
      ['1.2.840.113549.1.1.4', 'MD5WithRSA'],
      ['1.2.840.113549.1.1.5', 'SHA1WithRSA'],
      ['1.2.840.113549.1.1.11', 'SHA256WithRSA'],
      ['1.2.840.113549.1.1.12', 'SHA384WithRSA'],
      ['1.2.840.113549.1.1.13', 'SHA512WithRSA'],
      ['1.2.840.10045.4.1', 'ECDSAWithSHA1'],
      ['1.2.840.10045.4.3.2', 'ECDSAWithSHA256'],
      ['1.2.840.10045.4.3.3', 'ECDSAWithSHA384'],
      ['1.2.840.10045.4.3.4', 'ECDSAWithSHA512'],
      ['1.2.840.10040.4.3', 'DSAWithSHA1'],
      ['2.16.840.1.101.3.4.3.2', 'DSAWithSHA256'],
      ['1.2.840.113549.1.1.14', 'UnknownSignatureAlgorithm'], // sha224WithRSA: Go has no constant
      ['1.3.101.113', 'UnknownSignatureAlgorithm'], // Ed448
      ['1.2.3.4.5.6.7.8.9.12345678901234567890', 'UnknownSignatureAlgorithm'], // arc beyond 2^53
    ];
    for (const [o, name] of simple) {
      assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(tlv(0x30, oid(o), NULL))), name, o);
      assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(tlv(0x30, oid(o)))), name, `${o} without params`);
    }
    assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(tlv(0x30, oid('1.3.101.112')))), 'Ed25519');
    assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(tlv(0x30, oid('1.3.101.112'), NULL))), 'UnknownSignatureAlgorithm', 'Ed25519 params must be absent');

    const SHA256 = '2.16.840.1.101.3.4.2.1';
    const SHA384 = '2.16.840.1.101.3.4.2.2';
    const SHA512 = '2.16.840.1.101.3.4.2.3';
    assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(pssAlgId(SHA256, 32))), 'SHA256WithRSAPSS');
    assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(pssAlgId(SHA384, 48))), 'SHA384WithRSAPSS');
    assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(pssAlgId(SHA512, 64, SHA512, 1))), 'SHA512WithRSAPSS');
    assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(pssAlgId(SHA256, 20))), 'UnknownSignatureAlgorithm', 'salt != hash length');
    assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(pssAlgId(SHA256, 32, SHA384))), 'UnknownSignatureAlgorithm', 'MGF1 hash mismatch');
    assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(pssAlgId(SHA256, 32, SHA256, 2))), 'UnknownSignatureAlgorithm', 'trailer field');
    assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(tlv(0x30, oid('1.2.840.113549.1.1.10')))), 'UnknownSignatureAlgorithm', 'PSS without params');
    assert.equal(signatureAlgorithmOf(fakeCertWithSigAlg(tlv(0x30, oid('1.2.840.113549.1.1.10'), tlv(0x30, Buffer.from([0xa0, 0x05, 0x30])))))
      , 'UnknownSignatureAlgorithm', 'malformed PSS params');

    for (const bad of [Buffer.alloc(0), Buffer.from([0x30]), Buffer.from([0x30, 0x80, 0, 0]), Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), randomBytes(64),
      Buffer.concat([fakeCertWithSigAlg(tlv(0x30, oid('1.2.840.113549.1.1.11'))), Buffer.from([0])])]) {
      assertPkiError(() => signatureAlgorithmOf(bad), 'cert_unparseable', `sigalg of ${bad.toString('hex').slice(0, 20)}`);
    }
    assertPkiError(() => signatureAlgorithmOf('not a buffer' as unknown as Buffer), 'cert_unparseable', 'non-buffer');
  });
});

// ------------------------------------------------------------------------------------------------------------------
// chains
// ------------------------------------------------------------------------------------------------------------------

describe('chains', () => {
  for (const keyType of ['p256', 'rsa2048', 'ed25519'] as KeyType[]) {
    test(`root + intermediate + leaf (${keyType}) parse in order and verify`, async () => {
      const { root, intermediate, leaf, chainPem } = await makeChain(keyType);
      assert.equal(chainPem, intermediate.certPem + root.certPem);
      const bundle = '# leaf\n' + leaf.certPem + '\n# chain\r\n' + chainPem.replace(/\n/g, '\r\n');
      const certs = parseCertificates(bundle);
      assert.deepEqual(certs.map((c) => c.subject), [leaf.subjectCN, intermediate.subjectCN, root.subjectCN]);
      assert.deepEqual(certs.map((c) => c.isCA), [false, true, true]);
      assert.deepEqual(certs.map((c) => c.issuer), ['Certplane Test Intermediate', 'Certplane Test Root', 'Certplane Test Root']);
      const [l, i, r] = certs;
      assert.equal(verifyChainOrder(certs), true);
      assert.equal(verifyChainOrder([l, i]), true);
      assert.equal(verifyChainOrder([l]), true);
      assert.equal(verifyChainOrder([r, i, l]), false);
      assert.equal(verifyChainOrder([l, r, i]), false);
      assert.equal(verifyChainOrder([i, l, r]), false);
      assert.equal(isIssuedBy(l, i), true);
      assert.equal(isIssuedBy(l, r), false);
      assert.equal(isIssuedBy(i, r), true);
      assert.equal(isIssuedBy(r, r), true);
      assert.ok(keyMatchesCertificate(parsePrivateKey(leaf.keyPem), l));
    });
  }

  test('same-name impostor CA does not verify', async () => {
    const real = await makeCA({ cn: 'Twin CA', org: 'Twin' });
    const fake = await makeCA({ cn: 'Twin CA', org: 'Twin' });
    const leaf = await makeLeaf({ issuer: real });
    const [l] = parseCertificates(leaf.certPem);
    assert.equal(isIssuedBy(l, parseCertificates(real.certPem)[0]), true);
    assert.equal(isIssuedBy(l, parseCertificates(fake.certPem)[0]), false);
  });
});

// ------------------------------------------------------------------------------------------------------------------
// error kinds
// ------------------------------------------------------------------------------------------------------------------

describe('error kinds', () => {
  let leaf: Issued;
  let rsaLeaf: Issued;
  before(async () => {
    leaf = await makeLeaf({ keyType: 'p256' });
    rsaLeaf = await makeLeaf({ keyType: 'rsa2048' });
  });

  test('certificates', () => {
    const pem = leaf.certPem;
    const b64 = pem.split('\n').slice(1, -2).join('');
    const wrap = (s: string): string => `-----BEGIN CERTIFICATE-----\n${s}\n-----END CERTIFICATE-----\n`;
    assertPkiError(() => parseCertificates(''), 'cert_empty', 'empty');
    assertPkiError(() => parseCertificates('  \r\n\t\n'), 'cert_empty', 'whitespace');
    assertPkiError(() => parseCertificates(leaf.keyPem), 'cert_empty', 'private key only');
    assertPkiError(() => parseCertificates(rsaLeaf.keyPemAs('pkcs1')), 'cert_empty', 'RSA key only');
    assertPkiError(() => parseCertificates('hello, this is not a certificate'), 'cert_unparseable', 'garbage');
    assertPkiError(() => parseCertificates(b64), 'cert_unparseable', 'bare base64 without armour');
    const half = b64.slice(0, Math.floor(b64.length / 2));
    assertPkiError(() => parseCertificates(wrap(half)), 'cert_unparseable', 'base64 cut in half');
    assertPkiError(() => parseCertificates(wrap(half.slice(0, half.length - (half.length % 4)))), 'cert_unparseable', 'valid base64, truncated DER');
    assertPkiError(() => parseCertificates(pem.slice(0, pem.indexOf('-----END'))), 'cert_unparseable', 'no END line');
    assertPkiError(() => parseCertificates(pem.slice(0, Math.floor(pem.length / 2))), 'cert_unparseable', 'PEM cut in half');
    assertPkiError(() => parseCertificates(wrap('')), 'cert_unparseable', 'empty block');
    assertPkiError(() => parseCertificates(wrap(b64.slice(0, 40) + '!!' + b64.slice(40))), 'cert_unparseable', 'bad base64 character');
    assertPkiError(() => parseCertificates(wrap(pemToDer(leaf.keyPem).toString('base64'))), 'cert_unparseable', 'key DER in CERTIFICATE block');
    const der = pemToDer(pem);
    assertPkiError(() => parseCertificates(wrap(Buffer.concat([der, Buffer.from([0])]).toString('base64'))), 'cert_unparseable', 'trailing DER byte');
    assertPkiError(() => parseCertificates(pem + wrap(half)), 'cert_unparseable', 'good then bad');
    const rnd = prng(42);
    for (let i = 0; i < 20; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256)));
      const s = bytes.toString('latin1');
      const kind = s.trim() === '' ? 'cert_empty' : 'cert_unparseable';
      assertPkiError(() => parseCertificates(s), kind, `random bytes #${i}`);
      assertPkiError(() => parseCertificates(bytes.toString('utf8')), bytes.toString('utf8').trim() === '' ? 'cert_empty' : 'cert_unparseable', `random utf8 #${i}`);
    }
    assertPkiError(() => parseCertificates(undefined as unknown as string), 'cert_empty', 'undefined');
    assertPkiError(() => parseCertificates(42 as unknown as string), 'cert_empty', 'number');
    // Headers inside a certificate block and other block types around it are tolerated.
    assert.equal(parseCertificates(leaf.keyPem + pem).length, 1);
    assert.equal(parseCertificates('-----BEGIN CERTIFICATE-----\nX-Comment: hi\n\n' + b64 + '\n-----END CERTIFICATE-----').length, 1);
    assert.equal(parseCertificates('-----BEGIN CERTIFICATE----- ' + b64 + ' -----END CERTIFICATE-----').length, 1, 'single line');
  });

  test('private keys', () => {
    const key = leaf.keyPem;
    const b64 = key.split('\n').slice(1, -2).join('');
    const wrap = (label: string, s: string): string => `-----BEGIN ${label}-----\n${s}\n-----END ${label}-----\n`;
    assertPkiError(() => parsePrivateKey(''), 'key_empty', 'empty');
    assertPkiError(() => parsePrivateKey('\n\n  '), 'key_empty', 'whitespace');
    assertPkiError(() => parsePrivateKey(leaf.certPem), 'key_empty', 'certificate only');
    assertPkiError(() => parsePrivateKey(createPublicKey(leaf.key).export({ type: 'spki', format: 'pem' }) as string), 'key_empty', 'public key only');
    assertPkiError(() => parsePrivateKey('this is not a key'), 'key_unparseable', 'garbage');
    assertPkiError(() => parsePrivateKey(wrap('PRIVATE KEY', b64.slice(0, Math.floor(b64.length / 2)))), 'key_unparseable', 'base64 cut in half');
    const rsaB64 = rsaLeaf.keyPem.split('\n').slice(1, -2).join('');
    const rsaHalf = rsaB64.slice(0, Math.floor(rsaB64.length / 8) * 4);
    const e = assertPkiError(() => parsePrivateKey(wrap('PRIVATE KEY', rsaHalf)), 'key_unparseable', 'RSA valid base64, truncated DER');
    assert.ok(!e.message.includes(rsaHalf.slice(0, 16)));
    assertPkiError(() => parsePrivateKey(wrap('RSA PRIVATE KEY', rsaHalf)), 'key_unparseable', 'RSA pkcs1 label truncated');
    assertPkiError(() => parsePrivateKey(key.slice(0, key.indexOf('-----END'))), 'key_unparseable', 'no END line');
    assertPkiError(() => parsePrivateKey(wrap('PRIVATE KEY', '')), 'key_unparseable', 'empty block');
    assertPkiError(() => parsePrivateKey(wrap('PRIVATE KEY', pemToDer(leaf.certPem).toString('base64'))), 'key_unparseable', 'certificate DER in key block');
    assertPkiError(() => parsePrivateKey(wrap('OPENSSH PRIVATE KEY', 'b3BlbnNzaC1rZXktdjEAAAAA')), 'key_unsupported', 'openssh');
    const rnd = prng(7);
    for (let i = 0; i < 20; i++) {
      const s = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256))).toString('latin1');
      assertPkiError(() => parsePrivateKey(s), s.trim() === '' ? 'key_empty' : 'key_unparseable', `random bytes #${i}`);
    }
    assertPkiError(() => parsePrivateKey(null as unknown as string), 'key_empty', 'null');
  });

  test('unsupported key types', () => {
    const pk = (type: string, opts: object = {}): string =>
      (generateKeyPairSync as unknown as (t: string, o: object) => { privateKey: KeyObject })(type, opts).privateKey.export({
        type: 'pkcs8',
        format: 'pem',
      }) as string;
    assertPkiError(() => parsePrivateKey(pk('x25519')), 'key_unsupported', 'x25519');
    assertPkiError(() => parsePrivateKey(pk('ed448')), 'key_unsupported', 'ed448');
    assertPkiError(() => parsePrivateKey(pk('x448')), 'key_unsupported', 'x448');
    assertPkiError(() => parsePrivateKey(pk('ec', { namedCurve: 'secp256k1' })), 'key_unsupported', 'secp256k1');
    assertPkiError(() => parsePrivateKey(pk('rsa-pss', { modulusLength: 1024 })), 'key_unsupported', 'rsa-pss');
    assertPkiError(() => parsePrivateKey(pk('dsa', { modulusLength: 1024, divisorLength: 160 })), 'key_unsupported', 'dsa');
    // P-521 is supported
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
    assert.equal(parsePrivateKey(p521.export({ type: 'sec1', format: 'pem' }) as string).asymmetricKeyDetails?.namedCurve, 'secp521r1');
  });

  test('keyMatchesCertificate never throws', () => {
    const [p] = parseCertificates(leaf.certPem);
    assert.equal(keyMatchesCertificate(null as never, p), false);
    assert.equal(keyMatchesCertificate(leaf.key, {} as never), false);
    assert.equal(keyMatchesCertificate(createPublicKey(leaf.key), p), true, 'a public key object works too');
  });
});

// ------------------------------------------------------------------------------------------------------------------
// robustness
// ------------------------------------------------------------------------------------------------------------------

describe('robustness', () => {
  let chain: { leaf: Issued; chainPem: string };
  before(async () => {
    chain = await makeChain('p256');
  });

  function expectOnlyPkiErrors(fn: () => unknown, label: string): 'ok' | PkiErrorKind {
    try {
      fn();
      return 'ok';
    } catch (e) {
      if (!(e instanceof PkiError)) assert.fail(`${label}: threw non-PkiError ${String(e)}`);
      assert.ok(ALL_KINDS.includes(e.kind), label);
      return e.kind;
    }
  }

  test('fuzz: random mutations of DER, PEM text and key PEM only ever throw PkiError', () => {
    const rnd = prng(0xc0ffee);
    const ri = (n: number): number => Math.floor(rnd() * n);
    const der = pemToDer(chain.leaf.certPem);
    const pemText = chain.leaf.certPem + chain.chainPem;
    const keyPem = chain.leaf.keyPem;
    const outcomes = new Map<string, number>();
    const note = (o: string): void => void outcomes.set(o, (outcomes.get(o) ?? 0) + 1);

    const mutateBytes = (src: Buffer): Buffer => {
      const b = Buffer.from(src);
      switch (ri(5)) {
        case 0: // flip some bytes
          for (let k = 0, n = 1 + ri(4); k < n; k++) b[ri(b.length)] = ri(256);
          return b;
        case 1: // truncate
          return b.subarray(0, ri(b.length));
        case 2: { // delete a range
          const s = ri(b.length);
          return Buffer.concat([b.subarray(0, s), b.subarray(s + 1 + ri(16))]);
        }
        case 3: { // insert random bytes
          const s = ri(b.length);
          return Buffer.concat([b.subarray(0, s), randomFrom(1 + ri(8)), b.subarray(s)]);
        }
        default: // length-byte attack: set a byte to 0x80..0x84 or 0xff
          b[ri(Math.min(b.length, 64))] = [0x80, 0x81, 0x82, 0x83, 0x84, 0xff][ri(6)];
          return b;
      }
    };
    const randomFrom = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => ri(256)));
    const mutateText = (src: string): string => {
      const chars = ['-', '\n', '\r', ' ', '=', 'A', '/', ':', '-----BEGIN CERTIFICATE-----', '-----END CERTIFICATE-----', '-----BEGIN ', '\u0000', '\u00e9', '\ud83d'];
      let s = src;
      for (let k = 0, n = 1 + ri(3); k < n; k++) {
        const at = ri(s.length + 1);
        switch (ri(4)) {
          case 0:
            s = s.slice(0, at) + s.slice(at + 1 + ri(40));
            break;
          case 1:
            s = s.slice(0, at) + chars[ri(chars.length)] + s.slice(at);
            break;
          case 2:
            s = s.slice(0, at);
            break;
          default:
            s = s.slice(0, at) + s.slice(ri(s.length)) ;
        }
      }
      return s;
    };
    const wrap = (b: Buffer): string => `-----BEGIN CERTIFICATE-----\n${b.toString('base64')}\n-----END CERTIFICATE-----\n`;

    for (let i = 0; i < 1500; i++) {
      const m = mutateBytes(der);
      note('der:' + expectOnlyPkiErrors(() => {
        const certs = parseCertificates(wrap(m));
        // Anything accepted must be self-consistent.
        assert.equal(certs.length, 1);
        assert.match(certs[0].serialNumber, /^-?\d+$/);
        assert.ok(!Number.isNaN(certs[0].notAfter.getTime()));
      }, `der #${i}`));
      expectOnlyPkiErrors(() => signatureAlgorithmOf(m), `sigalg #${i}`);
    }
    for (let i = 0; i < 1500; i++) {
      const t = mutateText(pemText);
      note('pem:' + expectOnlyPkiErrors(() => parseCertificates(t), `pem #${i}`));
    }
    for (let i = 0; i < 600; i++) {
      const t = i % 2 ? mutateText(keyPem) : `-----BEGIN PRIVATE KEY-----\n${mutateBytes(pemToDer(keyPem)).toString('base64')}\n-----END PRIVATE KEY-----\n`;
      note('key:' + expectOnlyPkiErrors(() => parsePrivateKey(t), `key #${i}`));
    }
    if (process.env.PKI_FUZZ_STATS) console.log([...outcomes]);
    // The fuzzer must actually exercise both paths.
    assert.ok((outcomes.get('der:cert_unparseable') ?? 0) > 100, JSON.stringify([...outcomes]));
    assert.ok((outcomes.get('pem:ok') ?? 0) > 10, JSON.stringify([...outcomes]));
    assert.ok((outcomes.get('key:key_unparseable') ?? 0) > 50, JSON.stringify([...outcomes]));
  });

  test('no quadratic behaviour on hostile input', () => {
    const inputs = [
      '-----BEGIN CERTIFICATE-----\n'.repeat(20000),
      '-----BEGIN '.repeat(40000),
      '-----'.repeat(50000),
      '-----BEGIN CERTIFICATE-----' + 'A'.repeat(1_000_000),
      '-----BEGIN PRIVATE KEY-----\n'.repeat(20000),
      ('-----END CERTIFICATE-----\n' + '-----BEGIN X-----\n').repeat(10000),
    ];
    // Only correctness is asserted here; the cost of parsing belongs in bench/, never in a timed assertion.
    for (const s of inputs) {
      expectOnlyPkiErrors(() => parseCertificates(s), 'hostile cert');
      expectOnlyPkiErrors(() => parsePrivateKey(s), 'hostile key');
    }
  });

});

// ------------------------------------------------------------------------------------------------------------------
// openssl CLI cross-check
// ------------------------------------------------------------------------------------------------------------------

describe('openssl CLI cross-check', () => {
  const probe = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  const haveOpenssl = !probe.error && probe.status === 0;
  let dir = '';
  before(() => {
    if (haveOpenssl) dir = mkdtempSync(join(tmpdir(), 'certplane-pki-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const openssl = (...args: string[]): string => {
    const r = spawnSync('openssl', args, { encoding: 'utf8', cwd: dir });
    assert.equal(r.status, 0, `openssl ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  // openssl is part of every machine this project runs on (and .ci/run installs it): its absence is a failure.
  const skip = false;
  test('the openssl CLI is available', () => assert.ok(haveOpenssl, 'openssl CLI not found on PATH'));

  /** Splits `openssl x509 -nameopt RFC2253` output into attribute values by short name. */
  function rfc2253Values(dn: string, attr: string): string[] {
    const out: string[] = [];
    for (const part of dn.split(/(?<!\\),/)) {
      const eq = part.indexOf('=');
      if (part.slice(0, eq) === attr) out.push(part.slice(eq + 1).replace(/\\(.)/g, '$1'));
    }
    return out;
  }

  test('openssl req -x509 (RSA, hand-picked serial) parses to the values openssl prints', { skip }, () => {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '30',
      '-subj', '/C=US/O=Acme, Inc./OU=Ops/CN=openssl.example', '-set_serial', '0x0a1b2c', '-sha384');
    const certPem = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const out = openssl('x509', '-in', 'cert.pem', '-noout', '-serial', '-issuer', '-enddate', '-fingerprint', '-md5', '-nameopt', 'RFC2253');
    const lines = Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')).toLowerCase(), l.slice(l.indexOf('=') + 1)]));
    const [p] = parseCertificates(certPem);
    assert.equal(lines.serial, '0A1B2C');
    assert.equal(p.serialNumber, BigInt('0x' + lines.serial).toString(10));
    assert.equal(p.serialNumber, '662316');
    assert.deepEqual(rfc2253Values(lines.issuer, 'O'), ['Acme, Inc.']);
    assert.equal(p.issuer, 'Acme, Inc.');
    assert.equal(p.subject, 'openssl.example');
    assert.equal(p.notAfter.getTime(), new Date(lines.notafter).getTime());
    assert.equal(p.fingerprintMd5, 'MD5 Fingerprint=' + lines['md5 fingerprint']);
    const sha256 = openssl('x509', '-in', 'cert.pem', '-noout', '-fingerprint', '-sha256').trim().split('=')[1];
    assert.equal(p.fingerprintSha256, sha256.replace(/:/g, '').toLowerCase());
    assert.equal(p.signature, 'SHA384WithRSA');
    assert.match(openssl('x509', '-in', 'cert.pem', '-noout', '-text'), /Signature Algorithm: sha384WithRSAEncryption/);
    assert.equal(p.isCA, /CA:TRUE/.test(openssl('x509', '-in', 'cert.pem', '-noout', '-text')));
    // The key openssl wrote (PKCS#8) matches, and its traditional form does too.
    const keyPem = readFileSync(join(dir, 'key.pem'), 'utf8');
    assert.ok(keyMatchesCertificate(parsePrivateKey(keyPem), p));
    openssl('pkey', '-in', 'key.pem', '-traditional', '-out', 'key-trad.pem');
    const trad = readFileSync(join(dir, 'key-trad.pem'), 'utf8');
    assert.match(trad, /BEGIN RSA PRIVATE KEY/);
    assert.ok(keyMatchesCertificate(parsePrivateKey(trad), p));
  });

  test('openssl EC key with EC PARAMETERS, RSA-PSS and DSA certificates, names without CN/O', { skip }, () => {
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-out', 'ec.pem');
    const ecPem = readFileSync(join(dir, 'ec.pem'), 'utf8');
    assert.match(ecPem, /BEGIN EC PARAMETERS[\s\S]*BEGIN EC PRIVATE KEY/);
    openssl('req', '-x509', '-key', 'ec.pem', '-out', 'ec-cert.pem', '-days', '3', '-sha512',
      '-subj', '/C=DE/ST=Berlin/OU=Ops, Team/emailAddress=ops@example.com');
    const [ec] = parseCertificates(readFileSync(join(dir, 'ec-cert.pem'), 'utf8'));
    assert.equal(ec.signature, 'ECDSAWithSHA512');
    assert.ok(keyMatchesCertificate(parsePrivateKey(ecPem), ec));
    // No CN and no O: the whole DN on one line, as Go's pkix.Name.String() prints it (unknown attributes last, as #hex).
    const emailHex = Buffer.concat([Buffer.from([0x0c, 15]), Buffer.from('ops@example.com')]).toString('hex');
    const expectedDn = `OU=Ops\\, Team,ST=Berlin,C=DE,1.2.840.113549.1.9.1=#${emailHex}`;
    assert.equal(ec.subject, expectedDn);
    assert.equal(ec.issuer, expectedDn);
    checkAgainstNode(ec);

    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'pss-key.pem', '-out', 'pss.pem', '-days', '3', '-subj', '/CN=pss',
      '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest', '-sha384');
    const [pss] = parseCertificates(readFileSync(join(dir, 'pss.pem'), 'utf8'));
    assert.equal(pss.signature, 'SHA384WithRSAPSS');
    assert.ok(isIssuedBy(pss, pss));
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'pss2-key.pem', '-out', 'pss2.pem', '-days', '3', '-subj', '/CN=pss2',
      '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:20', '-sha256');
    assert.equal(parseCertificates(readFileSync(join(dir, 'pss2.pem'), 'utf8'))[0].signature, 'UnknownSignatureAlgorithm', 'Go rejects salt != hash length');

    openssl('genpkey', '-genparam', '-algorithm', 'DSA', '-pkeyopt', 'dsa_paramgen_bits:1024', '-out', 'dsaparam.pem');
    openssl('genpkey', '-paramfile', 'dsaparam.pem', '-out', 'dsa.pem');
    openssl('req', '-x509', '-key', 'dsa.pem', '-out', 'dsa-cert.pem', '-days', '3', '-subj', '/O=DSA Org/CN=dsa', '-sha256');
    const [dsa] = parseCertificates(readFileSync(join(dir, 'dsa-cert.pem'), 'utf8'));
    assert.equal(dsa.signature, 'DSAWithSHA256');
    assert.equal(dsa.issuer, 'DSA Org');
    assertPkiError(() => parsePrivateKey(readFileSync(join(dir, 'dsa.pem'), 'utf8')), 'key_unsupported', 'DSA PKCS#8');
    openssl('pkey', '-in', 'dsa.pem', '-traditional', '-out', 'dsa-trad.pem');
    const dsaTrad = readFileSync(join(dir, 'dsa-trad.pem'), 'utf8');
    assert.match(dsaTrad, /BEGIN DSA PRIVATE KEY/);
    assertPkiError(() => parsePrivateKey(dsaTrad), 'key_unsupported', 'DSA traditional');
  });

  test('openssl agrees with certificates made by the test helper', { skip }, async () => {
    const c = await makeLeaf({ keyType: 'p384', signHash: 'SHA-384', serial: '00c0ffee', org: 'Helper Org', cn: 'helper.example' });
    writeFileSync(join(dir, 'helper.pem'), c.certPem);
    const out = openssl('x509', '-in', 'helper.pem', '-noout', '-serial', '-enddate', '-fingerprint', '-md5', '-ext', 'basicConstraints,extendedKeyUsage');
    const [p] = parseCertificates(c.certPem);
    assert.match(out, /serial=C0FFEE/);
    assert.equal(p.serialNumber, String(0xc0ffee));
    assert.ok(out.toLowerCase().includes(p.fingerprintMd5.toLowerCase()));
    assert.match(out, /CA:FALSE/);
    assert.match(out, /TLS Web Client Authentication/);
    assert.equal(p.signature, 'ECDSAWithSHA384');
  });
});

describe('publicKeySpkiOf: the public half of a private key, read from its own structure', () => {
  const pairs: [string, crypto.KeyPairKeyObjectResult][] = [
    ['EC P-256', crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['EC P-384', crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' })],
    ['RSA 2048', crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })],
  ];
  for (const [name, kp] of pairs) {
    const spki = kp.publicKey.export({ type: 'spki', format: 'der' });
    for (const type of name.startsWith('EC') ? (['pkcs8', 'sec1'] as const) : (['pkcs8', 'pkcs1'] as const)) {
      it(`${name} ${type}: equals the SPKI of its public key`, () => {
        const got = publicKeySpkiOf(kp.privateKey.export({ type, format: 'pem' }) as string);
        assert.ok(got);
        assert.equal(got.equals(spki), true);
      });
    }
  }
  it('another key gives another SPKI', () => {
    const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const got = publicKeySpkiOf(other.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)!;
    assert.equal(got.equals(pairs[0][1].publicKey.export({ type: 'spki', format: 'der' })), false);
  });
  it('null when it cannot tell without loading the key (Ed25519, garbage, encrypted, no key)', () => {
    const ed = crypto.generateKeyPairSync('ed25519');
    assert.equal(publicKeySpkiOf(ed.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string), null);
    assert.equal(publicKeySpkiOf('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'), null);
    assert.equal(publicKeySpkiOf(pairs[0][1].privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string), null);
    assert.equal(publicKeySpkiOf('not a key'), null);
  });
});

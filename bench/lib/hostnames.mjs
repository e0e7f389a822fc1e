// Many distinct visitor certificates for the edge scale benchmark: one ECDSA P-256 key and certificate per hostname,
// all signed by one CA (which is not kept: the benchmark compares served certificates by fingerprint). Generating
// 10,000 takes a while, so they are cached as JSON in node_modules/.cache/certplane-bench/ (git-ignored, like any
// node_modules/.cache), keyed by count, and reissued when they would expire within a day.
import 'reflect-metadata'; // @peculiar/x509 (through tsyringe) needs the Reflect metadata API
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { issue } from './certs.mjs';

/** The hostname of entry i (i from 0): h00000.scale.example.com, ... */
export const scaleHostname = (i) => `h${String(i).padStart(5, '0')}.scale.example.com`;

/**
 * `count` hostnames with their own certificate and key: { file, generatedMs, cached, hosts: [{ hostname, certPem,
 * keyPem, sha1 }] } where sha1 is the leaf's fingerprint (hex) and `file` the cache file, which a worker process can
 * read itself instead of receiving ~10 MB over IPC.
 */
export async function scaleCertificates(root, count, log = () => {}) {
  const dir = join(root, 'node_modules/.cache/certplane-bench');
  const file = join(dir, `hostnames-${count}.json`);
  if (existsSync(file)) {
    const cached = JSON.parse(readFileSync(file, 'utf8'));
    if (cached.count === count && cached.notAfter - Date.now() > 86400_000) return { file, cached: true, generatedMs: null, hosts: cached.hosts };
  }
  log(`issuing ${count} visitor certificates (cached in ${file} afterwards)`);
  const t0 = Date.now();
  const hosts = await issueMany(count);
  const generatedMs = Date.now() - t0;
  mkdirSync(dir, { recursive: true });
  // Valid for 30 days from issue (see issue()).
  writeFileSync(`${file}.tmp`, JSON.stringify({ count, notAfter: t0 + 29 * 86400_000, hosts }));
  renameSync(`${file}.tmp`, file);
  return { file, cached: false, generatedMs, hosts };
}

/**
 * Issues `count` certificates fast: @peculiar/x509 takes ~6 ms a certificate (ASN.1 serialisation), so it builds one
 * template, and every certificate is the template's to-be-signed bytes with its own serial, hostname (same length:
 * the index is zero-padded) and public key (a P-256 SubjectPublicKeyInfo is always 91 bytes) put in place, signed by
 * the CA with node:crypto (~0.3 ms with the key generation). Each result is checked against the CA's key.
 */
async function issueMany(count) {
  const ca = await issue({ cn: 'bench scale CA', kind: 'ca' });
  const caKey = createPrivateKey(ca.keyPem);
  const caCert = new X509Certificate(ca.certPem);
  const first = scaleHostname(0);
  const tplKeys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const tplSerial = Buffer.from('01' + 'ab'.repeat(15), 'hex');
  const tpl = await x509.X509CertificateGenerator.create({
    serialNumber: tplSerial.toString('hex'),
    subject: `CN=${first}, O=certplane bench`,
    issuer: ca.name,
    notBefore: new Date(Math.floor((Date.now() - 3600_000) / 1000) * 1000),
    notAfter: new Date(Math.floor((Date.now() + 30 * 86400_000) / 1000) * 1000),
    publicKey: tplKeys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: first }]),
    ],
  });
  const der = Buffer.from(tpl.rawData);
  const outer = readTlv(der, 0);
  const tbsTlv = readTlv(der, outer.start);
  const tbs = der.subarray(outer.start, tbsTlv.end);
  const algId = der.subarray(tbsTlv.end, readTlv(der, tbsTlv.end).end);
  const tplSpki = Buffer.from(await webcrypto.subtle.exportKey('spki', tplKeys.publicKey));
  const at = (needle) => {
    const out = [];
    for (let i = tbs.indexOf(needle); i >= 0; i = tbs.indexOf(needle, i + 1)) out.push(i);
    return out;
  };
  const spkiAt = at(tplSpki);
  const serialAt = at(tplSerial);
  const nameAt = at(Buffer.from(first));
  if (spkiAt.length !== 1 || serialAt.length !== 1 || nameAt.length !== 2) throw new Error('certificate template not understood');
  const hosts = new Array(count);
  for (let i = 0; i < count; i++) {
    const hostname = scaleHostname(i);
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const t = Buffer.from(tbs);
    publicKey.export({ type: 'spki', format: 'der' }).copy(t, spkiAt[0]);
    const serial = randomBytes(16);
    serial[0] = (serial[0] & 0x7f) | 0x01;
    serial.copy(t, serialAt[0]);
    for (const p of nameAt) t.write(hostname, p, 'latin1');
    const sig = sign('sha256', t, caKey);
    const bits = Buffer.concat([Buffer.from([0x03]), derLength(sig.length + 1), Buffer.from([0]), sig]);
    const body = Buffer.concat([t, algId, bits]);
    const cert = Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
    if (i === 0 || i === count - 1) {
      const x = new X509Certificate(cert);
      if (!x.verify(caCert.publicKey) || x.subjectAltName !== `DNS:${hostname}`) throw new Error(`certificate ${i} does not check out`);
    }
    hosts[i] = {
      hostname,
      certPem: `-----BEGIN CERTIFICATE-----\n${cert.toString('base64').match(/.{1,64}/g).join('\n')}\n-----END CERTIFICATE-----\n`,
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      sha1: createHash('sha1').update(cert).digest('hex'),
    };
  }
  return hosts;
}

/** DER tag-length-value at `offset`: { start (of the value), end }. */
function readTlv(buf, offset) {
  let len = buf[offset + 1];
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i];
    start += n;
  }
  return { start, end: start + len };
}

function derLength(n) {
  if (n < 0x80) return Buffer.from([n]);
  const bytes = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

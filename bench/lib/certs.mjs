// Small, self-contained certificate factory for the benchmarks (ECDSA P-256, @peculiar/x509 on Node's WebCrypto).
// Deliberately independent of test/helpers so a benchmark never depends on test code being built or unchanged.
import 'reflect-metadata'; // @peculiar/x509 (through tsyringe) needs the Reflect metadata API
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);
const subtle = webcrypto.subtle;
const EC = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN = { name: 'ECDSA', hash: 'SHA-256' };

function serial() {
  const s = randomBytes(16);
  s[0] = (s[0] & 0x7f) | 0x01;
  return s.toString('hex');
}

async function keyPem(privateKey) {
  const der = Buffer.from(await subtle.exportKey('pkcs8', privateKey));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').match(/.{1,64}/g).join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/**
 * Issues a certificate. kind: 'ca' | 'server' | 'client'. Returns { certPem, keyPem, der, keys, name }.
 * Validity: one hour ago to 30 days ahead.
 */
export async function issue({ cn, kind, issuer = null, dnsNames = [] }) {
  const keys = await subtle.generateKey(EC, true, ['sign', 'verify']);
  const now = Date.now();
  const extensions = [
    new x509.BasicConstraintsExtension(kind === 'ca', kind === 'ca' ? 0 : undefined, true),
    new x509.KeyUsagesExtension(
      kind === 'ca' ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (issuer) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey));
  if (kind === 'server') extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]));
  if (kind === 'client') extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]));
  if (dnsNames.length) extensions.push(new x509.SubjectAlternativeNameExtension(dnsNames.map((value) => ({ type: 'dns', value }))));
  const name = `CN=${cn}, O=certplane bench`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: name,
    issuer: issuer ? issuer.name : name,
    notBefore: new Date(Math.floor((now - 3600_000) / 1000) * 1000),
    notAfter: new Date(Math.floor((now + 30 * 86400_000) / 1000) * 1000),
    publicKey: keys.publicKey,
    signingKey: issuer ? issuer.keys.privateKey : keys.privateKey,
    signingAlgorithm: SIGN,
    extensions,
  });
  return {
    certPem: cert.toString('pem').replace(/\r\n/g, '\n').trimEnd() + '\n',
    keyPem: await keyPem(keys.privateKey),
    der: Buffer.from(cert.rawData),
    keys,
    name,
  };
}

/**
 * Everything the edge benchmarks need:
 *  - originCa → origin server certificate (origin.internal), which the edges verify;
 *  - aopCa → the edge's client certificate for the origin (Authenticated Origin Pulls), which the origin requires;
 *  - edgeCa → the visitor-facing certificate of app.example.com.
 */
export async function benchCertificates(hostname = 'app.example.com') {
  const [originCa, aopCa, edgeCa] = await Promise.all([
    issue({ cn: 'bench origin CA', kind: 'ca' }),
    issue({ cn: 'bench AOP CA', kind: 'ca' }),
    issue({ cn: 'bench edge CA', kind: 'ca' }),
  ]);
  const [originServer, aopClient, edgeServer] = await Promise.all([
    issue({ cn: 'origin.internal', kind: 'server', issuer: originCa, dnsNames: ['origin.internal'] }),
    issue({ cn: 'bench edge client', kind: 'client', issuer: aopCa }),
    issue({ cn: hostname, kind: 'server', issuer: edgeCa, dnsNames: [hostname, 'localhost'] }),
  ]);
  return { originCa, aopCa, edgeCa, originServer, aopClient, edgeServer };
}

/**
 * Server certificates for edge tests. test/helpers/certs.ts makes client-auth leaves (EKU clientAuth only), which
 * OpenSSL refuses as TLS server certificates when a client verifies them; this makes serverAuth leaves with SANs,
 * signed by a CA from that helper.
 */
import { createPublicKey, generateKeyPair as generateKeyPairCb, randomBytes, webcrypto } from 'node:crypto';
import { promisify } from 'node:util';
import { type Issued, x509 } from '../helpers/certs.js';

const generateKeyPair = promisify(generateKeyPairCb);

export interface ServerCert {
  certPem: string;
  keyPem: string;
  certDer: Buffer;
}

/** A P-256 TLS server certificate for `dnsNames` (first one is the CN), issued by `issuer` (an EC or RSA CA). */
export async function makeServerCert(issuer: Issued, dnsNames: string[]): Promise<ServerCert> {
  const { privateKey, publicKey } = await generateKeyPair('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const issuerType = issuer.key.asymmetricKeyType;
  const importAlg =
    issuerType === 'ec'
      ? { name: 'ECDSA', namedCurve: issuer.key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : 'P-256' }
      : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const signAlg = issuerType === 'ec' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const signingKey = await webcrypto.subtle.importKey('pkcs8', issuer.key.export({ type: 'pkcs8', format: 'der' }), importAlg, false, ['sign']);
  const issuerCert = new x509.X509Certificate(issuer.certPem);
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x01;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial.toString('hex'),
    subject: new x509.Name([{ CN: [dnsNames[0]] }]),
    issuer: issuerCert.subjectName,
    notBefore: new Date(Math.floor((now - 3600_000) / 1000) * 1000),
    notAfter: new Date(Math.floor((now + 30 * 86400_000) / 1000) * 1000),
    publicKey: spki,
    signingKey,
    signingAlgorithm: signAlg as Algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(dnsNames.map((value) => ({ type: 'dns' as const, value }))),
      await x509.AuthorityKeyIdentifierExtension.create(createPublicKey(issuer.key).export({ type: 'spki', format: 'der' })),
    ],
  });
  return {
    certPem: cert.toString('pem').replace(/\r\n/g, '\n').trimEnd() + '\n',
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certDer: Buffer.from(cert.rawData),
  };
}

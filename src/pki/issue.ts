/**
 * Issuing certificates, for development only: a local development CA that `certplane hostname add --dev-cert`
 * uses to give the edge a visitor-facing certificate, so a demo needs no external PKI. Built on @peculiar/x509
 * (WebCrypto); production certificates come from the operator's PKI.
 */
import 'reflect-metadata';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface DevCa {
  certPem: string;
  keyPem: string;
  certFile: string;
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
}

async function importKeyPem(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']) as Promise<CryptoKey>;
}

/** Loads the development CA from `dir`, creating it on first use (key file mode 0600). */
export async function loadOrCreateDevCa(dir: string): Promise<DevCa & { created: boolean }> {
  const certFile = join(dir, 'dev-ca.pem');
  const keyFile = join(dir, 'dev-ca.key');
  if (existsSync(certFile) && existsSync(keyFile)) {
    return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'), certFile, created: false };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=certplane development CA, O=certplane (development only)',
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 5 * 365 * 24 * 3600_000),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = await exportKeyPem(keys.privateKey);
  writeFileSync(keyFile, keyPem, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(certFile, cert.toString('pem') + '\n');
  return { certPem: cert.toString('pem') + '\n', keyPem, certFile, created: true };
}

/** A server certificate for `hostname`, signed by the development CA (valid 90 days). */
export async function issueDevServerCertificate(ca: DevCa, hostname: string): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caCert = new x509.X509Certificate(ca.certPem);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
    subject: `CN=${hostname}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 90 * 24 * 3600_000),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: await importKeyPem(ca.keyPem),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: hostname }], false),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { certPem: cert.toString('pem') + '\n' + ca.certPem, keyPem: await exportKeyPem(keys.privateKey) };
}

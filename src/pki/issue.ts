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
  const ca = await createCa('CN=certplane development CA, O=certplane (development only)', 5 * 365 * 24 * 3600_000);
  writeFileSync(keyFile, ca.keyPem, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(certFile, ca.certPem);
  return { ...ca, certFile, created: true };
}

/** A new self-signed CA held in memory (`name` is an X.500 name such as `CN=...`), valid from an hour ago. */
export async function createCa(name: string, validForMs: number): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + validForMs),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

function serial(): string {
  return randomBytes(16).toString('hex').replace(/^[89a-f]/, '1');
}

/**
 * A leaf certificate signed by `ca`: a server certificate for `dnsName` (subject CN and SAN), or a client certificate
 * (`client: true`, subject CN = `cn`). The returned `certPem` is the leaf followed by the CA (a chain).
 */
export async function issueCertificate(
  ca: { certPem: string; keyPem: string },
  opts: { cn: string; dnsName?: string; client?: boolean; validForMs?: number },
): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caCert = new x509.X509Certificate(ca.certPem);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.cn}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + (opts.validForMs ?? 90 * 24 * 3600_000)),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: await importKeyPem(ca.keyPem),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([opts.client ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth], false),
      ...(opts.dnsName ? [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: opts.dnsName }], false)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { certPem: cert.toString('pem') + '\n' + ca.certPem, keyPem: await exportKeyPem(keys.privateKey) };
}

/** A server certificate for `hostname`, signed by the development CA (valid 90 days). */
export function issueDevServerCertificate(ca: DevCa, hostname: string): Promise<{ certPem: string; keyPem: string }> {
  return issueCertificate(ca, { cn: hostname, dnsName: hostname });
}

#!/usr/bin/env node
// Micro-benchmark of what a certificate upload costs in src/pki (not a test; see docs/decisions/0009-pki-fast-paths.md):
// parsing the certificate and proving the private key is a valid key of that certificate, per key type and format,
// the OpenSSL path (X509Certificate + createPrivateKey + checkPrivateKey, what uploads did before) and the fast path
// (certplane's DER reader + hand-written key checks) measured in the same run, alternately, in one process.
//
//   npm run build && node bench/pki.mjs [--dist dist] [--ms 300] [--rounds 5]
//
// Keys come from node:crypto, self-signed certificates from the openssl CLI. Prints µs of CPU time per operation (the
// median of the rounds) and the ratio old/new.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
const value = (name, def) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : def);
const dist = resolve(value('--dist', 'dist'));
const budgetMs = Number(value('--ms', 300));
const rounds = Number(value('--rounds', 5));

const pki = await import(pathToFileURL(join(dist, 'src/pki/index.js')).href);

const KEYS = [
  ['RSA 2048', 'rsa', { modulusLength: 2048 }, ['pkcs8', 'pkcs1']],
  ['RSA 4096', 'rsa', { modulusLength: 4096 }, ['pkcs8']],
  ['EC P-256', 'ec', { namedCurve: 'P-256' }, ['pkcs8', 'sec1']],
  ['EC P-384', 'ec', { namedCurve: 'P-384' }, ['pkcs8']],
  ['EC P-521', 'ec', { namedCurve: 'P-521' }, ['pkcs8']],
  ['Ed25519', 'ed25519', {}, ['pkcs8']],
];

const dir = mkdtempSync(join(tmpdir(), 'certplane-bench-pki-'));
const cases = [];
try {
  for (const [name, type, opts, formats] of KEYS) {
    const { privateKey } = generateKeyPairSync(type, opts);
    const keyFile = join(dir, 'key.pem');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const certPem = execFileSync('openssl', ['req', '-x509', '-key', keyFile, '-subj', `/O=bench/CN=${name}`, '-days', '30'], { encoding: 'utf8' });
    for (const f of formats) cases.push({ name: `${name} ${f}`, certPem, keyPem: privateKey.export({ type: f, format: 'pem' }) });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/** What an upload did before: OpenSSL decodes the certificate and the key. */
function oldPath(c) {
  const [leaf] = pki.parseCertificates(c.certPem);
  void leaf.x509; // the X509Certificate parseCertificates used to build for every certificate
  if (!pki.keyMatchesCertificate(pki.parsePrivateKey(c.keyPem), leaf)) throw new Error('mismatch');
}

/** What an upload does now. */
function newPath(c) {
  const [leaf] = pki.parseCertificates(c.certPem);
  if (!pki.privateKeyMatches(c.keyPem, leaf)) throw new Error('mismatch');
}

/**
 * µs of this process's CPU time per call of fn, over about budgetMs of it: CPU time rather than wall time, because on
 * a shared machine the wall clock also counts the time other processes run.
 */
function measure(fn) {
  const cpu = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  const start = cpu();
  let n = 0;
  let used = 0;
  while (used < budgetMs * 1000) {
    for (let i = 0; i < 10; i++) fn();
    n += 10;
    used = cpu() - start;
  }
  return used / n;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => x.toFixed(1).padStart(8);

console.log(`node ${process.version}, OpenSSL ${process.versions.openssl}; ${rounds} rounds of ~${budgetMs} ms of CPU each, medians in µs of CPU\n`);
console.log(`${'key'.padEnd(20)} ${'old'.padStart(8)} ${'new'.padStart(8)}  old/new   (new: cert parse + key check)`);
for (const c of cases) {
  const certOnly = () => pki.parseCertificates(c.certPem);
  const [leaf] = pki.parseCertificates(c.certPem);
  const keyOnly = () => pki.privateKeyMatches(c.keyPem, leaf);
  for (let i = 0; i < 50; i++) (oldPath(c), newPath(c));
  const olds = [];
  const news = [];
  const certs = [];
  const keys = [];
  for (let r = 0; r < rounds; r++) {
    olds.push(measure(() => oldPath(c)));
    news.push(measure(() => newPath(c)));
    certs.push(measure(certOnly));
    keys.push(measure(keyOnly));
  }
  const o = median(olds);
  const n = median(news);
  console.log(`${c.name.padEnd(20)} ${fmt(o)} ${fmt(n)}  ${(o / n).toFixed(1).padStart(6)}×   (${median(certs).toFixed(1)} + ${median(keys).toFixed(1)})`);
}

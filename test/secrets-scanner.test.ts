/**
 * The whole-run secrets scanner (test/helpers/secret-scan.ts) finds what it must and nothing else: secret material
 * planted in a scan directory — a fragment of a key in another PEM format, a key's secret number in hex, a whole
 * PEM escaped in JSON, a credential, a fragment of a truncated copy of a key — is reported with its file, its place
 * and its kind, never with the secret; certificates and public keys are not reported; a credential in the
 * first-start banner or in the output of `token create` is not reported there, but is everywhere else.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { makeCA, makeLeaf } from './helpers/certs.js';
import type { ScanRecord, SecretRecord } from './helpers/scan-record.js';
import { formatFinding, scanDirectory } from './helpers/secret-scan.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function scanDir(secrets: SecretRecord[], records: ScanRecord[], db: Record<string, string | Buffer> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'certplane-scanner-'));
  dirs.push(dir);
  for (const d of ['secrets', 'records', 'db']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'secrets', '1.jsonl'), secrets.map((s) => JSON.stringify(s) + '\n').join(''));
  writeFileSync(join(dir, 'records', '1.jsonl'), records.map((r) => JSON.stringify(r) + '\n').join(''));
  for (const [name, content] of Object.entries(db)) writeFileSync(join(dir, 'db', name), content);
  return dir;
}

const key = (label: string, value: string): SecretRecord => ({ kind: 'private key', label, value, src: 'planted' });
const credential = (label: string, value: string): SecretRecord => ({ kind: 'credential', label, value, src: 'planted' });
const response = (where: string, text: string): ScanRecord => ({ k: 'response', src: 'planted.test.js', where, text });
const log = (where: string, text: string, extra: Partial<ScanRecord> = {}): ScanRecord => ({ k: 'log', src: 'planted.test.js', where, text, ...extra });
const b64body = (pem: string) => pem.split('\n').filter((l) => l && !l.startsWith('-----'));
const token = () => randomBytes(30).toString('base64url');

function banner(apiKey: string, apiToken: string): string {
  const id = () => randomBytes(16).toString('hex');
  return [
    '',
    'certplane: a new installation was created. These credentials are shown ONCE; store them now.',
    `  account id   ${id()}`,
    `  zone         example.com  (zone id ${id()})`,
    '  user email   admin@example.com',
    `  global key   ${apiKey}`,
    `  API token    ${apiToken}  (all permissions)`,
    '',
    'Try it:',
    `  export CLOUDFLARE_API_TOKEN=${apiToken} ZONE_ID=${id()} ACCOUNT_ID=${id()}`,
    '  curl http://127.0.0.1:8080/client/v4/zones/$ZONE_ID/origin_tls_client_auth/settings -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN"',
    '',
  ].join('\n');
}

test('planted secrets are reported with file, place and kind, never the secret; public material is not', async () => {
  const ca = await makeCA({ keyType: 'rsa2048' });
  const rsa = await makeLeaf({ issuer: ca, keyType: 'rsa2048' });
  const ec = await makeLeaf({ issuer: ca, keyType: 'p256' });
  const ed = await makeLeaf({ issuer: ca, keyType: 'ed25519' });
  const apiToken = token().slice(0, 40);
  const bannerToken = token().slice(0, 40);
  const bannerKey = randomBytes(19).toString('hex').slice(0, 37);
  const cliToken = token().slice(0, 40);
  // A key a test sent truncated (it does not parse): a fragment of its secret part is found as the whole key's.
  const truncated = rsa.keyPemAs('pkcs1').split('\n').slice(0, 12).join('\n') + '\n-----END RSA PRIVATE KEY-----\n';
  const truncatedLine = b64body(truncated)[8];

  const rsaPkcs1 = b64body(rsa.keyPemAs('pkcs1'));
  const ecD = Buffer.from((createPrivateKey(ec.keyPem).export({ format: 'jwk' }) as { d: string }).d, 'base64url');
  const publicMaterial = JSON.stringify({
    certificates: [ca.certPem, rsa.certPem, ec.certPem, ed.certPem],
    spki: [rsa, ec, ed].map((c) => createPublicKey(c.key).export({ type: 'spki', format: 'pem' })),
    der: [rsa, ec, ed].map((c) => c.certDer.toString('base64')),
  });

  const dir = scanDir(
    [
      key('the RSA key', rsa.keyPem),
      key('the EC key', ec.keyPem),
      key('the Ed25519 key', ed.keyPem),
      credential('the API token', apiToken),
    ],
    [
      response('GET /public → 200', publicMaterial),
      // 20 characters from the middle of the RSA key in PKCS#1 (the recorded form was PKCS#8).
      response('GET /fragment → 400', `{"errors":[{"message":"bad key ${rsaPkcs1[Math.floor(rsaPkcs1.length * 0.6)].slice(20, 40)}"}]}`),
      log('in-process log', `{"level":50,"msg":"bad key","key":"${ecD.toString('hex')}"}\n`),
      log('in-process log', `{"level":30,"msg":${JSON.stringify(`uploaded ${ed.keyPem}`)}}\n`),
      log('in-process log', `{"level":30,"msg":"token ${apiToken} ok"}\n`),
      log('stdout of node dist/src/cli/index.js serve', `${banner(bannerKey, bannerToken)}certplane listening on http://127.0.0.1:1/client/v4\n`, {
        command: [process.execPath, '/x/dist/src/cli/index.js', 'serve'],
        stream: 'stdout',
      }),
      log('stderr of node dist/src/cli/index.js zone list', `${banner(randomBytes(19).toString('hex').slice(0, 37), token().slice(0, 40))}${ec.keyPem}`, {
        command: [process.execPath, '/x/dist/src/cli/index.js', 'zone', 'list'],
        stream: 'stderr',
      }),
      log('stdout of node dist/src/cli/index.js token create', JSON.stringify({ id: 'x', name: 'n', token: cliToken }, null, 2), {
        command: [process.execPath, '/x/dist/src/cli/index.js', 'token', 'create', '--name', 'n'],
        stream: 'stdout',
      }),
      response('GET /banner-token → 200', `{"echo":"${bannerToken}"}`),
      response('GET /cli-token → 200', `{"echo":"Bearer ${cliToken}"}`),
      response('GET /truncated → 400', `{"errors":[{"message":"${truncatedLine.slice(10, 40)}"}]}`),
    ],
    { 'clean.db': Buffer.concat([randomBytes(4096), Buffer.from(publicMaterial, 'latin1')]), 'leaky.db': `INSERT INTO k VALUES ('${JSON.stringify(ec.keyPemAs('sec1'))}')` },
  );

  const { findings, figures } = scanDirectory({ dir });
  const db = join(dir, 'db');
  const rec = join(dir, 'records', '1.jsonl');
  assert.deepEqual(
    findings.map((f) => [f.file, f.where, f.kind, f.label]),
    [
      [rec, 'GET /fragment → 400', 'private-key material in a response', 'the RSA key'],
      [rec, 'in-process log', 'private-key material in a log', 'the EC key'],
      [rec, 'in-process log', 'a PEM private-key block in a log', '-----BEGIN … PRIVATE KEY-----'],
      [rec, 'in-process log', 'private-key material in a log', 'the Ed25519 key'],
      [rec, 'in-process log', 'a credential in a log', 'the API token'],
      [rec, 'stderr of node dist/src/cli/index.js zone list', 'a PEM private-key block in a log', '-----BEGIN … PRIVATE KEY-----'],
      [rec, 'stderr of node dist/src/cli/index.js zone list', 'private-key material in a log', 'the EC key'],
      [rec, 'GET /banner-token → 200', 'a credential in a response', 'an API token printed in a first-start banner'],
      [rec, 'GET /cli-token → 200', 'a credential in a response', 'the token printed by `certplane token create`'],
      [rec, 'GET /truncated → 400', 'private-key material in a response', 'the RSA key'],
      [join(db, 'leaky.db'), 'database', 'a PEM private-key block in a database file', '-----BEGIN … PRIVATE KEY-----'],
      [join(db, 'leaky.db'), 'database', 'private-key material in a database file', 'the EC key'],
    ],
  );
  assert.deepEqual(
    { responses: figures.responses, logRecords: figures.logRecords, databaseFiles: figures.databaseFiles, privateKeys: figures.privateKeys },
    { responses: 5, logRecords: 6, databaseFiles: 2, privateKeys: 3 },
  );
  // The recorded token, the key and token of each of the two banners, and the token `token create` printed.
  assert.equal(figures.credentials, 6);
  // The report names places and kinds, never a secret.
  const text = findings.map(formatFinding).join('\n');
  for (const s of [apiToken, bannerToken, cliToken, ecD.toString('hex'), ...rsaPkcs1.slice(1)]) assert.equal(text.includes(s), false);
});

test('a clean scan directory has no finding', async () => {
  const leaf = await makeLeaf();
  const apiToken = token().slice(0, 40);
  const dir = scanDir(
    [key('a key', leaf.keyPem), credential('a token', apiToken)],
    [response('GET /x → 200', JSON.stringify({ certificate: leaf.certPem })), log('in-process log', '{"level":30,"msg":"request completed"}\n')],
    { 'a.db': leaf.certDer },
  );
  assert.deepEqual(scanDirectory({ dir }).findings, []);
});

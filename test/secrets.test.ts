/**
 * Private keys and credentials never leave the server: not in a response (success or error), not in a log line,
 * even at the most verbose log level, and not in plaintext in the database.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeCA, makeLeaf } from './helpers/certs.js';
import { checkingFetch, startProcess, type ServerProcess } from './helpers/process.js';
import { SecretIndex } from './helpers/secret-scan.js';
import { storedText } from './helpers/store.js';

const TOKEN = 'Secrets_test_token_0123456789abcdefghijk';

let server: ServerProcess;
const { fetch: checked, problems, log } = checkingFetch();

before(async () => {
  server = await startProcess({ env: { CERTPLANE_LOG_LEVEL: 'trace', CERTPLANE_BOOTSTRAP_TOKEN: TOKEN } });
});
after(async () => {
  await server?.stop();
  if (server) rmSync(server.dir, { recursive: true, force: true });
});

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await checked(`${server.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
}

test('no response, log line or database byte carries a private key or a credential', async () => {
  const zoneId = server.banner!.zoneId;
  const ca = await makeCA();
  const leaf = await makeLeaf({ issuer: ca, keyType: 'rsa2048' });
  const other = await makeLeaf({ issuer: ca, keyType: 'p256' });
  const keys = [leaf.keyPem, leaf.keyPemAs('pkcs1'), other.keyPem, other.keyPemAs('sec1')];

  const base = `/zones/${zoneId}/origin_tls_client_auth`;
  // Successes and every failure path that sees a key.
  const up = await call('POST', `${base}/hostnames/certificates`, { certificate: leaf.certPem, private_key: leaf.keyPemAs('pkcs1') });
  assert.equal(up.status, 200, up.text);
  const certId = JSON.parse(up.text).result.id;
  assert.equal((await call('POST', `${base}/hostnames/certificates`, { certificate: leaf.certPem, private_key: other.keyPem })).status, 400);
  assert.equal((await call('POST', `${base}/hostnames/certificates`, { certificate: other.certPem, private_key: other.keyPemAs('sec1').slice(0, 120) })).status, 400);
  assert.equal((await call('POST', `${base}/hostnames/certificates`, { certificate: leaf.certPem, private_key: leaf.keyPem })).status, 400); // duplicate
  assert.equal((await call('POST', base, { certificate: other.certPem, private_key: other.keyPem, extra: other.keyPem })).status, 400);
  assert.equal((await call('POST', base, { certificate: other.certPem, private_key: other.keyPem })).status, 200);
  assert.equal((await call('PUT', `${base}/hostnames`, { config: [{ hostname: 'app.example.com', cert_id: certId, enabled: true }] })).status, 200);
  assert.equal((await call('GET', `${base}/hostnames/app.example.com`)).status, 200);
  assert.equal((await call('GET', `${base}/hostnames/certificates/${certId}`)).status, 200);
  assert.equal((await call('GET', `${base}/hostnames/certificates`)).status, 200);
  // Malformed JSON with a key inside, and credentials that are wrong.
  const raw = await checked(`${server.baseUrl}${base}/hostnames/certificates`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: `{"certificate": "x", "private_key": ${JSON.stringify(leaf.keyPem)}`,
  });
  assert.equal(raw.status, 400);
  assert.equal((await call('GET', base, undefined, { authorization: 'Bearer Wrong_token_0123456789abcdefghijklmnopqr' })).status, 401);
  assert.equal(
    (await call('GET', base, undefined, { authorization: '', 'x-auth-email': server.banner!.email, 'x-auth-key': '0'.repeat(37) })).status,
    400,
  );

  // Stop the server so every log line is flushed and the WAL is checkpointed into the database file.
  await server.stop();
  assert.deepEqual(problems, []);

  // The secret numbers of each key in every encoding, and the credentials (test/helpers/secret-scan.ts).
  const secrets = new SecretIndex();
  keys.forEach((k, i) => secrets.addPrivateKey(k, `key ${i}`));
  secrets.addCredential(TOKEN, 'the token');
  secrets.addCredential(server.banner!.apiKey, 'the global API key');
  const found = (text: string) => secrets.find(text, { credentials: true }).map((n) => n.label);
  const responses = log.map((l) => JSON.stringify(l.body)).join('\n');
  const logs = server.stdout() + server.stderr();
  assert.ok(logs.includes('"level":10') || logs.includes('"level":20') || logs.includes('"level":30'), 'the server logged at trace level');
  // The bootstrap banner (before "listening") shows the token once by design; every line after it is checked.
  const afterBanner = logs.indexOf('certplane listening');
  assert.ok(afterBanner > 0, 'the listening line was printed after the banner');
  const logLines = logs.slice(afterBanner);
  assert.ok(logLines.length > 1_000, 'there is a substantial log to search');
  assert.deepEqual(found(responses), [], 'secret material in a response');
  assert.deepEqual(found(logLines), [], 'secret material in a log line');
  assert.ok(!/PRIVATE KEY/.test(responses), 'no response mentions a PRIVATE KEY block');
  assert.ok(!/PRIVATE KEY/.test(logs), 'no log line mentions a PRIVATE KEY block');

  const stored = await storedText(server.dir);
  assert.ok(!stored.includes('PRIVATE KEY'), 'the database holds a PEM private key in plaintext');
  assert.deepEqual(found(stored), [], 'the database holds secret material in plaintext');
});

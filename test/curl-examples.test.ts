/**
 * The curl examples of Cloudflare's API reference pages (copies in reference/, from ../shared/reference), run verbatim with the real
 * `curl` binary against a certplane process. The commands are extracted from the pages at test time, never retyped;
 * the only change is the origin (https://api.cloudflare.com → this server's http origin). The HTTP status is read
 * through a throwaway .curlrc (`write-out`), so the command line itself stays exactly as documented.
 *
 * Page 000 (AOP hostnames) is stored with its newlines flattened to spaces, which turns each line continuation
 * "\⏎" into "\ " (an escaped space that bash would glue to the next word); those are turned back into line
 * continuations before running.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCA, makeLeaf } from './helpers/certs.js';
import { REFERENCE_DIR, checkResponse } from './helpers/openapi.js';
import { apiRequest, pollUntil, startProcess, type BannerCredentials, type ServerProcess } from './helpers/process.js';

const CF_ORIGIN = 'https://api.cloudflare.com';
const STATUS_MARK = /\n@@certplane-status=(\d{3})@@\n$/;

function referencePage(prefix: string): string {
  const names = readdirSync(REFERENCE_DIR).filter((n) => n.startsWith(prefix) && n.endsWith('.txt'));
  assert.equal(names.length, 1, `exactly one reference page ${prefix}*.txt in ${REFERENCE_DIR}`);
  return readFileSync(join(REFERENCE_DIR, names[0]), 'utf8');
}

/** The ```http blocks of page 000, with the flattened line continuations restored. */
function httpBlocks(page: string): string[] {
  const blocks = [...page.matchAll(/```http\s+([\s\S]*?)\s*```/g)].map((m) => m[1]);
  return blocks.map((b) => b.replace(/ \\ (?=\S)/g, ' \\\n  '));
}

/** The `curl ...` command of page 004: from the line starting with "curl " to where bash sees a complete command. */
function curlCommand(page: string): string {
  const lines = page.split('\n');
  const start = lines.findIndex((l) => l.startsWith('curl '));
  assert.ok(start >= 0, 'page 004 has a curl command');
  for (let end = start; end < lines.length; end++) {
    const cmd = lines.slice(start, end + 1).join('\n');
    if (cmd.endsWith('\\')) continue;
    if (spawnSync('bash', ['-n', '-c', cmd]).status === 0) return cmd;
  }
  assert.fail('page 004: the curl command never completes');
}

let server: ServerProcess;
let creds: BannerCredentials;
let curlHome: string;
let certId: string;
let getExample: string;
let putExample: string;
let accessExample: string;

interface CurlResult {
  status: number;
  body: any;
  text: string;
}

/** Runs a documented command with bash, only the origin swapped, with these variables in the environment. */
function runExample(command: string, vars: Record<string, string>): CurlResult {
  assert.equal(command.split(CF_ORIGIN).length, 2, `one ${CF_ORIGIN} in: ${command}`);
  const cmd = command.replace(CF_ORIGIN, server.origin);
  const r = spawnSync('bash', ['-c', cmd], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: curlHome, CURL_HOME: curlHome, ...vars },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.error, undefined, `bash failed to run: ${r.error}`);
  assert.equal(r.status, 0, `curl exited ${r.status}: ${r.stderr}\n${cmd}`);
  const m = STATUS_MARK.exec(r.stdout);
  assert.ok(m, `no status in curl output: ${r.stdout}`);
  const text = r.stdout.slice(0, m.index);
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`non-JSON answer (${m[1]}): ${text.slice(0, 200)}`);
  }
  return { status: Number(m[1]), body, text };
}

function assertCloudflareError(r: CurlResult, status: number, code: number, message: string): void {
  assert.equal(r.status, status, r.text);
  assert.deepEqual(
    { success: r.body.success, result: r.body.result, messages: r.body.messages, errors: r.body.errors.map((e: any) => ({ code: e.code, message: e.message })) },
    { success: false, result: null, messages: [], errors: [{ code, message }] },
  );
}

before(async () => {
  const curl = spawnSync('curl', ['--version'], { encoding: 'utf8' });
  if (curl.error || curl.status !== 0) {
    assert.fail(`these tests run the documented examples with the real curl binary, and curl is not installed or not on PATH (${curl.error?.message ?? curl.stderr}); install curl (e.g. apt-get install curl)`);
  }

  const aopPage = referencePage('000_');
  const blocks = httpBlocks(aopPage);
  assert.equal(blocks.length, 2, 'page 000 has two ```http examples');
  [getExample, putExample] = blocks;
  assert.match(getExample, /^curl https:\/\/api\.cloudflare\.com\/client\/v4\/zones\/\$ZONE_ID\/origin_tls_client_auth\/hostnames\/\$HOSTNAME \\\n/);
  assert.match(putExample, /-X PUT/);
  assert.match(putExample, /-d '\{ "config": \[ \{\} \] \}'$/);
  accessExample = curlCommand(referencePage('004_'));
  assert.match(accessExample, /^curl https:\/\/api\.cloudflare\.com\/client\/v4\/\$ACCOUNTS_OR_ZONES\/\$ACCOUNT_OR_ZONE_ID\/access\/certificates\/settings \\\n/);
  assert.match(accessExample, /"hostname": "admin\.example\.com"\n\s*\}\n\s*\]\n\s*\}'$/);

  curlHome = mkdtempSync(join(tmpdir(), 'certplane-curl-'));
  writeFileSync(join(curlHome, '.curlrc'), 'silent\nshow-error\nnoproxy = "*"\nwrite-out = "\\n@@certplane-status=%{http_code}@@\\n"\n');

  server = await startProcess({
    env: { CERTPLANE_DEPLOY_DELAY_MS: '200', CERTPLANE_DELETE_DELAY_MS: '200', CERTPLANE_DEPLOYER_INTERVAL_MS: '50' },
  });
  assert.ok(server.banner);
  creds = server.banner;
  assert.equal(creds.zoneName, 'example.com');

  // An association for the documentation's hostname, set up through the API.
  const ca = await makeCA({ keyType: 'p256', org: 'Curl Example CA' });
  const leaf = await makeLeaf({ keyType: 'p256', issuer: ca, cn: 'app.example.com' });
  const z = `/zones/${creds.zoneId}/origin_tls_client_auth`;
  const up = await apiRequest(server.baseUrl, 'POST', `${z}/hostnames/certificates`, {
    token: creds.token,
    body: { certificate: leaf.certPem, private_key: leaf.keyPem },
  });
  assert.equal(up.status, 200, up.text);
  certId = up.body.result.id;
  await pollUntil(
    'certificate active',
    async () => (await apiRequest(server.baseUrl, 'GET', `${z}/hostnames/certificates/${certId}`, { token: creds.token })).body.result.status,
    (s) => s === 'active',
  );
  const put = await apiRequest(server.baseUrl, 'PUT', `${z}/hostnames`, {
    token: creds.token,
    body: { config: [{ hostname: 'app.example.com', cert_id: certId, enabled: true }] },
  });
  assert.equal(put.status, 200, put.text);
  await pollUntil(
    'association active',
    async () => (await apiRequest(server.baseUrl, 'GET', `${z}/hostnames/app.example.com`, { token: creds.token })).body.result.status,
    (s) => s === 'active',
  );
});

after(async () => {
  if (server) {
    await server.stop();
    rmSync(server.dir, { recursive: true, force: true });
  }
  if (curlHome) rmSync(curlHome, { recursive: true, force: true });
});

const baseVars = () => ({ ZONE_ID: creds.zoneId, CLOUDFLARE_API_TOKEN: creds.token });

describe('AOP hostnames page (000): the ```http examples', () => {
  test('GET hostname, for a hostname with an association: 200 with its status', () => {
    const r = runExample(getExample, { ...baseVars(), HOSTNAME: 'app.example.com' });
    assert.equal(r.status, 200, r.text);
    checkResponse('GET', `/client/v4/zones/${creds.zoneId}/origin_tls_client_auth/hostnames/app.example.com`, r.status, r.body);
    assert.equal(r.body.success, true);
    assert.deepEqual(r.body.errors, []);
    assert.equal(r.body.result.hostname, 'app.example.com');
    assert.equal(r.body.result.cert_id, certId);
    assert.equal(r.body.result.enabled, true);
    assert.equal(r.body.result.status, 'active');
    assert.equal(r.body.result.cert_status, 'active');
  });

  test('GET hostname, for a hostname never associated: 404 / 1553', () => {
    const r = runExample(getExample, { ...baseVars(), HOSTNAME: 'unknown.example.com' });
    checkResponse('GET', `/client/v4/zones/${creds.zoneId}/origin_tls_client_auth/hostnames/unknown.example.com`, r.status, r.body);
    assertCloudflareError(r, 404, 1553, 'Authenticated Origin Pulls setting for this hostname not found');
  });

  test('PUT { "config": [ {} ] }: 400 / 1404 "Certificate ID required", nothing changed', async () => {
    const r = runExample(putExample, { ...baseVars(), HOSTNAME: 'app.example.com' });
    checkResponse('PUT', `/client/v4/zones/${creds.zoneId}/origin_tls_client_auth/hostnames`, r.status, r.body);
    assertCloudflareError(r, 400, 1404, 'Certificate ID required');
    const list = await apiRequest(server.baseUrl, 'GET', `/zones/${creds.zoneId}/origin_tls_client_auth/hostnames?status=all`, { token: creds.token });
    assert.deepEqual(
      list.body.result.map((a: any) => [a.hostname, a.cert_id, a.enabled, a.status]),
      [['app.example.com', certId, true, 'active']],
    );
  });
});

describe('Access settings page (004): the curl example', () => {
  const EXPECTED = '[{"china_network":false,"client_certificate_forwarding":true,"hostname":"admin.example.com"}]';

  for (const form of ['accounts', 'zones'] as const) {
    test(`PUT /${form}/{id}/access/certificates/settings: 202 with the documented settings`, async () => {
      const id = form === 'accounts' ? creds.accountId : creds.zoneId;
      const r = runExample(accessExample, { CLOUDFLARE_API_TOKEN: creds.token, ACCOUNTS_OR_ZONES: form, ACCOUNT_OR_ZONE_ID: id });
      assert.equal(r.status, 202, r.text);
      checkResponse('PUT', `/client/v4/${form}/${id}/access/certificates/settings`, r.status, r.body);
      assert.equal(r.body.success, true);
      assert.deepEqual(r.body.errors, []);
      assert.deepEqual(r.body.messages, []);
      assert.equal(JSON.stringify(r.body.result), EXPECTED);
      // And it is what a GET now lists for that scope.
      const got = await apiRequest(server.baseUrl, 'GET', `/${form}/${id}/access/certificates/settings`, { token: creds.token });
      assert.equal(got.status, 200, got.text);
      assert.equal(JSON.stringify(got.body.result), EXPECTED);
    });
  }
});

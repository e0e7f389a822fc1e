/**
 * The edge as an operator runs it, through the `certplane` command: `serve --edge` (control plane and edge in one
 * process), `hostname add --dev-cert` (a development CA), `edge register` and `edge --control-plane …` (a second edge
 * node in its own process), `edge list`. A real origin requires the AOP client certificate.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { findHaproxy } from '../src/edge/haproxy/index.js';
import { makeServerCert } from './edge/certs.js';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import { freePort } from './helpers/net.js';
import { apiRequest, childEnv, CLI_PATH, pollUntil, startProcess, type ServerProcess } from './helpers/process.js';

const TOKEN = `EdgeCli_${randomBytes(16).toString('hex')}`;
const MASTER_KEY = randomBytes(32).toString('hex');

describe('certplane serve --edge, hostname add --dev-cert, edge register/run/list', () => {
  let server: ServerProcess;
  let edgePort: number;
  let secondEdge: ChildProcess | undefined;
  let origin: https.Server;
  let aopCa: Issued;
  const children: ChildProcess[] = [];
  const env = { CERTPLANE_MASTER_KEY: MASTER_KEY, CERTPLANE_BOOTSTRAP_TOKEN: TOKEN, CERTPLANE_DEPLOYER_INTERVAL_MS: '50' };

  async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [CLI_PATH, ...args], { env: await childEnv(server.dir, env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
  }

  function visit(port: number, caPem: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, servername: 'app.example.com', headers: { host: 'app.example.com' }, ca: caPem, agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode!, body }));
        })
        .on('error', reject);
    });
  }

  before(async () => {
    aopCa = await makeCA({ org: 'AOP CA' });
    const originCert = await makeServerCert(aopCa, ['origin.internal']);
    origin = https.createServer({ cert: originCert.certPem, key: originCert.keyPem, ca: aopCa.certPem, requestCert: true, rejectUnauthorized: true }, (_req, res) =>
      res.end('origin ok'),
    );
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    edgePort = await freePort();
    server = await startProcess({ env, args: ['--edge', '--edge-port', String(edgePort)] });
    const edgeLine = new RegExp(`^certplane edge listening on https://127\\.0\\.0\\.1:${edgePort} \\(edge node [0-9a-f]{32}; in-process Node edge\\)$`, 'm');
    await pollUntil('the embedded edge listens', async () => server.stdout(), (o) => edgeLine.test(o));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await server?.stop();
    await new Promise((r) => origin?.close(r));
    if (server) rmSync(server.dir, { recursive: true, force: true });
  });

  test('the embedded edge serves a hostname added with a development certificate, presenting the AOP certificate', async () => {
    const originPort = (origin.address() as AddressInfo).port;
    const added = await cli(['hostname', 'add', 'App.Example.com', '--origin', `127.0.0.1:${originPort}`, '--origin-tls', '--origin-sni', 'origin.internal', '--dev-cert']);
    assert.equal(added.code, 0, added.stderr);
    const devCa = join(server.dir, 'dev-ca', 'dev-ca.pem');
    assert.equal(
      added.stderr,
      `certplane: created a development CA (${devCa}). Visitors trust the edge's development certificates\n` +
        `with it, for example: curl --cacert ${devCa} ...  (never use it in production)\n`,
    );
    const h = JSON.parse(added.stdout);
    assert.equal(h.hostname, 'app.example.com');
    assert.equal(h.origin, `https://127.0.0.1:${originPort}`);
    const caPem = readFileSync(devCa, 'utf8');

    // No client certificate yet: the origin refuses the edge.
    // (Until the edge has applied the new hostname, its handshake is refused: unrecognized_name.)
    const attempt = (port: number) => visit(port, caPem).catch((e: Error) => ({ status: 0, body: e.message }));
    await pollUntil('the edge serves app.example.com', () => attempt(edgePort), (r) => r.status === 502);

    const z = `/zones/${server.banner!.zoneId}`;
    const leaf = await makeLeaf({ issuer: aopCa, cn: 'edge client' });
    const cert = (await apiRequest(server.baseUrl, 'POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { token: TOKEN, body: { certificate: leaf.certPem, private_key: leaf.keyPem } })).body.result;
    const put = await apiRequest(server.baseUrl, 'PUT', `${z}/origin_tls_client_auth/hostnames`, {
      token: TOKEN,
      body: { config: [{ hostname: 'app.example.com', cert_id: cert.id, enabled: true }] },
    });
    assert.equal(put.status, 200);
    const ok = await pollUntil('the origin accepts the edge', () => attempt(edgePort), (r) => r.status === 200);
    assert.equal(ok.body, 'origin ok');
    await pollUntil(
      'the association is active (acknowledged by the embedded edge)',
      () => apiRequest(server.baseUrl, 'GET', `${z}/origin_tls_client_auth/hostnames/app.example.com`, { token: TOKEN }),
      (r) => r.body.result.status === 'active' && r.body.result.cert_status === 'active',
    );
  });

  test('a second edge node, registered and run with its own credential, serves the same configuration', async () => {
    const reg = await cli(['edge', 'register', 'edge-2']);
    assert.equal(reg.code, 0, reg.stderr);
    const { id, name, credential } = JSON.parse(reg.stdout);
    assert.equal(name, 'edge-2');
    assert.match(credential, /^cpe_[A-Za-z0-9_-]{43}$/);

    const port = await freePort();
    secondEdge = spawn(
      process.execPath,
      [CLI_PATH, 'edge', '--control-plane', server.origin, '--credential', credential, '--host', '127.0.0.1', '--port', String(port)],
      { env: await childEnv(server.dir, env), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(secondEdge);
    let out = '';
    secondEdge.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    await pollUntil('the second edge applied a version', async () => out, (o) => /version \d+ live/.test(o));
    assert.match(out, new RegExp(`^certplane edge listening on https://127\\.0\\.0\\.1:${port} \\(in-process Node edge\\)$`, 'm'));
    const caPem = readFileSync(join(server.dir, 'dev-ca', 'dev-ca.pem'), 'utf8');
    const res = await visit(port, caPem);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'origin ok');

    const list = await cli(['edge', 'list']);
    const nodes = JSON.parse(list.stdout) as { id: string; acked_version: number; failures: unknown[] }[];
    const second = nodes.find((n) => n.id === id)!;
    assert.ok(second.acked_version > 0);
    assert.deepEqual(second.failures, []);
    assert.equal(nodes.length, 2, 'the embedded edge and edge-2');

    // A revoked credential is refused by the feed: the edge keeps serving what it has, and reports the refusal.
    assert.equal((await cli(['edge', 'revoke', id])).code, 0);
    let err = '';
    secondEdge.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    await pollUntil('the revoked edge is told', async () => err, (e) => e.includes('10101 Invalid or revoked edge credential'), 30_000);
    secondEdge.kill('SIGTERM');
  });

  const haproxy = findHaproxy();
  test('an edge on HAProxy (`edge --engine haproxy`) serves the same configuration and reports its health', { skip: haproxy ? false : 'no haproxy binary' }, async () => {
    const reg = await cli(['edge', 'register', 'edge-haproxy']);
    assert.equal(reg.code, 0, reg.stderr);
    const { id, credential } = JSON.parse(reg.stdout);
    // The edge runs HAProxy through a wrapper this test can break, to see what the control plane is told.
    const wrapDir = mkdtempSync(join(tmpdir(), 'certplane-haproxy-wrapper-'));
    const wrapper = join(wrapDir, 'haproxy');
    const working = `#!/bin/sh\nexec ${haproxy} "$@"\n`;
    writeFileSync(wrapper, working);
    chmodSync(wrapper, 0o755);
    const port = await freePort();
    const edge = spawn(
      process.execPath,
      [CLI_PATH, 'edge', '--engine', 'haproxy', '--haproxy-threads', '1', '--control-plane', server.origin, '--credential', credential, '--host', '127.0.0.1', '--port', String(port)],
      { env: await childEnv(server.dir, { ...env, CERTPLANE_HAPROXY: wrapper }), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(edge);
    let out = '';
    edge.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      await pollUntil('the HAProxy edge applied a version', async () => out, (o) => /version \d+ live/.test(o), 60_000);
      assert.match(out, new RegExp(`^certplane edge listening on https://127\\.0\\.0\\.1:${port} \\(HAProxy \\d+\\.\\d+\\S*: .+\\)$`, 'm'));
      const caPem = readFileSync(join(server.dir, 'dev-ca', 'dev-ca.pem'), 'utf8');
      const res = await visit(port, caPem);
      assert.equal(res.status, 200);
      assert.equal(res.body, 'origin ok', 'the AOP client certificate reaches the origin through HAProxy');
      const nodes = async () => (JSON.parse((await cli(['edge', 'list'])).stdout) as { id: string; healthy: boolean; health_reason: string | null; acked_version: number }[]).find((n) => n.id === id)!;
      const listed = await nodes();
      assert.equal(listed.healthy, true);
      assert.ok(listed.acked_version > 0);

      // HAProxy dies and cannot be started again: the control plane hears that this edge does not serve.
      writeFileSync(wrapper, '#!/bin/sh\necho "haproxy cannot start (test)" >&2\nexit 1\n');
      const pid = Number(readFileSync(`/proc/${edge.pid}/task/${edge.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
      process.kill(pid, 'SIGKILL');
      const down = await pollUntil('the edge is reported unhealthy', nodes, (n) => n.healthy === false, 30_000);
      assert.match(down.health_reason!, /haproxy/);
      await assert.rejects(visit(port, caPem), 'nothing serves visitors meanwhile');

      // It can start again: the edge restarts it from its files, serves again and says so.
      writeFileSync(wrapper, working);
      await pollUntil('the edge is reported healthy again', nodes, (n) => n.healthy === true && n.health_reason === null, 30_000);
      const again = await visit(port, caPem);
      assert.equal(again.status, 200);
      assert.equal(again.body, 'origin ok');
    } finally {
      edge.kill('SIGTERM');
      await new Promise((r) => (edge.exitCode === null ? edge.once('exit', r) : r(null)));
      rmSync(wrapDir, { recursive: true, force: true });
    }
  });
});

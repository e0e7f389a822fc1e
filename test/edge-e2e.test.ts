/**
 * End to end through the data plane: the control plane's API configures AOP and Access, an edge node (the Node data
 * plane driven by the edge agent over the real feed) serves a hostname over real TLS, a real origin requires a
 * client certificate, and statuses turn `active` only once the edge has acknowledged the version that holds them.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { startEdgeAgent, type EdgeAgent } from '../src/edge/agent.js';
import type { DataPlane } from '../src/edge/contract.js';
import { createNodeDataPlane } from '../src/edge/node/index.js';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import { makeServerCert } from './edge/certs.js';
import { assertOk, startServer, type TestServer } from './helpers/harness.js';

const sha256 = (der: Buffer) => createHash('sha256').update(der).digest('hex');
const derOf = (pem: string) => new X509Certificate(pem).raw;

describe('control plane → feed → edge → origin', () => {
  let s: TestServer;
  let edge: DataPlane;
  let agent: EdgeAgent;
  let edgePort: number;
  let origin: https.Server;
  let aopCa: Issued;
  let visitorCa: Issued;
  let edgeCa: Issued;
  const seen: { clientCertSha256: string | null; headers: Record<string, unknown> }[] = [];

  before(async () => {
    s = await startServer({ env: { CERTPLANE_EDGE_GRACE_MS: '60000' } });
    [aopCa, visitorCa, edgeCa] = await Promise.all([makeCA({ org: 'AOP CA' }), makeCA({ org: 'Visitors CA' }), makeCA({ org: 'Edge CA' })]);
    const originLeaf = await makeServerCert(aopCa, ['origin.internal']);
    // The origin demands a client certificate from the AOP CA, and reports what it saw.
    origin = https.createServer({ cert: originLeaf.certPem, key: originLeaf.keyPem, ca: aopCa.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      seen.push({ clientCertSha256: peer?.raw ? sha256(peer.raw) : null, headers: req.headers });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true }));
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const serverLeaf = await makeServerCert(edgeCa, ['app.example.com']);
    await s.cp.edge.addHostname({
      hostname: 'app.example.com',
      origin: { address: '127.0.0.1', port: (origin.address() as AddressInfo).port, tls: true, sni: 'origin.internal', caPem: aopCa.certPem },
      certificatePem: serverLeaf.certPem,
      keyPem: serverLeaf.keyPem,
    });
    const { credential } = await s.cp.edge.registerNode('e2e edge');
    edge = createNodeDataPlane();
    edgePort = (await edge.start({ host: '127.0.0.1', port: 0 })).port;
    agent = startEdgeAgent({ controlPlane: s.baseUrl.replace('/client/v4', ''), credential, dataPlane: edge, vault: s.cp.vault, waitSeconds: 1 });
  });
  after(async () => {
    await agent?.stop();
    await edge?.stop();
    await new Promise((r) => origin?.close(r));
    await s?.close();
  });

  const current = () => s.cp.store.read((r) => r.currentVersion());

  function visit(client?: Issued, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: edgePort,
          servername: 'app.example.com',
          path: '/',
          headers: { host: 'app.example.com', ...headers },
          ca: edgeCa.certPem,
          ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
          agent: false,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  test('AOP: the pinned certificate reaches the origin, and turns active only once the edge acknowledged it', async () => {
    const z = `/zones/${s.zoneId}`;
    const leaf = await makeLeaf({ issuer: aopCa, cn: 'edge client' });
    const cert = assertOk(
      await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
    );
    assertOk(await s.request('PUT', `${z}/origin_tls_client_auth/hostnames`, { body: { config: [{ hostname: 'app.example.com', cert_id: cert.id, enabled: true }] } }));
    await agent.synced(await current());
    await s.settle(0);
    const status = assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/app.example.com`));
    assert.equal(status.status, 'active');
    assert.equal(status.cert_status, 'active');

    const res = await visit();
    assert.equal(res.status, 200, res.body);
    assert.equal(seen.at(-1)!.clientCertSha256, sha256(derOf(leaf.certPem)));

    // Zone-level AOP on, with an active zone certificate: it is the fallback, never an override.
    const zoneLeaf = await makeLeaf({ issuer: aopCa, cn: 'zone client' });
    const zc = assertOk(await s.request('POST', `${z}/origin_tls_client_auth`, { body: { certificate: zoneLeaf.certPem, private_key: zoneLeaf.keyPem } }));
    await agent.synced(await current());
    await s.settle(0);
    assert.equal(assertOk(await s.request('GET', `${z}/origin_tls_client_auth/${zc.id}`)).status, 'active');
    assertOk(await s.request('PUT', `${z}/origin_tls_client_auth/settings`, { body: { enabled: true } }));
    await agent.synced(await current());
    assert.equal((await visit()).status, 200);
    assert.equal(seen.at(-1)!.clientCertSha256, sha256(derOf(leaf.certPem)), 'the hostname pin wins over the zone');

    // enabled:false: no certificate at all, even with zone-level AOP on — the origin refuses, the edge answers 502.
    const pin = (enabled: boolean | null) =>
      s.request('PUT', `${z}/origin_tls_client_auth/hostnames`, { body: { config: [{ hostname: 'app.example.com', cert_id: cert.id, enabled }] } });
    assertOk(await pin(false));
    await agent.synced(await current());
    assert.equal((await visit()).status, 502);

    // enabled:null voids the pin: the zone's active certificate is presented.
    assertOk(await pin(null));
    await agent.synced(await current());
    assert.equal((await visit()).status, 200);
    assert.equal(seen.at(-1)!.clientCertSha256, sha256(derOf(zoneLeaf.certPem)));
    await s.settle(0);
    assert.equal(assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/app.example.com`)).status, 'deleted');

    // Zone setting off again: nothing is presented.
    assertOk(await s.request('PUT', `${z}/origin_tls_client_auth/settings`, { body: { enabled: false } }));
    await agent.synced(await current());
    assert.equal((await visit()).status, 502);

    assertOk(await pin(true));
    await agent.synced(await current());
    assert.equal((await visit()).status, 200);
    assert.equal(seen.at(-1)!.clientCertSha256, sha256(derOf(leaf.certPem)));
  });

  test('Access: a visitor certificate is required, verified, and forwarded when asked', async () => {
    const z = `/zones/${s.zoneId}`;
    assertOk(
      await s.request('POST', `${z}/access/certificates`, { body: { name: 'visitors', certificate: visitorCa.certPem, associated_hostnames: ['app.example.com'] } }),
      201,
    );
    assertOk(
      await s.request('PUT', `${z}/access/certificates/settings`, {
        body: { settings: [{ hostname: 'app.example.com', china_network: false, client_certificate_forwarding: true }] },
      }),
      202,
    );
    await agent.synced(await current());
    assert.equal((await visit()).status, 403, 'no visitor certificate');
    const stranger = await makeLeaf({ issuer: await makeCA() });
    assert.equal((await visit(stranger)).status, 403, 'a certificate from another CA');
    const visitor = await makeLeaf({ issuer: visitorCa, cn: 'alice' });
    const ok = await visit(visitor, { 'cf-client-cert-sha256': 'forged' });
    assert.equal(ok.status, 200, ok.body);
    const der = derOf(visitor.certPem);
    assert.equal(seen.at(-1)!.headers['cf-client-cert-sha256'], sha256(der));
    assert.equal(seen.at(-1)!.headers['cf-client-cert-der-base64'], der.toString('base64'));
  });

  test('an edge that does not acknowledge keeps new work pending; the feed catches it up after a restart', async () => {
    const z = `/zones/${s.zoneId}`;
    await agent.stop();
    // The stopped edge is still "live" (seen within the grace period) but acknowledges nothing.
    const leaf = await makeLeaf({ issuer: aopCa });
    const cert = assertOk(
      await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: leaf.certPem, private_key: leaf.keyPem } }),
    );
    await s.settle(10_000);
    assert.equal(assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates/${cert.id}`)).status, 'pending_deployment');

    // A new agent (an edge restart) starts from a full snapshot and acknowledges the current version.
    const { credential } = await s.cp.edge.registerNode('restarted edge');
    const nodes = await s.cp.edge.listNodes();
    for (const n of nodes.filter((n) => n.name === 'e2e edge')) await s.cp.edge.revokeNode(n.id);
    agent = startEdgeAgent({ controlPlane: s.baseUrl.replace('/client/v4', ''), credential, dataPlane: edge, vault: s.cp.vault, waitSeconds: 1 });
    await agent.synced(await current());
    await s.cp.deployer.tick();
    assert.equal(assertOk(await s.request('GET', `${z}/origin_tls_client_auth/hostnames/certificates/${cert.id}`)).status, 'active');
  });
});

/**
 * The data-plane conformance suite: one behavioural suite, exported as a function and run against every `DataPlane`
 * implementation (in-process Node now, HAProxy later), in the way Hono runs one router suite against every router.
 *
 * Everything goes over real TLS on loopback: real origins (HTTPS requiring a client certificate for Authenticated
 * Origin Pulls, HTTPS requesting one without requiring it, plain HTTP), real visitors (with and without client
 * certificates, with resumed sessions), and `openssl s_client -msg` to look at the handshake itself.
 *
 *   import { dataPlaneConformance } from './edge/conformance.js';
 *   dataPlaneConformance('node', () => Promise.resolve(createNodeDataPlane()));
 */
import assert from 'node:assert/strict';
import type * as https from 'node:https';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { DataPlane, DataPlaneFactory, HostnameConfig, OriginConfig } from '../../src/edge/contract.js';
import { type Issued, makeCA, makeChain, makeLeaf } from '../helpers/certs.js';
import { makeServerCert, type ServerCert } from './certs.js';
import {
  closedWithin,
  type Echo,
  type EchoOrigin,
  edgeRequest,
  keepAliveAgent,
  opensslHandshake,
  rawHttp,
  sha256hex,
  startEchoOrigin,
  startSegmentingProxy,
  tlsConnect,
  withTimeout,
} from './support.js';

export interface ConformanceOptions {
  /**
   * The implementation resumes TLS sessions on the hostname that issued them (so the cross-tenant resumption test
   * also proves that resumption itself works). Implementations that disable resumption set this to false.
   */
  expectResumption?: boolean;
  /**
   * Sessions never resume across trust domains (default true). Without it the suite still requires that a session
   * resumed from another tenant's hostname is never authorized (403), i.e. the HTTP-layer re-check alone holds.
   */
  isolatesSessions?: boolean;
}

interface Pki {
  edgeCA: Issued;
  originCA: Issued;
  aopCA: Issued;
  aopA: Issued;
  aopB: Issued;
  accessCA1: Issued;
  accessCA2: Issued;
  client1: Issued;
  client1b: Issued;
  client2: Issued;
  expired1: Issued;
  selfSigned: Issued;
  chain: { root: Issued; intermediate: Issued; leaf: Issued; chainPem: string };
  originServer: ServerCert;
}

interface Origins {
  /** HTTPS, requires a client certificate from aopCA. */
  aop: EchoOrigin;
  /** HTTPS, requests a client certificate but does not require one. */
  optional: EchoOrigin;
  /** Plain HTTP. */
  plain: EchoOrigin;
  /** Plain HTTP, a second one (to show an origin change). */
  second: EchoOrigin;
}

export function dataPlaneConformance(name: string, factory: DataPlaneFactory, options: ConformanceOptions = {}): void {
  describe(`data plane conformance: ${name}`, () => {
    let pki: Pki;
    let origins: Origins;
    const serverCerts = new Map<string, Promise<ServerCert>>(); // per suite: issued by this suite's edge CA

    before(async () => {
      const [edgeCA, originCA, aopCA, accessCA1, accessCA2, chain] = await Promise.all([
        makeCA({ cn: 'certplane test edge CA' }),
        makeCA({ cn: 'certplane test origin CA' }),
        makeCA({ cn: 'certplane test AOP CA' }),
        makeCA({ cn: 'certplane test Access CA 1' }),
        makeCA({ cn: 'certplane test Access CA 2' }),
        makeChain(),
      ]);
      const [aopA, aopB, client1, client1b, client2, expired1, selfSigned, originServer] = await Promise.all([
        makeLeaf({ issuer: aopCA, cn: 'aop identity A' }),
        makeLeaf({ issuer: aopCA, cn: 'aop identity B' }),
        makeLeaf({ issuer: accessCA1, cn: 'visitor 1' }),
        makeLeaf({ issuer: accessCA1, cn: 'visitor 1b' }),
        makeLeaf({ issuer: accessCA2, cn: 'visitor 2' }),
        makeLeaf({ issuer: accessCA1, cn: 'visitor expired', notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) }),
        makeLeaf({ cn: 'self-signed visitor' }),
        makeServerCert(originCA, ['origin.internal']),
      ]);
      pki = { edgeCA, originCA, aopCA, aopA, aopB, accessCA1, accessCA2, client1, client1b, client2, expired1, selfSigned, chain, originServer };
      const tlsOrigin = (requireCert: boolean) => ({
        certPem: originServer.certPem,
        keyPem: originServer.keyPem,
        caPems: [aopCA.certPem],
        requestCert: true,
        rejectUnauthorized: requireCert,
      });
      const [aop, optional, plain, second] = await Promise.all([
        startEchoOrigin({ name: 'aop', tls: tlsOrigin(true) }),
        startEchoOrigin({ name: 'optional', tls: tlsOrigin(false) }),
        startEchoOrigin({ name: 'plain' }),
        startEchoOrigin({ name: 'second' }),
      ]);
      origins = { aop, optional, plain, second };
    });

    after(async () => {
      await Promise.all(Object.values(origins ?? {}).map((o) => o.close()));
    });

    // --- configuration builders -------------------------------------------------------------------------------

    const serverCert = (hostname: string): Promise<ServerCert> => {
      let p = serverCerts.get(hostname);
      if (!p) serverCerts.set(hostname, (p = makeServerCert(pki.edgeCA, [hostname])));
      return p;
    };
    const originOf = (o: EchoOrigin, extra: Partial<OriginConfig> = {}): OriginConfig => ({
      address: '127.0.0.1',
      port: o.port,
      tls: o.name === 'aop' || o.name === 'optional',
      ...extra,
    });
    interface HostOpts {
      origin?: OriginConfig;
      cas?: { id: string; pem: string }[];
      forward?: boolean;
      aop?: Issued | null;
      aopId?: string;
    }
    const host = async (hostname: string, o: HostOpts = {}): Promise<HostnameConfig> => {
      const sc = await serverCert(hostname);
      return {
        hostname,
        serverCertificate: { certPem: sc.certPem, keyPem: sc.keyPem },
        origin: o.origin ?? originOf(origins.plain),
        accessCAs: o.cas ?? [],
        forwardClientCertificate: o.forward ?? false,
        originClientCertificate: o.aop ? { id: o.aopId ?? o.aop.subjectCN, certPem: o.aop.certPem, keyPem: o.aop.keyPem } : null,
      };
    };
    const ca1 = (): { id: string; pem: string } => ({ id: 'ca-1', pem: pki.accessCA1.certPem });
    const ca2 = (): { id: string; pem: string } => ({ id: 'ca-2', pem: pki.accessCA2.certPem });
    const caChain = (): { id: string; pem: string } => ({ id: 'ca-chain', pem: pki.chain.chainPem });

    /** A started data plane with `hostnames` applied as version 1; stopped in `after`. */
    const useEdge = (hostnames: () => Promise<HostnameConfig[]>): { edge: DataPlane; port: number } => {
      const ctx = {} as { edge: DataPlane; port: number };
      before(async () => {
        ctx.edge = await factory();
        ctx.port = (await ctx.edge.start({ host: '127.0.0.1', port: 0 })).port;
        const result = await ctx.edge.apply({ version: 1, hostnames: await hostnames() });
        assert.deepEqual(result, { version: 1, failed: [] });
        assert.equal(ctx.edge.version, 1);
      });
      after(async () => {
        await ctx.edge?.stop();
      });
      return ctx;
    };
    const visitor = (c: Issued): { cert: string; key: string } => ({ cert: c.certPem, key: c.keyPem });

    // --- 1 ------------------------------------------------------------------------------------------------------

    describe('1. SNI selects the certificate of each hostname', () => {
      const names = ['one.edge.test', 'two.edge.test', 'mtls.edge.test'];
      const ctx = useEdge(async () => [await host(names[0]), await host(names[1]), await host(names[2], { cas: [ca1()] })]);

      it('presents each hostname its own certificate (verified against the edge CA)', async () => {
        for (const n of names) {
          const s = await tlsConnect(ctx.port, {
            servername: n,
            ca: pki.edgeCA.certPem,
            rejectUnauthorized: true,
            ...(n.startsWith('mtls') ? visitor(pki.client1) : {}),
          });
          try {
            const peer = s.getPeerX509Certificate();
            assert.ok(peer, 'peer certificate');
            assert.equal(peer.subject, `CN=${n}`);
            assert.equal(peer.subjectAltName, `DNS:${n}`);
            assert.equal(peer.raw.equals((await serverCert(n)).certDer), true);
          } finally {
            s.destroy();
          }
        }
      });

      it('serves HTTP on each hostname', async () => {
        const r = await edgeRequest(ctx.port, { servername: names[1], ca: pki.edgeCA.certPem, path: '/hello?x=1' });
        assert.equal(r.status, 200);
        const echo = r.json();
        assert.equal(echo.host, names[1]);
        assert.equal(echo.url, '/hello?x=1');
        assert.equal(echo.origin, 'plain');
      });
    });

    // --- 2 ------------------------------------------------------------------------------------------------------

    describe('2. Authenticated Origin Pulls', () => {
      const ctx = useEdge(async () => [
        // Same origin address, port and SNI: only the identity differs, so only the identity keeps their pools apart.
        await host('aop-a.edge.test', { origin: originOf(origins.aop, { sni: 'origin.internal' }), aop: pki.aopA, aopId: 'identity-a' }),
        await host('aop-b.edge.test', { origin: originOf(origins.aop, { sni: 'origin.internal' }), aop: pki.aopB, aopId: 'identity-b' }),
        await host('no-aop.edge.test', { origin: originOf(origins.optional) }),
        await host('no-aop-strict.edge.test', { origin: originOf(origins.aop) }),
        await host('verified.edge.test', {
          origin: originOf(origins.aop, { sni: 'origin.internal', caPem: pki.originCA.certPem }),
          aop: pki.aopA,
          aopId: 'identity-a',
        }),
        await host('wrong-origin-ca.edge.test', {
          origin: originOf(origins.aop, { sni: 'origin.internal', caPem: pki.edgeCA.certPem }),
          aop: pki.aopA,
          aopId: 'identity-a',
        }),
        await host('down.edge.test', { origin: { address: '127.0.0.1', port: 1, tls: false } }),
      ]);

      it('presents the configured client certificate to the origin', async () => {
        const r = await edgeRequest(ctx.port, { servername: 'aop-a.edge.test' });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json().clientCertSha256, sha256hex(pki.aopA.certDer));
        assert.equal(r.json().host, 'aop-a.edge.test', 'the origin sees the visitor Host, whatever SNI the edge sends');
      });

      it('presents no certificate when none is configured', async () => {
        const r = await edgeRequest(ctx.port, { servername: 'no-aop.edge.test' });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json().clientCertSha256, null);
        // An origin that requires one refuses the edge: the visitor gets a 502.
        const strict = await edgeRequest(ctx.port, { servername: 'no-aop-strict.edge.test' });
        assert.equal(strict.status, 502);
      });

      it('never shares an origin connection between identities on the same origin', async () => {
        const agents = { a: keepAliveAgent(), b: keepAliveAgent() };
        try {
          const seen = { a: new Set<number>(), b: new Set<number>() };
          for (let i = 0; i < 6; i++) {
            for (const k of ['a', 'b'] as const) {
              const r = await edgeRequest(ctx.port, { servername: `aop-${k}.edge.test`, agent: i % 2 === 0 ? agents[k] : undefined });
              assert.equal(r.status, 200, r.body);
              const echo = r.json();
              assert.equal(echo.clientCertSha256, sha256hex((k === 'a' ? pki.aopA : pki.aopB).certDer), `request ${i} for ${k}`);
              seen[k].add(echo.socketId);
            }
          }
          for (const id of seen.a) assert.equal(seen.b.has(id), false, `origin socket ${id} served both identities`);
          const byIdentity = origins.aop.socketsByIdentity;
          for (const id of seen.a) assert.ok(byIdentity.get(sha256hex(pki.aopA.certDer))?.has(id));
          for (const id of seen.b) assert.ok(byIdentity.get(sha256hex(pki.aopB.certDer))?.has(id));
        } finally {
          agents.a.destroy();
          agents.b.destroy();
        }
      });

      it('verifies the origin against caPem with the configured SNI', async () => {
        const ok = await edgeRequest(ctx.port, { servername: 'verified.edge.test' });
        assert.equal(ok.status, 200, ok.body);
        assert.equal(ok.json().clientCertSha256, sha256hex(pki.aopA.certDer));
        const bad = await edgeRequest(ctx.port, { servername: 'wrong-origin-ca.edge.test' });
        assert.equal(bad.status, 502);
      });

      it('answers 502 when the origin is unreachable or resets', async () => {
        const down = await edgeRequest(ctx.port, { servername: 'down.edge.test' });
        assert.equal(down.status, 502);
        assert.ok(down.body.length > 0 && down.body.length < 2048);
        const reset = await edgeRequest(ctx.port, { servername: 'no-aop.edge.test', path: '/__reset' });
        assert.equal(reset.status, 502);
        const after = await edgeRequest(ctx.port, { servername: 'no-aop.edge.test' });
        assert.equal(after.status, 200);
      });

      it('streams request and response bodies and passes the origin status through', async () => {
        const body = Buffer.alloc(1024 * 1024 + 7, 'x');
        const r = await edgeRequest(ctx.port, { servername: 'aop-a.edge.test', method: 'POST', path: '/upload', body });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json().bodyLength, body.length);
        assert.equal(r.json().bodySha256, sha256hex(body));
        const s = await edgeRequest(ctx.port, { servername: 'aop-a.edge.test', path: '/__status/404' });
        assert.equal(s.status, 404);
        assert.equal(s.headers['x-echo-origin'], 'aop');
      });
    });

    // --- 3 ------------------------------------------------------------------------------------------------------

    describe('3. Access mTLS', () => {
      const ctx = useEdge(async () => [
        await host('mtls.edge.test', { cas: [ca1()] }),
        await host('public.edge.test'),
        await host('chain.edge.test', { cas: [caChain()] }),
      ]);

      it('sends a CertificateRequest only on hostnames with Access CAs (TLS 1.3 and 1.2)', async () => {
        for (const version of ['-tls1_3', '-tls1_2']) {
          const mtls = await opensslHandshake(ctx.port, 'mtls.edge.test', [version]);
          assert.match(mtls, /ServerHello/, `handshake completed (${version}):\n${mtls}`);
          assert.match(mtls, /CertificateRequest/, `mTLS hostname must request a certificate (${version})`);
          const pub = await opensslHandshake(ctx.port, 'public.edge.test', [version]);
          assert.match(pub, /ServerHello/, `handshake completed (${version}):\n${pub}`);
          assert.doesNotMatch(pub, /CertificateRequest/, `public hostname must not request a certificate (${version})`);
        }
      });

      it('200 with a certificate from the hostname CA', async () => {
        const r = await edgeRequest(ctx.port, { servername: 'mtls.edge.test', ...visitor(pki.client1) });
        assert.equal(r.status, 200, r.body);
      });

      it('403 without a certificate, with a clear body', async () => {
        const r = await edgeRequest(ctx.port, { servername: 'mtls.edge.test' });
        assert.equal(r.status, 403);
        assert.match(r.body, /certificate/i);
      });

      it('403 with a certificate from another CA, a self-signed one or an expired one', async () => {
        for (const c of [pki.client2, pki.selfSigned, pki.expired1, pki.chain.leaf]) {
          const r = await edgeRequest(ctx.port, { servername: 'mtls.edge.test', ...visitor(c) });
          assert.equal(r.status, 403, `${c.subjectCN}: ${r.body}`);
        }
      });

      it('200 for a leaf issued by an intermediate when the CA is uploaded as intermediate + root', async () => {
        const leafOnly = await edgeRequest(ctx.port, { servername: 'chain.edge.test', ...visitor(pki.chain.leaf) });
        assert.equal(leafOnly.status, 200, leafOnly.body);
        const withChain = await edgeRequest(ctx.port, {
          servername: 'chain.edge.test',
          cert: pki.chain.leaf.certPem + pki.chain.intermediate.certPem,
          key: pki.chain.leaf.keyPem,
        });
        assert.equal(withChain.status, 200, withChain.body);
        const other = await edgeRequest(ctx.port, { servername: 'chain.edge.test', ...visitor(pki.client1) });
        assert.equal(other.status, 403);
      });

      it('does not ask public visitors for a certificate and serves them without one', async () => {
        const r = await edgeRequest(ctx.port, { servername: 'public.edge.test' });
        assert.equal(r.status, 200);
      });
    });

    // --- 4 ------------------------------------------------------------------------------------------------------

    describe('4. 421 when the Host belongs to another trust domain than the SNI', () => {
      const ctx = useEdge(async () => [
        await host('pub-1.edge.test'),
        await host('pub-2.edge.test'),
        await host('t1-a.edge.test', { cas: [ca1()] }),
        await host('t1-b.edge.test', { cas: [ca1()] }),
        await host('t2.edge.test', { cas: [ca2()] }),
      ]);

      it('public SNI, Host of an mTLS hostname or unknown host → 421; another public hostname → 200', async () => {
        const agent = keepAliveAgent();
        try {
          const req = (h: string) => edgeRequest(ctx.port, { servername: 'pub-1.edge.test', host: h, agent });
          const mis = await req('t1-a.edge.test');
          assert.equal(mis.status, 421);
          assert.match(mis.body, /misdirected/i);
          assert.equal((await req('unknown.edge.test')).status, 421);
          assert.equal((await req('pub-2.edge.test')).status, 200);
          assert.equal((await req('PUB-2.edge.test.:443')).status, 200);
          const last = await req('t2.edge.test');
          assert.equal(last.status, 421);
          assert.equal(last.reusedSocket, true, 'the same connection served every request');
        } finally {
          agent.destroy();
        }
      });

      it('mTLS SNI: Host of a hostname with other CAs or of a public hostname → 421; same CA set → 200', async () => {
        const agent = keepAliveAgent(visitor(pki.client1));
        try {
          const req = (h: string) => edgeRequest(ctx.port, { servername: 't1-a.edge.test', host: h, agent });
          assert.equal((await req('t1-a.edge.test')).status, 200);
          assert.equal((await req('t2.edge.test')).status, 421);
          assert.equal((await req('pub-1.edge.test')).status, 421);
          assert.equal((await req('nowhere.edge.test')).status, 421);
          const same = await req('t1-b.edge.test');
          assert.equal(same.status, 200);
          assert.equal(same.json().host, 't1-b.edge.test');
        } finally {
          agent.destroy();
        }
      });
    });

    // --- 5 ------------------------------------------------------------------------------------------------------

    describe('5. cross-tenant TLS session resumption attack', () => {
      const ctx = useEdge(async () => [
        await host('tenant-a.edge.test', { cas: [ca1()], forward: true }),
        await host('tenant-b.edge.test', { cas: [ca2()], forward: true }),
      ]);

      for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
        it(`a session from tenant A's hostname never authorizes a request on tenant B's (${version})`, async () => {
          const sockets: tls.TLSSocket[] = [];
          try {
            // Full handshake on A with A's certificate; keep the session it hands out.
            const a = await tlsConnect(ctx.port, { servername: 'tenant-a.edge.test', ...visitor(pki.client1), maxVersion: version, minVersion: version });
            sockets.push(a);
            let session: Buffer | undefined;
            a.on('session', (s: Buffer) => (session ??= s));
            const first = await rawHttp(a, { host: 'tenant-a.edge.test' });
            assert.equal(first.status, 200, first.body);
            session ??= a.getSession();
            if (!session) {
              await new Promise((r) => setTimeout(r, 100));
              session ??= a.getSession();
            }
            assert.ok(session, 'the edge issued a session');

            // The same connection cannot be used for B either.
            const crossHost = await rawHttp(a, { host: 'tenant-b.edge.test' });
            assert.equal(crossHost.status, 421);

            // Control: the session resumes on A itself.
            const control = await tlsConnect(ctx.port, { servername: 'tenant-a.edge.test', session, ...visitor(pki.client1), maxVersion: version, minVersion: version });
            sockets.push(control);
            if (options.expectResumption) assert.equal(control.isSessionReused(), true, 'control: the session resumes on its own hostname');
            const controlRes = await rawHttp(control, { host: 'tenant-a.edge.test' });
            assert.equal(controlRes.status, 200);

            // Attack: offer A's session on B, without a certificate, then with A's certificate.
            for (const withCert of [false, true]) {
              let b: tls.TLSSocket;
              try {
                b = await tlsConnect(ctx.port, {
                  servername: 'tenant-b.edge.test',
                  session,
                  maxVersion: version,
                  minVersion: version,
                  ...(withCert ? visitor(pki.client1) : {}),
                });
              } catch {
                continue; // the handshake failed: not authorized either
              }
              sockets.push(b);
              if (options.isolatesSessions ?? true) assert.equal(b.isSessionReused(), false, 'a session of tenant A must not resume on tenant B');
              let res;
              try {
                res = await rawHttp(b, { host: 'tenant-b.edge.test' });
              } catch {
                continue; // connection closed: not authorized
              }
              assert.notEqual(res.status, 200, `tenant B authorized a visitor with tenant A's session (cert: ${withCert})`);
              assert.equal(res.status, 403);
            }
          } finally {
            for (const s of sockets) s.destroy();
          }
        });
      }
    });

    // --- 6 ------------------------------------------------------------------------------------------------------

    describe('6. client certificate forwarding', () => {
      const ctx = useEdge(async () => [
        await host('fwd.edge.test', { cas: [ca1()], forward: true, origin: originOf(origins.optional) }),
        await host('nofwd.edge.test', { cas: [ca1()], forward: false }),
        await host('pubfwd.edge.test', { forward: true }),
      ]);
      const fakes = { 'cf-client-cert-der-base64': 'ZmFrZQ==', 'CF-Client-Cert-SHA256': 'f'.repeat(64) };

      it('forwards the exact DER (base64) and SHA-256 on every request of the connection, never the fakes', async () => {
        const agent = keepAliveAgent(visitor(pki.client1));
        try {
          const expected = { b64: pki.client1.certDer.toString('base64'), sha: sha256hex(pki.client1.certDer) };
          for (let i = 0; i < 3; i++) {
            const r = await edgeRequest(ctx.port, { servername: 'fwd.edge.test', agent, headers: fakes });
            assert.equal(r.status, 200, r.body);
            if (i > 0) assert.equal(r.reusedSocket, true, 'keep-alive connection reused');
            const echo = r.json();
            assert.deepEqual(echo.cfHeaders, { 'cf-client-cert-der-base64': expected.b64, 'cf-client-cert-sha256': expected.sha });
            assert.equal(echo.clientCertSha256, null, 'no AOP certificate configured');
            assert.equal(echo.xForwardedProto, 'https');
            assert.match(echo.xForwardedFor ?? '', /127\.0\.0\.1/);
          }
        } finally {
          agent.destroy();
        }
      });

      it('removes client-supplied copies when forwarding is off or no certificate was verified', async () => {
        const off = await edgeRequest(ctx.port, { servername: 'nofwd.edge.test', ...visitor(pki.client1), headers: fakes });
        assert.equal(off.status, 200);
        assert.deepEqual(off.json().cfHeaders, {});
        const pub = await edgeRequest(ctx.port, { servername: 'pubfwd.edge.test', headers: { ...fakes, 'Cf-Client-Cert-Der-Base64': 'other' } });
        assert.equal(pub.status, 200);
        assert.deepEqual(pub.json().cfHeaders, {});
      });
    });

    // --- 7 ------------------------------------------------------------------------------------------------------

    describe('7. runtime changes', () => {
      let configs: Record<string, HostnameConfig>;
      const ctx = useEdge(async () => {
        configs = {
          pub: await host('rt-pub.edge.test'),
          m: await host('rt-m.edge.test', { cas: [ca1()], forward: true }),
          r: await host('rt-r.edge.test', { cas: [ca1()] }),
        };
        return Object.values(configs);
      });
      const agents: https.Agent[] = [];
      after(() => agents.forEach((a) => a.destroy()));

      it('apply: open connections keep working, new connections see the change', async () => {
        const pubAgent = keepAliveAgent();
        const mAgent = keepAliveAgent(visitor(pki.client1));
        agents.push(pubAgent, mAgent);
        const p1 = await edgeRequest(ctx.port, { servername: 'rt-pub.edge.test', agent: pubAgent });
        assert.equal(p1.json().origin, 'plain');
        const m1 = await edgeRequest(ctx.port, { servername: 'rt-m.edge.test', agent: mAgent });
        assert.equal(m1.status, 200);

        configs.pub = await host('rt-pub.edge.test', { origin: originOf(origins.second) });
        configs.added = await host('rt-added.edge.test');
        const res = await ctx.edge.apply({ version: 2, hostnames: Object.values(configs) });
        assert.deepEqual(res, { version: 2, failed: [] });
        assert.equal(ctx.edge.version, 2);

        const p2 = await edgeRequest(ctx.port, { servername: 'rt-pub.edge.test', agent: pubAgent });
        assert.equal(p2.status, 200);
        assert.equal(p2.reusedSocket, true, 'the open connection survived the change');
        const m2 = await edgeRequest(ctx.port, { servername: 'rt-m.edge.test', agent: mAgent });
        assert.equal(m2.status, 200);
        assert.equal(m2.reusedSocket, true, 'an authenticated connection survives a change that keeps its CAs');

        const fresh = await edgeRequest(ctx.port, { servername: 'rt-pub.edge.test' });
        assert.equal(fresh.json().origin, 'second', 'new connections use the new origin');
        const added = await edgeRequest(ctx.port, { servername: 'rt-added.edge.test', ca: pki.edgeCA.certPem });
        assert.equal(added.status, 200);
      });

      it('removing the Access CA of a hostname closes its authenticated connections only', async () => {
        const pubAgent = keepAliveAgent();
        const mAgent = keepAliveAgent(visitor(pki.client1));
        agents.push(pubAgent, mAgent);
        const p = await edgeRequest(ctx.port, { servername: 'rt-pub.edge.test', agent: pubAgent });
        const m = await edgeRequest(ctx.port, { servername: 'rt-m.edge.test', agent: mAgent });
        assert.equal(m.status, 200);
        const mSocket = m.socket;
        const pSocket = p.socket;

        configs.m = await host('rt-m.edge.test', { cas: [], forward: true });
        const res = await ctx.edge.apply({ version: 3, hostnames: Object.values(configs) });
        assert.deepEqual(res.failed, []);
        assert.equal(await closedWithin(mSocket, 3000), true, 'the authenticated connection was closed');
        assert.equal(pSocket.destroyed, false, 'the public connection stays open');
        const p2 = await edgeRequest(ctx.port, { servername: 'rt-pub.edge.test', agent: pubAgent });
        assert.equal(p2.reusedSocket, true);

        const now = await edgeRequest(ctx.port, { servername: 'rt-m.edge.test' });
        assert.equal(now.status, 200, 'the hostname is public now');
        assert.deepEqual(now.json().cfHeaders, {}, 'nothing to forward without a verified certificate');
      });

      it('replacing the Access CA (applyDelta) closes authenticated connections; the new CA applies', async () => {
        const rAgent = keepAliveAgent(visitor(pki.client1));
        agents.push(rAgent);
        const r = await edgeRequest(ctx.port, { servername: 'rt-r.edge.test', agent: rAgent });
        assert.equal(r.status, 200);
        configs.r = await host('rt-r.edge.test', { cas: [ca2()] });
        const res = await ctx.edge.applyDelta({ version: 4, upsert: [configs.r], remove: [] });
        assert.deepEqual(res, { version: 4, failed: [] });
        assert.equal(await closedWithin(r.socket, 3000), true, 'the connection authenticated under the old CA was closed');
        assert.equal((await edgeRequest(ctx.port, { servername: 'rt-r.edge.test', ...visitor(pki.client2) })).status, 200);
        assert.equal((await edgeRequest(ctx.port, { servername: 'rt-r.edge.test', ...visitor(pki.client1) })).status, 403);
      });

      it('applyDelta upserts and removes; removed hostnames get 421 / no handshake', async () => {
        const pubAgent = keepAliveAgent();
        agents.push(pubAgent);
        assert.equal((await edgeRequest(ctx.port, { servername: 'rt-pub.edge.test', agent: pubAgent, host: 'rt-added.edge.test' })).status, 200);
        configs.delta = await host('rt-delta.edge.test');
        delete configs.added;
        const res = await ctx.edge.applyDelta({ version: 5, upsert: [configs.delta], remove: ['rt-added.edge.test'] });
        assert.deepEqual(res, { version: 5, failed: [] });
        assert.equal(ctx.edge.version, 5);
        assert.equal((await edgeRequest(ctx.port, { servername: 'rt-delta.edge.test', ca: pki.edgeCA.certPem })).status, 200);
        const viaOld = await edgeRequest(ctx.port, { servername: 'rt-pub.edge.test', agent: pubAgent, host: 'rt-added.edge.test' });
        assert.equal(viaOld.status, 421, 'a removed hostname is misdirected on open connections');
        assert.equal(viaOld.reusedSocket, true);
        await assert.rejects(
          edgeRequest(ctx.port, { servername: 'rt-added.edge.test', ca: pki.edgeCA.certPem }),
          'a removed hostname gets no valid TLS handshake',
        );
        await assert.rejects(ctx.edge.applyDelta({ version: 5, upsert: [], remove: [] }), 'a delta must be newer than the current version');
        assert.equal(ctx.edge.version, 5);
      });

      it('a broken hostname lands in `failed` with a reason; the others apply; a failed update keeps the previous config', async () => {
        const good = await host('rt-good.edge.test');
        const other = await serverCert('rt-pub.edge.test');
        const badCert = { ...(await host('rt-badcert.edge.test')), serverCertificate: { certPem: 'not a certificate', keyPem: good.serverCertificate.keyPem } };
        const badKey = { ...(await host('rt-badkey.edge.test')), serverCertificate: { certPem: good.serverCertificate.certPem, keyPem: other.keyPem } };
        const badCA = await host('rt-badca.edge.test', { cas: [{ id: 'ca-broken', pem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }] });
        const brokenPub = { ...configs.pub, serverCertificate: { certPem: '-----BEGIN CERTIFICATE-----\ngarbage\n', keyPem: 'nope' } };
        const res = await ctx.edge.apply({ version: 6, hostnames: [brokenPub, configs.m, configs.r, configs.delta, good, badCert, badKey, badCA] });
        assert.equal(res.version, 6);
        assert.equal(ctx.edge.version, 6);
        const failed = new Map(res.failed.map((f) => [f.hostname, f.reason]));
        assert.deepEqual([...failed.keys()].sort(), ['rt-badca.edge.test', 'rt-badcert.edge.test', 'rt-badkey.edge.test', 'rt-pub.edge.test']);
        for (const reason of failed.values()) assert.ok(typeof reason === 'string' && reason.length > 0);

        assert.equal((await edgeRequest(ctx.port, { servername: 'rt-good.edge.test', ca: pki.edgeCA.certPem })).status, 200);
        for (const n of ['rt-badcert.edge.test', 'rt-badkey.edge.test', 'rt-badca.edge.test']) {
          await assert.rejects(edgeRequest(ctx.port, { servername: n, ca: pki.edgeCA.certPem }), `${n} is not served`);
        }
        // rt-pub keeps its previous certificate and origin.
        const s = await tlsConnect(ctx.port, { servername: 'rt-pub.edge.test', ca: pki.edgeCA.certPem, rejectUnauthorized: true });
        try {
          assert.equal(s.getPeerX509Certificate()?.raw.equals(other.certDer), true);
        } finally {
          s.destroy();
        }
        const pub = await edgeRequest(ctx.port, { servername: 'rt-pub.edge.test' });
        assert.equal(pub.json().origin, 'second');
      });
    });

    // --- 8 ------------------------------------------------------------------------------------------------------

    describe('8. robustness', () => {
      const ctx = useEdge(async () => [await host('robust.edge.test'), await host('robust-m.edge.test', { cas: [ca1()] })]);
      const ok = async (): Promise<void> => {
        const r = await edgeRequest(ctx.port, { servername: 'robust.edge.test' });
        assert.equal(r.status, 200);
      };
      const rawConnect = (): Promise<net.Socket> =>
        new Promise((resolve, reject) => {
          const s = net.connect(ctx.port, '127.0.0.1', () => resolve(s));
          s.on('error', () => undefined);
          s.once('error', reject);
        });

      it('a ClientHello split across many TCP segments and TLS records is served', async () => {
        for (const opts of [{ segment: 1, delayMs: 1 }, { segment: 7, delayMs: 2, reframe: 40 }, { segment: 100, delayMs: 5, reframe: 1 }]) {
          const proxy = await startSegmentingProxy(ctx.port, opts);
          try {
            for (const [n, c] of [['robust.edge.test', null], ['robust-m.edge.test', pki.client1]] as const) {
              const r = await edgeRequest(proxy.port, { servername: n, ca: pki.edgeCA.certPem, ...(c ? visitor(c) : {}) });
              assert.equal(r.status, 200, `${n} through ${JSON.stringify(opts)}: ${r.body}`);
            }
          } finally {
            await proxy.close();
          }
        }
      });

      it('garbage instead of a ClientHello is dropped', async () => {
        for (const bytes of [Buffer.from('GET / HTTP/1.1\r\nHost: robust.edge.test\r\n\r\n'), Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3]), Buffer.alloc(600, 0x16)]) {
          const s = await rawConnect();
          s.write(bytes);
          s.resume();
          assert.equal(await closedWithin(s, 5000), true, 'the edge closed a connection that sent garbage');
          s.destroy();
        }
        await ok();
      });

      it('a ClientHello without SNI gets no hostname', async () => {
        // Connecting to an IP address without `servername`: Node sends no server_name extension.
        await assert.rejects(tlsConnect(ctx.port, { ca: pki.edgeCA.certPem, rejectUnauthorized: true }));
        await ok();
      });

      it('slow or stalled clients do not block others', async () => {
        const silent = await rawConnect();
        const partial = await rawConnect();
        partial.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]));
        try {
          await Promise.all([ok(), ok(), ok()]);
          const m = await edgeRequest(ctx.port, { servername: 'robust-m.edge.test', ...visitor(pki.client1) });
          assert.equal(m.status, 200);
        } finally {
          silent.destroy();
          partial.destroy();
        }
      });

      it('survives visitors that reset mid-request and mid-handshake', async () => {
        for (let i = 0; i < 5; i++) {
          const s = await tlsConnect(ctx.port, { servername: 'robust.edge.test' });
          s.write('POST / HTTP/1.1\r\nHost: robust.edge.test\r\nContent-Length: 100000\r\n\r\npartial');
          await new Promise((r) => setTimeout(r, 20));
          s.destroy();
          const h = await rawConnect();
          h.write(Buffer.from([0x16, 0x03, 0x01]));
          h.resetAndDestroy();
        }
        await new Promise((r) => setTimeout(r, 50));
        await ok();
        await withTimeout(Promise.all(Array.from({ length: 10 }, () => ok())), 10_000, 'ten parallel requests');
      });
    });
  });
}

export type { Echo };

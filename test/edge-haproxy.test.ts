/**
 * The HAProxy data plane: the shared conformance suite (unchanged), plus what is specific to driving HAProxy: the
 * session-isolation self-test, the files a restart serves, restarting HAProxy when it dies, and the order of runtime
 * changes. Runs whenever an `haproxy` binary exists (CERTPLANE_HAPROXY or PATH); says loudly when it skips, and fails
 * instead when CERTPLANE_REQUIRE_HAPROXY=1 (CI).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { HostnameConfig } from '../src/edge/contract.js';
import { createHaproxyDataPlane, findHaproxy, type HaproxyDataPlane, type HaproxyHealth } from '../src/edge/haproxy/index.js';
import { sendCommand } from '../src/edge/haproxy/runtime.js';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import { makeServerCert } from './edge/certs.js';
import { dataPlaneConformance } from './edge/conformance.js';
import { edgeRequest, keepAliveAgent, startEchoOrigin, tlsConnect, type EchoOrigin } from './edge/support.js';

const haproxy = findHaproxy();
if (!haproxy) {
  if (process.env.CERTPLANE_REQUIRE_HAPROXY === '1') {
    describe('haproxy data plane', () => {
      it('needs an haproxy binary (CERTPLANE_REQUIRE_HAPROXY=1)', () => {
        throw new Error('haproxy not found on PATH and CERTPLANE_HAPROXY is not set (Debian: apt-get install haproxy)');
      });
    });
  } else {
    const bar = '!'.repeat(100);
    console.error(`${bar}\nedge-haproxy: no haproxy binary found: the HAProxy data-plane suite is SKIPPED.\n` +
      `Install HAProxy (Debian: apt-get install haproxy) or set CERTPLANE_HAPROXY to its path.\n${bar}`);
    describe('haproxy data plane', { skip: 'no haproxy binary (install haproxy or set CERTPLANE_HAPROXY)' }, () => undefined);
  }
} else {
  dataPlaneConformance('haproxy', () => Promise.resolve(createHaproxyDataPlane()), { expectResumption: false, isolatesSessions: true });
  haproxySpecific(haproxy);
}

function haproxySpecific(bin: string): void {
  describe('haproxy data plane: driving HAProxy', () => {
    let edgeCA: Issued;
    let accessCA: Issued;
    let visitor: Issued;
    let origin: EchoOrigin;
    let other: EchoOrigin;
    const certs = new Map<string, { certPem: string; keyPem: string }>();

    before(async () => {
      [edgeCA, accessCA] = await Promise.all([makeCA({ cn: 'haproxy test edge CA' }), makeCA({ cn: 'haproxy test Access CA' })]);
      visitor = await makeLeaf({ issuer: accessCA, cn: 'haproxy test visitor' });
      [origin, other] = await Promise.all([startEchoOrigin({ name: 'origin' }), startEchoOrigin({ name: 'other' })]);
    });
    after(async () => {
      await Promise.all([origin?.close(), other?.close()]);
    });

    const host = async (hostname: string, o: { port?: number; cas?: boolean } = {}): Promise<HostnameConfig> => {
      let c = certs.get(hostname);
      if (!c) certs.set(hostname, (c = await makeServerCert(edgeCA, [hostname])));
      return {
        hostname,
        serverCertificate: { certPem: c.certPem, keyPem: c.keyPem },
        origin: { address: '127.0.0.1', port: o.port ?? origin.port, tls: false },
        accessCAs: o.cas ? [{ id: 'access-ca', pem: accessCA.certPem }] : [],
        forwardClientCertificate: false,
        originClientCertificate: null,
      };
    };
    const started: HaproxyDataPlane[] = [];
    after(async () => {
      for (const dp of started) await dp.stop();
    });
    const start = async (opts: Parameters<typeof createHaproxyDataPlane>[0] = {}) => {
      const dp = createHaproxyDataPlane(opts);
      started.push(dp);
      const { port } = await dp.start({ host: '127.0.0.1', port: 0 });
      return { dp, port };
    };
    const workerPidOnSocket = async (dp: HaproxyDataPlane) => Number(/^Pid: (\d+)/m.exec(await sendCommand(join(dp.directory, 'admin.sock'), 'show info'))![1]);
    const serves = async (port: number, name: string) => (await edgeRequest(port, { servername: name, ca: edgeCA.certPem })).json();

    it('detects the version and self-tests session isolation; the workaround it chooses is in the files', async () => {
      const { dp, port } = await start();
      const info = dp.haproxy!;
      assert.match(info.binary.version, /^\d+\.\d+/);
      const version = execFileSync(bin, ['-v']).toString();
      assert.ok(version.includes(info.binary.version), version);
      const cfg = readFileSync(join(dp.directory, 'haproxy.cfg'), 'utf8');
      if (info.binary.major === 2 && info.binary.minor === 6) {
        // Debian's 2.6 resumes sessions across crt-list lines (DESIGN.md): the self-test must catch it.
        assert.equal(info.isolation.leaksWithResumption, true);
        assert.equal(info.isolation.decision, 'workaround');
      }
      const off = info.isolation.decision !== 'resumption-on';
      assert.equal(/^\s*tune\.ssl\.cachesize 0$/m.test(cfg), off);
      assert.equal(/ no-tls-tickets\b/.test(cfg), off);
      if (off) {
        // What the workaround costs visitors: no session resumption, even on the hostname that issued the session.
        await dp.apply({ version: 1, hostnames: [await host('resume.haproxy.test')] });
        const first = await tlsConnect(port, { servername: 'resume.haproxy.test', ca: edgeCA.certPem, maxVersion: 'TLSv1.2' });
        const session = first.getSession();
        first.destroy();
        const again = await tlsConnect(port, { servername: 'resume.haproxy.test', ca: edgeCA.certPem, maxVersion: 'TLSv1.2', session });
        assert.equal(again.isSessionReused(), false);
        again.destroy();
      }
    });

    it('applies small changes at runtime (same worker), writes the files, and keeps origin connections alive', async () => {
      const { dp, port } = await start();
      await dp.apply({ version: 1, hostnames: [await host('a.haproxy.test')] });
      const worker = await workerPidOnSocket(dp);
      const res = await dp.applyDelta({ version: 2, upsert: [await host('b.haproxy.test', { port: other.port })], remove: [] });
      assert.deepEqual(res, { version: 2, failed: [] });
      assert.equal(await workerPidOnSocket(dp), worker, 'no reload for one hostname');
      assert.equal((await serves(port, 'b.haproxy.test')).origin, 'other');

      const dir = dp.directory;
      // Files are written right after a runtime change, off its path (HAProxy reads them only when it restarts).
      for (const until = Date.now() + 5_000; !readFileSync(join(dir, 'edge.crtlist'), 'utf8').includes(' b.haproxy.test'); ) {
        assert.ok(Date.now() < until, 'the crt-list file was not written');
        await new Promise((r) => setTimeout(r, 10));
      }
      const crtList = readFileSync(join(dir, 'edge.crtlist'), 'utf8');
      assert.match(crtList, /\/certs\/a\.haproxy\.test\.[0-9a-f]{16}\.pem a\.haproxy\.test$/m);
      assert.match(crtList, /\/certs\/b\.haproxy\.test\.[0-9a-f]{16}\.pem b\.haproxy\.test$/m);
      const map = readFileSync(join(dir, 'hosts.map'), 'utf8');
      assert.match(map, /^b\.haproxy\.test p\|o\d+\|0\|b\.haproxy\.test$/m);
      const cfg = readFileSync(join(dir, 'haproxy.cfg'), 'utf8');
      assert.match(cfg, new RegExp(`server s 127\\.0\\.0\\.1:${other.port} pool-max-conn -1 pool-purge-delay 5s`), 'the runtime server is in the files too');
      for (const f of ['haproxy.cfg', 'edge.crtlist', 'hosts.map']) assert.equal(readFileSync(join(dir, f)).length > 0, true);
      const mode = execFileSync('stat', ['-c', '%a', dir]).toString().trim();
      assert.equal(mode, '700', 'private keys live in a private directory');

      // A server added at runtime keeps its idle origin connections (HAProxy 2.6 would purge them at once).
      const agent = keepAliveAgent();
      try {
        const sockets = new Set<number>();
        for (let i = 0; i < 12; i++) sockets.add((await edgeRequest(port, { servername: 'b.haproxy.test', agent })).json().socketId);
        assert.equal(sockets.size, 1, `origin connections used: ${sockets.size}`);
      } finally {
        agent.destroy();
      }
    });

    it("after a series of runtime changes HAProxy's store holds exactly what is served (nothing leaks)", async () => {
      const { dp } = await start();
      await dp.apply({ version: 1, hostnames: [await host('s1.haproxy.test'), await host('s2.haproxy.test', { cas: true })] });
      const renewed = { ...(await host('s1.haproxy.test')), serverCertificate: await makeServerCert(edgeCA, ['s1.haproxy.test']) };
      await dp.applyDelta({ version: 2, upsert: [renewed], remove: [] });
      await dp.applyDelta({ version: 3, upsert: [await host('s3.haproxy.test', { port: other.port })], remove: ['s2.haproxy.test'] });
      await dp.applyDelta({ version: 4, upsert: [await host('s3.haproxy.test', { cas: true })], remove: ['s1.haproxy.test'] });
      const sock = join(dp.directory, 'admin.sock');
      const lines = (await sendCommand(sock, `show ssl crt-list -n ${join(dp.directory, 'edge.crtlist')}`)).split('\n').filter((l) => l.startsWith('/'));
      assert.deepEqual(lines.map((l) => l.split(' ').pop()).sort(), ['certplane-placeholder.invalid', 's3.haproxy.test']);
      const inList = lines.map((l) => l.split(' ')[0].replace(/:\d+$/, '')).sort();
      const stored = (out: string) => out.split('\n').filter((l) => l.startsWith('/')).map((l) => l.split(' ')[0]).sort();
      assert.deepEqual(stored(await sendCommand(sock, 'show ssl cert')), inList, 'the store holds the certificates of the crt-list, nothing else');
      const ca = /ca-file (\S+)\]/.exec(lines.find((l) => l.endsWith(' s3.haproxy.test'))!)![1];
      assert.deepEqual(stored(await sendCommand(sock, 'show ssl ca-file')), [ca], 'only the Access CA file s3 uses');
    });

    it('what cannot be done at runtime is a hitless reload: the first Access mTLS hostname switches to the hop shape', async () => {
      const { dp, port } = await start({ reloadThreshold: 5 });
      await dp.apply({ version: 1, hostnames: [await host('pub.haproxy.test')] });
      assert.doesNotMatch(readFileSync(join(dp.directory, 'haproxy.cfg'), 'utf8'), /^frontend sni$/m);
      const worker = await workerPidOnSocket(dp);
      const res = await dp.applyDelta({ version: 2, upsert: [await host('mtls.haproxy.test', { cas: true })], remove: [] });
      assert.deepEqual(res, { version: 2, failed: [] });
      assert.notEqual(await workerPidOnSocket(dp), worker, 'reloaded');
      assert.match(readFileSync(join(dp.directory, 'haproxy.cfg'), 'utf8'), /^frontend sni$/m);
      assert.match(readFileSync(join(dp.directory, 'hop.map'), 'utf8'), /^mtls\.haproxy\.test h\d+$/m);
      assert.equal((await edgeRequest(port, { servername: 'mtls.haproxy.test', ca: edgeCA.certPem, cert: visitor.certPem, key: visitor.keyPem })).status, 200);
      assert.equal((await edgeRequest(port, { servername: 'mtls.haproxy.test', ca: edgeCA.certPem })).status, 403);
      assert.equal((await serves(port, 'pub.haproxy.test')).origin, 'origin');

      // Running out of origin slots is a reload too; everything keeps being served.
      const many = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
        const o = await startEchoOrigin({ name: `o${i}` });
        return { o, cfg: await host(`slot${i}.haproxy.test`, { port: o.port }) };
      }));
      try {
        const before = await workerPidOnSocket(dp);
        const r = await dp.applyDelta({ version: 3, upsert: many.map((m) => m.cfg), remove: [] });
        assert.deepEqual(r, { version: 3, failed: [] });
        assert.notEqual(await workerPidOnSocket(dp), before, '20 new origins need more than the free slots: reloaded');
        for (const [i, m] of many.entries()) assert.equal((await serves(port, `slot${i}.haproxy.test`)).origin, `o${i}`);
      } finally {
        await Promise.all(many.map((m) => m.o.close()));
      }

      // A snapshot changing more hostnames than reloadThreshold is a reload, which picks the shape again: no Access
      // mTLS hostname is left, so visitors connect straight to the TLS frontend again.
      const before = await workerPidOnSocket(dp);
      assert.deepEqual(await dp.apply({ version: 4, hostnames: [await host('pub.haproxy.test')] }), { version: 4, failed: [] });
      assert.notEqual(await workerPidOnSocket(dp), before);
      assert.doesNotMatch(readFileSync(join(dp.directory, 'haproxy.cfg'), 'utf8'), /^frontend sni$/m);
      assert.equal((await serves(port, 'pub.haproxy.test')).origin, 'origin');
      await assert.rejects(edgeRequest(port, { servername: 'slot0.haproxy.test', ca: edgeCA.certPem }));
    });

    it('a snapshot changing many hostnames is one reload; a key that does not match is found meanwhile and left out', async () => {
      const { dp, port } = await start({ reloadThreshold: 2 });
      const keep = await host('keep.haproxy.test');
      assert.deepEqual(await dp.apply({ version: 1, hostnames: [keep, await host('p1.haproxy.test')] }), { version: 1, failed: [] });
      const worker = await workerPidOnSocket(dp);
      const stranger = await makeServerCert(edgeCA, ['other.haproxy.test']);
      const badNew = { ...(await host('badkey.haproxy.test')), serverCertificate: { certPem: (await host('badkey.haproxy.test')).serverCertificate.certPem, keyPem: stranger.keyPem } };
      const badUpdate = { ...keep, serverCertificate: { certPem: keep.serverCertificate.certPem, keyPem: stranger.keyPem } };
      const fresh = await Promise.all(['n1', 'n2', 'n3'].map((n) => host(`${n}.haproxy.test`, { port: other.port })));
      const res = await dp.apply({ version: 2, hostnames: [badUpdate, badNew, ...fresh] });
      assert.equal(res.version, 2);
      assert.deepEqual(res.failed.map((f) => f.hostname).sort(), ['badkey.haproxy.test', 'keep.haproxy.test']);
      for (const f of res.failed) assert.equal(f.reason, 'server certificate or key is unusable: the private key does not match the certificate');
      assert.notEqual(await workerPidOnSocket(dp), worker, 'reloaded');
      for (const n of ['n1', 'n2', 'n3']) assert.equal((await serves(port, `${n}.haproxy.test`)).origin, 'other');
      assert.equal((await serves(port, 'keep.haproxy.test')).origin, 'origin', 'a failed update keeps the previous configuration');
      await assert.rejects(edgeRequest(port, { servername: 'badkey.haproxy.test', ca: edgeCA.certPem }), 'a failed new hostname is not served');
      await assert.rejects(edgeRequest(port, { servername: 'p1.haproxy.test', ca: edgeCA.certPem }), 'left out of the snapshot: removed');
    });

    it('restarts HAProxy when it dies, reports the edge unhealthy until it serves again, and serves the same', async () => {
      const health: HaproxyHealth[] = [];
      const { dp, port } = await start({ onHealth: (h) => health.push(h) });
      await dp.apply({ version: 1, hostnames: [await host('x.haproxy.test'), await host('y.haproxy.test', { port: other.port })] });
      assert.deepEqual(health, [{ healthy: true }]);
      for (const which of ['worker', 'master'] as const) {
        const before = dp.pids!;
        process.kill(before[which], 'SIGKILL');
        const deadline = Date.now() + 15_000;
        while (!(dp.pids && dp.pids.master !== before.master && health.at(-1)?.healthy === true)) {
          assert.ok(Date.now() < deadline, `haproxy was not restarted after its ${which} was killed: ${JSON.stringify(health)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        const down = health.at(-2)!;
        assert.equal(down.healthy, false);
        assert.match(down.reason!, /haproxy exited/);
        assert.equal((await serves(port, 'x.haproxy.test')).origin, 'origin');
        assert.equal((await serves(port, 'y.haproxy.test')).origin, 'other');
        const alive = () => {
          try {
            process.kill(before.worker, 0);
            return !/^State:\s+Z/m.test(readFileSync(`/proc/${before.worker}/status`, 'utf8'));
          } catch {
            return false;
          }
        };
        for (const until = Date.now() + 10_000; alive(); await new Promise((r) => setTimeout(r, 20))) {
          assert.ok(Date.now() < until, `the old worker ${before.worker} is still running`);
        }
      }
      assert.deepEqual(health.map((h) => h.healthy), [true, false, true, false, true]);
    });

    it('refuses Access mTLS when the self-test shows sessions leak even with the workaround', async () => {
      // A real HAProxy that ignores the workaround: a wrapper that removes it from every configuration it is given.
      const dir = mkdtempSync(join(tmpdir(), 'certplane-leaky-haproxy-'));
      try {
        const wrapper = join(dir, 'haproxy');
        writeFileSync(
          wrapper,
          `#!/bin/sh\nout=""\nfor a in "$@"; do\n  if [ -f "$a" ] && [ "\${a%.cfg}" != "$a" ]; then sed -e '/tune.ssl.cachesize 0/d' -e 's/ no-tls-tickets//' "$a" > "$a.leaky"; out="$out $a.leaky"; else out="$out $a"; fi\ndone\nexec ${bin} $out\n`,
        );
        chmodSync(wrapper, 0o755);
        const { dp, port } = await start({ binary: wrapper });
        assert.equal(dp.haproxy!.isolation.decision, dp.haproxy!.isolation.leaksWithResumption ? 'refuse-access-mtls' : 'resumption-on');
        if (dp.haproxy!.isolation.decision !== 'refuse-access-mtls') return; // a fixed HAProxy: nothing to refuse
        assert.deepEqual(dp.haproxy!.isolation, {
          leaksWithResumption: true,
          leaksWithWorkaround: true,
          decision: 'refuse-access-mtls',
          detail: `HAProxy ${dp.haproxy!.binary.version} resumes TLS sessions across hostnames even with session resumption turned off: Access mTLS is refused on this edge`,
        });
        const res = await dp.apply({ version: 1, hostnames: [await host('open.haproxy.test'), await host('tenant.haproxy.test', { cas: true })] });
        assert.equal(res.failed.length, 1);
        assert.equal(res.failed[0].hostname, 'tenant.haproxy.test');
        assert.match(res.failed[0].reason, /^Access mTLS refused on this edge: HAProxy .* resumes TLS sessions across hostnames even with session resumption turned off/);
        assert.equal((await serves(port, 'open.haproxy.test')).origin, 'origin');
        await assert.rejects(edgeRequest(port, { servername: 'tenant.haproxy.test', ca: edgeCA.certPem }), 'never served without isolation');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

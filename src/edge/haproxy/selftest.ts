/**
 * The start-up self-test of TLS session isolation. Debian's HAProxy 2.6 lets a TLS session (1.2 session id or 1.3
 * ticket) issued on one crt-list line resume on another line with other Access CAs, so a visitor authenticated by
 * tenant A's CA would arrive on tenant B's hostname with A's verified certificate (all contexts share one session-id
 * context; fixed upstream in August 2026). The edge does not trust a version number for this: at start it runs a
 * throw-away HAProxy with two such hostnames and tries exactly that attack, with resumption on and then with the
 * workaround (`tune.ssl.cachesize 0` + `no-tls-tickets`: either alone is not enough).
 *
 *  - not resumed across hostnames with resumption on → the version isolates sessions; resumption stays on.
 *  - resumed, but not with the workaround → the workaround is turned on (visitors lose session resumption).
 *  - resumed even with the workaround → Access mTLS is refused on this HAProxy (hostnames with Access CAs fail).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { createCa, issueCertificate } from '../../pki/issue.js';
import { freePort, startHaproxy, type HaproxyBinary } from './process.js';

export interface IsolationReport {
  /** Sessions from one hostname resumed on another with resumption on. */
  leaksWithResumption: boolean;
  /** Still resumed with the workaround on. */
  leaksWithWorkaround: boolean;
  /** What the edge does about it. */
  decision: 'resumption-on' | 'workaround' | 'refuse-access-mtls';
  detail: string;
}

const cache = new Map<string, Promise<IsolationReport>>();

/** Runs the self-test once per binary and version in this process. */
export function sessionIsolationSelfTest(bin: HaproxyBinary): Promise<IsolationReport> {
  const key = `${bin.path}\0${bin.version}`;
  let p = cache.get(key);
  if (!p) {
    p = run(bin);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

function connect(port: number, opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
    const timer = setTimeout(() => s.destroy(new Error('self-test handshake timed out')), 5_000);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** A session from a.selftest resumed on b.selftest, for one TLS version? */
async function leaks(port: number, client: { certPem: string; keyPem: string }, version: tls.SecureVersion): Promise<boolean> {
  const a = await connect(port, { servername: 'a.selftest.invalid', cert: client.certPem, key: client.keyPem, minVersion: version, maxVersion: version });
  let session: Buffer | undefined;
  a.on('session', (s: Buffer) => (session ??= s));
  // TLS 1.3 tickets arrive after the handshake: a request/response round trip makes sure they did.
  await new Promise<void>((resolve) => {
    a.once('data', () => resolve());
    a.once('close', () => resolve());
    a.write('GET / HTTP/1.1\r\nHost: a.selftest.invalid\r\n\r\n');
    setTimeout(resolve, 2_000);
  });
  session ??= a.getSession();
  a.destroy();
  if (!session) return false;
  try {
    const b = await connect(port, { servername: 'b.selftest.invalid', session, cert: client.certPem, key: client.keyPem, minVersion: version, maxVersion: version });
    const reused = b.isSessionReused();
    b.destroy();
    return reused;
  } catch {
    return false;
  }
}

async function run(bin: HaproxyBinary): Promise<IsolationReport> {
  const dir = mkdtempSync(join(tmpdir(), 'certplane-haproxy-selftest-'));
  try {
    const serverCa = await createCa('CN=certplane self-test server CA', 3600_000);
    const [ca1, ca2] = await Promise.all([createCa('CN=certplane self-test tenant A', 3600_000), createCa('CN=certplane self-test tenant B', 3600_000)]);
    const [a, b, client] = await Promise.all([
      issueCertificate(serverCa, { cn: 'a.selftest.invalid', dnsName: 'a.selftest.invalid', validForMs: 3600_000 }),
      issueCertificate(serverCa, { cn: 'b.selftest.invalid', dnsName: 'b.selftest.invalid', validForMs: 3600_000 }),
      issueCertificate(ca1, { cn: 'self-test visitor', client: true, validForMs: 3600_000 }),
    ]);
    writeFileSync(join(dir, 'a.pem'), a.certPem + a.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'b.pem'), b.certPem + b.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'ca1.pem'), ca1.certPem);
    writeFileSync(join(dir, 'ca2.pem'), ca2.certPem);
    writeFileSync(
      join(dir, 'list'),
      `${join(dir, 'a.pem')} [verify optional ca-file ${join(dir, 'ca1.pem')}] a.selftest.invalid\n` +
        `${join(dir, 'b.pem')} [verify optional ca-file ${join(dir, 'ca2.pem')}] b.selftest.invalid\n`,
    );
    const attempt = async (workaround: boolean): Promise<boolean> => {
      const port = await freePort('127.0.0.1');
      const cfg = join(dir, `selftest-${workaround ? 'on' : 'off'}.cfg`);
      writeFileSync(
        cfg,
        [
          'global',
          `  stats socket ${join(dir, 'admin.sock')} mode 600 level admin`,
          ...(workaround ? ['  tune.ssl.cachesize 0'] : []),
          'defaults',
          '  mode http',
          '  timeout connect 5s',
          '  timeout client 10s',
          '  timeout server 10s',
          'frontend selftest',
          `  bind 127.0.0.1:${port} ssl crt-list ${join(dir, 'list')} strict-sni ca-ignore-err all crt-ignore-err all${workaround ? ' no-tls-tickets' : ''}`,
          '  http-request return status 200 content-type text/plain string ok',
          '',
        ].join('\n'),
      );
      const h = await startHaproxy({ bin: bin.path, cfgFile: cfg, masterSocket: join(dir, 'master.sock'), adminSocket: join(dir, 'admin.sock'), onExit: () => undefined });
      try {
        const tls13 = await leaks(port, client, 'TLSv1.3');
        const tls12 = await leaks(port, client, 'TLSv1.2');
        return tls13 || tls12;
      } finally {
        await h.stop();
      }
    };
    const leaksWithResumption = await attempt(false);
    const leaksWithWorkaround = leaksWithResumption ? await attempt(true) : false;
    const decision = !leaksWithResumption ? 'resumption-on' : !leaksWithWorkaround ? 'workaround' : 'refuse-access-mtls';
    const detail =
      decision === 'resumption-on'
        ? `HAProxy ${bin.version} keeps TLS sessions to the hostname that issued them: session resumption stays on`
        : decision === 'workaround'
          ? `HAProxy ${bin.version} resumes TLS sessions across hostnames with other Access CAs: session resumption is turned off (tune.ssl.cachesize 0 + no-tls-tickets)`
          : `HAProxy ${bin.version} resumes TLS sessions across hostnames even with session resumption turned off: Access mTLS is refused on this edge`;
    return { leaksWithResumption, leaksWithWorkaround, decision, detail };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Abuse limits: Cloudflare's per-credential and per-IP rate limits (429 envelope 971 with Retry-After and the
 * rate-limit headers, no work done for a refused request), the body limit (413 and the connection closed), header,
 * request and idle timeouts against slow clients, and the connection cap. Each test sets small limits; the other
 * suites run with the rate limits off (test/helpers/harness.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { clientKey, credentialKey, RateLimiter, WindowCounter } from '../src/api/ratelimit.js';
import { loadConfig } from '../src/config.js';
import type { Store } from '../src/domain/ports.js';
import { createCertplane, openStore } from '../src/main.js';
import { ALL_PERMISSIONS, assertError, assertOk, ManualClock, withServer, type ApiResponse, type TestServer } from './helpers/harness.js';
import { pollUntil, runUntilExit } from './helpers/process.js';
import { databaseEnv } from './helpers/store.js';

const RATE_LIMITED = {
  success: false,
  errors: [{ code: 971, message: 'Please wait and consider throttling your request speed' }],
  messages: [],
  result: null,
};
const TIMED_OUT = { success: false, errors: [{ code: 6011, message: 'Request timeout' }], messages: [], result: null };
const TOO_LARGE = { success: false, errors: [{ code: 6009, message: 'Request body is too large' }], messages: [], result: null };

const settingsPath = (s: { zoneId: string }) => `/zones/${s.zoneId}/origin_tls_client_auth/settings`;

/** The headers every counted answer carries. */
function assertCounted(res: ApiResponse | Response, name: string, limit: number, window: number, remaining: number, reset: number): void {
  assert.equal(res.headers.get('ratelimit'), `"${name}";r=${remaining};t=${reset}`);
  assert.equal(res.headers.get('ratelimit-policy'), `"${name}";q=${limit};w=${window}`);
  assert.equal(res.headers.get('x-ratelimit-limit'), String(limit));
  assert.equal(res.headers.get('x-ratelimit-remaining'), String(remaining));
}

/** A refused request's answer: exact body and every header. */
function assertLimited(res: ApiResponse, name: string, limit: number, window: number, retryAfter: number, now: Date): void {
  assert.equal(res.status, 429, res.text);
  assert.deepEqual(res.body, RATE_LIMITED);
  assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assertCounted(res, name, limit, window, 0, retryAfter);
  assert.equal(res.headers.get('retry-after'), String(retryAfter));
  assert.equal(res.headers.get('x-ratelimit-reset'), new Date(now.getTime() + retryAfter * 1000).toUTCString());
}

function assertNotRefused(res: ApiResponse): void {
  assert.equal(res.headers.get('retry-after'), null);
  assert.equal(res.headers.get('x-ratelimit-reset'), null);
}

describe('rate limits (Cloudflare: 1200 requests per 5 minutes per credential, 200 per second per IP)', () => {
  const SMALL = { CERTPLANE_RATE_LIMIT: '3', CERTPLANE_RATE_LIMIT_WINDOW_SECONDS: '60' };

  test('per credential: remaining counts down, then 429 for one whole window with Retry-After; another token is not limited', async () => {
    await withServer(SMALL, async (s) => {
      for (const left of [2, 1, 0]) {
        const res = await s.request('GET', settingsPath(s));
        assert.deepEqual(assertOk(res), { enabled: false });
        assertCounted(res, 'default', 3, 60, left, 60);
        assertNotRefused(res);
      }
      // The second and third GET were answered from memory (src/api/answers.ts): counted all the same.
      assert.equal(s.cp.app.answers.hits, 2);
      s.clock.advance(10_000);
      assertLimited(await s.request('GET', settingsPath(s)), 'default', 3, 60, 60, s.clock.now());
      s.clock.advance(30_000);
      // Refused requests do not extend the block, and a refused write writes nothing.
      assertLimited(await s.request('PUT', settingsPath(s), { body: { enabled: true } }), 'default', 3, 60, 30, s.clock.now());

      const other = await s.makeToken(ALL_PERMISSIONS, [{ type: 'all' }]);
      const res = await s.request('GET', settingsPath(s), { token: other });
      assertOk(res);
      assertCounted(res, 'default', 3, 60, 2, 60);

      s.clock.advance(29_999);
      assertLimited(await s.request('GET', settingsPath(s)), 'default', 3, 60, 1, s.clock.now());
      s.clock.advance(1);
      const back = await s.request('GET', settingsPath(s));
      assert.deepEqual(assertOk(back), { enabled: false }, 'the refused PUT changed nothing');
      assertCounted(back, 'default', 3, 60, 2, 60);
    });
  });

  test('a user (email + global key) is one credential whatever the case of the email; a token of the same installation is another', async () => {
    await withServer(SMALL, async (s) => {
      const asUser = (email: string) => ({ token: null, headers: { 'x-auth-email': email, 'x-auth-key': s.apiKey } });
      const upper = s.email.toUpperCase();
      for (const [email, left] of [[s.email, 2], [upper, 1], [s.email, 0]] as const) {
        const res = await s.request('GET', settingsPath(s), asUser(email));
        assertOk(res);
        assertCounted(res, 'default', 3, 60, left, 60);
      }
      assertLimited(await s.request('GET', settingsPath(s), asUser(upper)), 'default', 3, 60, 60, s.clock.now());
      const res = await s.request('GET', settingsPath(s));
      assertOk(res);
      assertCounted(res, 'default', 3, 60, 2, 60);
    });
  });

  test('requests that do not authenticate are counted by client IP, however many different credentials they try', async () => {
    await withServer(SMALL, async (s) => {
      // The bootstrap token authenticates once: from then on it is counted on its own.
      assertCounted(await s.request('GET', settingsPath(s)), 'default', 3, 60, 2, 60);
      const guesses = ['a', 'b', 'c'].map((c) => c.repeat(40));
      for (const [i, guess] of guesses.entries()) {
        const res = await s.request('GET', settingsPath(s), { token: guess });
        assertError(res, 401, 9109, 'Invalid access token');
        assertCounted(res, 'default', 3, 60, 2 - i, 60);
      }
      const now = s.clock.now();
      assertLimited(await s.request('GET', settingsPath(s), { token: 'd'.repeat(40) }), 'default', 3, 60, 60, now);
      assertLimited(await s.request('GET', settingsPath(s), { token: null }), 'default', 3, 60, 60, now);
      assertLimited(await s.request('GET', settingsPath(s), { token: null, headers: { 'x-auth-email': 'x@example.com', 'x-auth-key': 'k' } }), 'default', 3, 60, 60, now);
      assertLimited(await s.request('GET', settingsPath(s), { token: null, headers: { authorization: 'Basic Zm9vOmJhcg==' } }), 'default', 3, 60, 60, now);
      // The credential that did authenticate is unaffected.
      const res = await s.request('GET', settingsPath(s));
      assertOk(res);
      assertCounted(res, 'default', 3, 60, 1, 60);
    });
  });

  test('per client IP: every request counts, whatever its credential, the edge feed too', async () => {
    await withServer({ CERTPLANE_RATE_LIMIT: '100', CERTPLANE_RATE_LIMIT_WINDOW_SECONDS: '300', CERTPLANE_IP_RATE_LIMIT: '4', CERTPLANE_IP_RATE_LIMIT_WINDOW_SECONDS: '60' }, async (s) => {
      const other = await s.makeToken(ALL_PERMISSIONS, [{ type: 'all' }]);
      const answers = [];
      for (const token of [s.token, s.token, other, other]) answers.push(await s.request('GET', settingsPath(s), { token }));
      // The answers report the credential's own budget while the IP's lasts.
      assertCounted(answers[1], 'default', 100, 300, 98, 300);
      assertCounted(answers[3], 'default', 100, 300, 98, 300);
      assertLimited(await s.request('GET', settingsPath(s), { token: other }), 'ip', 4, 60, 60, s.clock.now());
      assertLimited(await s.request('GET', '/user/tokens/verify', { token: null }), 'ip', 4, 60, 60, s.clock.now());
      assertLimited(await s.request('GET', '/no/such/route', { noSchema: true }), 'ip', 4, 60, 60, s.clock.now());
      const edge = await fetch(`${new URL(s.baseUrl).origin}/edge/v1/config`, { headers: { authorization: 'Bearer nope' } });
      assert.equal(edge.status, 429);
      assert.deepEqual(await edge.json(), RATE_LIMITED);
      assert.equal(edge.headers.get('retry-after'), '60');
      s.clock.advance(60_000);
      assertOk(await s.request('GET', settingsPath(s), { token: other }));
    });
  });

  test('the client IP is the socket peer, or X-Forwarded-For from CERTPLANE_TRUST_PROXY; IPv6 counts per /64', async () => {
    const ipOnly = { CERTPLANE_RATE_LIMIT: '0', CERTPLANE_IP_RATE_LIMIT: '1', CERTPLANE_IP_RATE_LIMIT_WINDOW_SECONDS: '60' };
    const from = (ip: string) => ({ headers: { 'x-forwarded-for': ip } });
    await withServer(ipOnly, async (s) => {
      const first = await s.request('GET', settingsPath(s), from('203.0.113.5'));
      assertOk(first);
      assertCounted(first, 'ip', 1, 60, 0, 60);
      // Not behind a trusted proxy: the header is the client's own claim and changes nothing.
      assertLimited(await s.request('GET', settingsPath(s), from('203.0.113.6')), 'ip', 1, 60, 60, s.clock.now());
    });
    await withServer({ ...ipOnly, CERTPLANE_TRUST_PROXY: '127.0.0.1, ::1' }, async (s) => {
      const now = s.clock.now();
      assertOk(await s.request('GET', settingsPath(s), from('203.0.113.5')));
      assertLimited(await s.request('GET', settingsPath(s), from('203.0.113.5')), 'ip', 1, 60, 60, now);
      assertOk(await s.request('GET', settingsPath(s), from('198.51.100.7, 203.0.113.6')));
      assertOk(await s.request('GET', settingsPath(s), from('2001:db8:1:2::1')));
      assertLimited(await s.request('GET', settingsPath(s), from('2001:db8:1:2:ffff::2')), 'ip', 1, 60, 60, now);
      assertOk(await s.request('GET', settingsPath(s), from('2001:db8:1:3::1')));
    });
  });

  test("the defaults are Cloudflare's: 1200 per 300 s per credential, 200 per second per IP", async () => {
    assert.deepEqual(loadConfig({}).abuse.rateLimit, {
      perCredential: { limit: 1200, windowSeconds: 300 },
      perIp: { limit: 200, windowSeconds: 1 },
    });
    await withServer({ CERTPLANE_RATE_LIMIT: '', CERTPLANE_IP_RATE_LIMIT: '' }, async (s) => {
      const res = await s.request('GET', '/user/tokens/verify');
      assertOk(res);
      assertCounted(res, 'default', 1200, 300, 1199, 300);
    });
    // Off: nothing is counted and no rate-limit header is sent.
    await withServer({}, async (s) => {
      const res = await s.request('GET', '/user/tokens/verify');
      assertOk(res);
      for (const h of ['ratelimit', 'ratelimit-policy', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'retry-after']) {
        assert.equal(res.headers.get(h), null, h);
      }
    });
  });

  test('a refused request does no work: no database access at all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certplane-abuse-'));
    const config = loadConfig({
      CERTPLANE_DATA_DIR: dir,
      CERTPLANE_RATE_LIMIT: '2',
      CERTPLANE_RATE_LIMIT_WINDOW_SECONDS: '60',
      CERTPLANE_IP_RATE_LIMIT: '0',
      ...(await databaseEnv(dir)),
    });
    const real = await openStore(config);
    let calls = 0;
    // The real store, counting the transactions it is asked for.
    const store: Store = {
      dialect: real.dialect,
      read: (fn) => (calls++, real.read(fn)),
      write: (fn) => (calls++, real.write(fn)),
      versions: (zoneId) => (calls++, real.versions(zoneId)),
      close: () => real.close(),
      onConfigChange: (listener) => real.onConfigChange(listener),
    };
    const cp = await createCertplane(config, { clock: new ManualClock(), store });
    try {
      const base = `${await cp.app.listen({ host: '127.0.0.1', port: 0 })}/client/v4`;
      const { token, zoneId } = cp.bootstrap!;
      const call = (method: string, path: string, headers: Record<string, string>, body?: string) =>
        fetch(`${base}${path}`, { method, headers, body });
      const auth = { authorization: `Bearer ${token}` };
      for (let i = 0; i < 2; i++) assert.equal((await call('GET', settingsPath({ zoneId }), auth)).status, 200);
      assert.ok(calls > 0, 'an answered request reads the database');
      const before = calls;
      const refused = [
        await call('GET', settingsPath({ zoneId }), auth),
        await call('PUT', settingsPath({ zoneId }), { ...auth, 'content-type': 'application/json' }, '{"enabled":true}'),
        await call('DELETE', `/zones/${zoneId}/origin_tls_client_auth/${'0'.repeat(32)}`, auth),
      ];
      for (const res of refused) {
        assert.equal(res.status, 429);
        assert.deepEqual(await res.json(), RATE_LIMITED);
      }
      assert.equal(calls, before, 'refused requests asked the store for nothing');
    } finally {
      await cp.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('rate limiter internals (src/api/ratelimit.ts)', () => {
  test('memory is bounded: expired keys are dropped when room is needed, then the oldest', () => {
    const c = new WindowCounter(2, 1, 3);
    for (const k of ['a', 'b', 'c']) assert.equal(c.take(k, 0), true);
    assert.equal(c.take('d', 10), true);
    assert.equal(c.size, 3);
    assert.equal(c.has('a'), false, 'full and nothing expired: the oldest key goes');
    assert.equal(c.take('b', 500), true);
    assert.equal(c.take('b', 600), false, 'b is over its limit and blocked');
    // After a window, the expired keys are swept (c, d); the blocked one (b, blocked until 1600) stays.
    assert.equal(c.take('e', 1100), true);
    assert.deepEqual([c.has('b'), c.has('c'), c.has('d'), c.has('e')], [true, false, false, true]);
    assert.equal(c.size, 2);
    assert.equal(c.take('b', 1599), false);
    assert.equal(c.retryAfterMs, 1);
    assert.equal(c.take('b', 1600), true);
    assert.equal(c.remaining, 1);
  });

  test('a provisional count moves from the IP to the credential; a credential that fails is counted by IP again', () => {
    const l = new RateLimiter({ perCredential: { limit: 3, windowSeconds: 60 }, perIp: { limit: 0, windowSeconds: 1 } });
    const first = l.admit('tok', '192.0.2.1', 0);
    assert.deepEqual([first.allowed, first.provisional, first.remaining], [true, true, 2]);
    const confirmed = l.confirm(first, 0);
    assert.deepEqual([confirmed.allowed, confirmed.provisional, confirmed.remaining, l.verified('tok')], [true, false, 2, true]);
    assert.equal(l.admit(null, '192.0.2.1', 0).remaining, 2, 'the IP got its request back');
    const second = l.admit('tok', '192.0.2.1', 0);
    assert.deepEqual([second.provisional, second.remaining], [false, 1]);
    l.forget(second);
    assert.equal(l.verified('tok'), false);
    // The IP's bucket now holds the request without credentials and these two; the next is over the limit.
    const again = [l.admit('tok', '192.0.2.1', 0), l.admit('tok', '192.0.2.1', 0), l.admit('tok', '192.0.2.1', 0)];
    assert.deepEqual(again.map((d) => [d.provisional, d.allowed, d.remaining]), [[true, true, 1], [true, true, 0], [true, false, 0]]);
  });

  test('the same credential used from two IPs at once, before it is known: the count over its limit is refused on confirmation', () => {
    const l = new RateLimiter({ perCredential: { limit: 2, windowSeconds: 60 }, perIp: { limit: 0, windowSeconds: 1 } });
    const inFlight = [l.admit('tok', '192.0.2.1', 0), l.admit('tok', '192.0.2.1', 0), l.admit('tok', '192.0.2.2', 0)];
    assert.ok(inFlight.every((d) => d.allowed && d.provisional));
    const confirmed = inFlight.map((d) => l.confirm(d, 0));
    assert.deepEqual(confirmed.map((d) => [d.allowed, d.remaining, d.retryAfterSeconds]), [[true, 1, 0], [true, 0, 0], [false, 0, 60]]);
  });

  test('credential and client keys', () => {
    for (const h of ['Bearer abc', 'bearer abc', '  BEARER abc  ', 'bEaReR abc']) assert.equal(credentialKey({ authorization: h }), 'abc');
    for (const h of ['Basic abc', 'Bearer\tabc', 'Bearerxabc', 'Bearer ']) assert.equal(credentialKey({ authorization: h }), null, h);
    assert.equal(credentialKey({ authorization: 'Bearer' }), null);
    assert.equal(credentialKey({ 'x-auth-email': ' A@Example.com ', 'x-auth-key': 'k ' }), 'a@example.com\nk');
    assert.equal(credentialKey({ 'x-auth-email': 'a@example.com' }), null);
    assert.equal(credentialKey({}), null);
    assert.equal(clientKey('192.0.2.1'), '192.0.2.1');
    assert.equal(clientKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(clientKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:DB8:0001:0002::9'), '2001:db8:1:2::/64');
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(clientKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
    assert.equal(clientKey('zz::1'), 'zz::1', 'not an address: counted as given');
  });
});

// ---- connections: raw sockets, to see exactly what the server sends and when it closes ----

interface RawResult {
  data: string;
  /** ms from connecting to the server closing the connection. */
  closedAfterMs: number;
  /** Date.now() when the connection closed. */
  closedAt: number;
}

/** Connects, runs `start` once connected, and resolves when the connection is closed, with everything received. */
function raw(port: number, start: (socket: Socket) => void): { socket: Socket; done: Promise<RawResult> } {
  const socket = connect(port, '127.0.0.1');
  let data = '';
  let t0 = 0;
  const done = new Promise<RawResult>((resolve) => {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', () => undefined); // a reset is a close like any other here
    socket.on('close', () => resolve({ data, closedAfterMs: Date.now() - t0, closedAt: Date.now() }));
  });
  socket.on('connect', () => {
    t0 = Date.now();
    start(socket);
  });
  return { socket, done };
}

/** Writes `text` one byte every `ms` until the socket closes. */
function trickle(socket: Socket, text: string, ms: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]);
  }, ms);
  socket.on('close', () => clearInterval(timer));
}

function parseRaw(text: string): { status: number; headers: Record<string, string>; body: unknown } {
  const end = text.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no complete response head in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
  const body = text.slice(end + 4);
  assert.equal(Buffer.byteLength(body, 'latin1'), Number(headers['content-length']), 'one whole response, nothing after it');
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body) };
}

const portOf = (s: TestServer) => Number(new URL(s.baseUrl).port);

describe('connections: body limit, slow clients, connection cap', () => {
  test('a body over CERTPLANE_BODY_LIMIT gets the 413 envelope and the connection is closed without reading the rest', async () => {
    await withServer({ CERTPLANE_BODY_LIMIT: '1000' }, async (s) => {
      const head = (framing: string) =>
        `PUT /client/v4${settingsPath(s)} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${s.token}\r\n` +
        `content-type: application/json\r\n${framing}\r\n\r\n`;
      const sent = { declared: 0, chunked: 0 };
      // A declared 100 MB body, and a chunked one without an end: the client would go on sending for ever.
      const declared = raw(portOf(s), (socket) => {
        socket.write(head('content-length: 100000000'));
        const timer = setInterval(() => (socket.writable ? (socket.write('x'.repeat(4096)), (sent.declared += 4096)) : clearInterval(timer)), 5);
        socket.on('close', () => clearInterval(timer));
      });
      const chunked = raw(portOf(s), (socket) => {
        socket.write(head('transfer-encoding: chunked'));
        const timer = setInterval(() => (socket.writable ? (socket.write(`1000\r\n${'x'.repeat(4096)}\r\n`), (sent.chunked += 4096)) : clearInterval(timer)), 5);
        socket.on('close', () => clearInterval(timer));
      });
      for (const r of [await declared.done, await chunked.done]) {
        const res = parseRaw(r.data);
        assert.equal(res.status, 413);
        assert.deepEqual(res.body, TOO_LARGE);
        assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
        assert.equal(res.headers.connection, 'close');
      }
      assert.ok(sent.declared < 100_000_000 && sent.chunked < 100_000_000);
      assert.deepEqual(assertOk(await s.request('GET', settingsPath(s))), { enabled: false }, 'nothing was written, the server serves on');
    });
  });

  test('slow clients are cut off by the header, request and keep-alive timeouts while other clients are served', async () => {
    const T = { headers: 500, request: 1000, keepAlive: 500 };
    await withServer(
      {
        CERTPLANE_HEADERS_TIMEOUT_MS: String(T.headers),
        CERTPLANE_REQUEST_TIMEOUT_MS: String(T.request),
        CERTPLANE_KEEP_ALIVE_TIMEOUT_MS: String(T.keepAlive),
        CERTPLANE_IDLE_TIMEOUT_MS: '5000',
      },
      async (s) => {
        const port = portOf(s);
        const request = `GET /client/v4/user/tokens/verify HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${s.token}\r\n\r\n`;
        // Slow loris: headers one byte at a time, never finished.
        const slowHeaders = Array.from({ length: 40 }, () => raw(port, (socket) => trickle(socket, request.slice(0, -2) + 'x-pad: ' + 'a'.repeat(1000), 50)));
        // Headers sent, the body never finished.
        const slowBodies = Array.from({ length: 20 }, () =>
          raw(port, (socket) => {
            socket.write(`PUT /client/v4${settingsPath(s)} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${s.token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n`);
            trickle(socket, ' '.repeat(100), 50);
          }),
        );
        // Connected, nothing sent.
        const silent = Array.from({ length: 20 }, () => raw(port, () => undefined));
        // One complete request, then an idle keep-alive connection.
        const answeredAt: number[] = [];
        const idle = Array.from({ length: 10 }, (_, i) =>
          raw(port, (socket) => {
            socket.write(request);
            socket.once('data', () => (answeredAt[i] = Date.now()));
          }),
        );

        // Meanwhile, other clients are served.
        for (let i = 0; i < 20; i++) assertOk(await s.request('GET', settingsPath(s)));

        for (const r of await Promise.all([...slowHeaders, ...silent].map((c) => c.done))) {
          const res = parseRaw(r.data);
          assert.equal(res.status, 408);
          assert.deepEqual(res.body, TIMED_OUT);
          assert.equal(res.headers.connection, 'close');
          assert.ok(r.closedAfterMs < 10 * T.headers, `closed after ${r.closedAfterMs} ms`);
        }
        for (const r of await Promise.all(slowBodies.map((c) => c.done))) {
          const res = parseRaw(r.data);
          assert.equal(res.status, 408);
          assert.deepEqual(res.body, TIMED_OUT);
          assert.ok(r.closedAfterMs < 10 * T.request, `closed after ${r.closedAfterMs} ms`);
        }
        const idleDone = await Promise.all(idle.map((c) => c.done));
        for (const [i, r] of idleDone.entries()) {
          assert.equal(parseRaw(r.data).status, 200);
          const idleFor = r.closedAt - answeredAt[i];
          assert.ok(idleFor < 10 * T.keepAlive, `closed ${idleFor} ms after going idle`);
        }
        assert.deepEqual(assertOk(await s.request('GET', settingsPath(s))), { enabled: false }, 'no slow body was applied');
      },
    );
  });

  test('CERTPLANE_MAX_CONNECTIONS: connections beyond the cap are closed at once; slots free up as timeouts close idle ones', async () => {
    await withServer({ CERTPLANE_MAX_CONNECTIONS: '3', CERTPLANE_HEADERS_TIMEOUT_MS: '500', CERTPLANE_REQUEST_TIMEOUT_MS: '500' }, async (s) => {
      const port = portOf(s);
      const held = Array.from({ length: 3 }, () => raw(port, () => undefined));
      await Promise.all(held.map((h) => new Promise((r) => h.socket.once('connect', r))));
      const over = await raw(port, (socket) => socket.write('GET /client/v4/user/tokens/verify HTTP/1.1\r\nhost: x\r\n\r\n')).done;
      assert.equal(over.data, '', 'refused without an answer');
      for (const h of await Promise.all(held.map((c) => c.done))) assert.equal(parseRaw(h.data).status, 408);
      // The server learns of each close a moment after the client does: poll (bounded) until a slot is free.
      const status = () => fetch(`${s.baseUrl}/user/tokens/verify`, { headers: { authorization: `Bearer ${s.token}` } }).then((r) => r.status, () => 0);
      assert.equal(await pollUntil('a connection is accepted again', status, (st) => st !== 0), 200);
    });
  });

  test('requests the HTTP parser rejects keep the envelope: oversized headers 431, bad framing 400', async () => {
    await withServer({}, async (s) => {
      const big = await raw(portOf(s), (socket) => socket.write(`GET /client/v4/user/tokens/verify HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`)).done;
      const bigRes = parseRaw(big.data);
      assert.equal(bigRes.status, 431);
      assert.deepEqual(bigRes.body, { success: false, errors: [{ code: 6031, message: 'Request header fields too large' }], messages: [], result: null });
      const bad = await raw(portOf(s), (socket) => socket.write('GET / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n')).done;
      const badRes = parseRaw(bad.data);
      assert.equal(badRes.status, 400);
      assert.deepEqual(badRes.body, { success: false, errors: [{ code: 6000, message: 'Bad request' }], messages: [], result: null });
    });
  });
});

describe('configuration of the abuse limits', () => {
  test('bad values are refused at start with a message naming the setting', async () => {
    const bad: [Record<string, string>, string][] = [
      [{ CERTPLANE_RATE_LIMIT: 'lots' }, 'CERTPLANE_RATE_LIMIT must be a non-negative whole number (got "lots")'],
      [{ CERTPLANE_IP_RATE_LIMIT: '-1' }, 'CERTPLANE_IP_RATE_LIMIT must be a non-negative whole number (got "-1")'],
      [{ CERTPLANE_RATE_LIMIT_WINDOW_SECONDS: '0' }, 'CERTPLANE_RATE_LIMIT_WINDOW_SECONDS must be at least 1 (got "0")'],
      [{ CERTPLANE_KEEP_ALIVE_TIMEOUT_MS: '0' }, 'CERTPLANE_KEEP_ALIVE_TIMEOUT_MS must be at least 1 (got "0")'],
      [
        { CERTPLANE_HEADERS_TIMEOUT_MS: '20000', CERTPLANE_REQUEST_TIMEOUT_MS: '10000' },
        'CERTPLANE_HEADERS_TIMEOUT_MS (20000) must not exceed CERTPLANE_REQUEST_TIMEOUT_MS (10000)',
      ],
      [
        { CERTPLANE_TRUST_PROXY: '10.0.0.0/8, everyone' },
        'CERTPLANE_TRUST_PROXY must be comma-separated proxy addresses or CIDRs, or loopback, linklocal, uniquelocal (got "everyone")',
      ],
      [
        { CERTPLANE_TRUST_PROXY: '10.0.0.0/33' },
        'CERTPLANE_TRUST_PROXY must be comma-separated proxy addresses or CIDRs, or loopback, linklocal, uniquelocal (got "10.0.0.0/33")',
      ],
    ];
    for (const [env, message] of bad) assert.throws(() => loadConfig(env), { message });
    // An off limit needs no window.
    assert.equal(loadConfig({ CERTPLANE_RATE_LIMIT: '0', CERTPLANE_RATE_LIMIT_WINDOW_SECONDS: '0' }).abuse.rateLimit.perCredential.limit, 0);
    assert.equal(loadConfig({ CERTPLANE_TRUST_PROXY: ' 10.0.0.0/8 , ::1, uniquelocal ' }).abuse.trustProxy, '10.0.0.0/8,::1,uniquelocal');

    const r = await runUntilExit({ env: { CERTPLANE_RATE_LIMIT: '10', CERTPLANE_RATE_LIMIT_WINDOW_SECONDS: '0' } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'certplane: CERTPLANE_RATE_LIMIT_WINDOW_SECONDS must be at least 1 (got "0")\n');
  });
});

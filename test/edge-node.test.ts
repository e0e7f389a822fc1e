/**
 * The in-process Node data plane: the shared conformance suite, plus unit tests of its ClientHello reader and the
 * behaviour specific to this implementation (timeouts, stop()).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createNodeDataPlane, parseClientHelloSni, type ClientHelloResult } from '../src/edge/node/index.js';
import type { DataPlane, HostnameConfig } from '../src/edge/contract.js';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import { makeServerCert } from './edge/certs.js';
import { dataPlaneConformance } from './edge/conformance.js';
import { closedWithin, edgeRequest, keepAliveAgent, startEchoOrigin, tlsConnect, type EchoOrigin } from './edge/support.js';

dataPlaneConformance('node', () => Promise.resolve(createNodeDataPlane()), { expectResumption: true, isolatesSessions: true });

// --- ClientHello reader -------------------------------------------------------------------------------------------

/** The first TLS record a real Node client sends (its ClientHello), captured by a TCP server. */
async function captureClientHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  let resolveHello!: (b: Buffer) => void;
  const hello = new Promise<Buffer>((r) => (resolveHello = r));
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
        resolveHello(buf.subarray(0, 5 + buf.readUInt16BE(3)));
        s.destroy();
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, rejectUnauthorized: false, ...opts });
  client.on('error', () => undefined);
  try {
    return await hello;
  } finally {
    client.destroy();
    server.close();
  }
}

/** Splits the handshake payload of a one-record ClientHello into records of at most `size` bytes. */
function reframe(record: Buffer, size: number): Buffer {
  const payload = record.subarray(5);
  const out: Buffer[] = [];
  for (let off = 0; off < payload.length; off += size) {
    const part = payload.subarray(off, off + size);
    const h = Buffer.from([0x16, record[1], record[2], 0, 0]);
    h.writeUInt16BE(part.length, 3);
    out.push(h, part);
  }
  return Buffer.concat(out);
}

const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const ext = (type: number, body: Buffer): Buffer => Buffer.concat([u16(type), u16(body.length), body]);
const sniExt = (...entries: [number, Buffer][]): Buffer => {
  const list = Buffer.concat(entries.map(([t, n]) => Buffer.concat([Buffer.from([t]), u16(n.length), n])));
  return ext(0, Buffer.concat([u16(list.length), list]));
};

/** A hand-built ClientHello record: `extensions` undefined = no extensions block at all. */
function buildHello(extensions?: Buffer[], opts: { sessionId?: number; handshakeType?: number } = {}): Buffer {
  const parts = [Buffer.from([3, 3]), Buffer.alloc(32, 1), Buffer.from([opts.sessionId ?? 0]), Buffer.alloc(opts.sessionId ?? 0, 2), u16(2), u16(0x1301), Buffer.from([1, 0])];
  if (extensions) {
    const block = Buffer.concat(extensions);
    parts.push(u16(block.length), block);
  }
  const body = Buffer.concat(parts);
  const hs = Buffer.concat([Buffer.from([opts.handshakeType ?? 1, (body.length >> 16) & 0xff, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs]);
}

const ok = (serverName: string | null): ClientHelloResult => ({ kind: 'ok', serverName });

describe('ClientHello SNI reader', () => {
  let hello13: Buffer;
  let hello12: Buffer;
  let helloNoSni: Buffer;
  let helloLong: Buffer;
  const longName = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.example.test`;

  before(async () => {
    [hello13, hello12, helloNoSni, helloLong] = await Promise.all([
      captureClientHello({ servername: 'Shop.Example.TEST' }),
      captureClientHello({ servername: 'legacy.example.test', maxVersion: 'TLSv1.2' }),
      captureClientHello({}), // connecting to an IP address: Node sends no server_name
      captureClientHello({ servername: longName }),
    ]);
  });

  it('reads the SNI of real ClientHellos (TLS 1.3 and 1.2), lowercased', () => {
    assert.deepEqual(parseClientHelloSni(hello13), ok('shop.example.test'));
    assert.deepEqual(parseClientHelloSni(hello12), ok('legacy.example.test'));
    assert.deepEqual(parseClientHelloSni(helloLong), ok(longName));
  });

  it('reports a real ClientHello without SNI as ok with serverName null', () => {
    assert.deepEqual(parseClientHelloSni(helloNoSni), ok(null));
  });

  it('asks for more on every strict prefix (a ClientHello cut at any TCP segment boundary)', () => {
    for (const h of [hello13, hello12]) {
      for (let i = 0; i < h.length; i++) {
        assert.deepEqual(parseClientHelloSni(h.subarray(0, i)), { kind: 'need-more' }, `prefix of ${i} bytes`);
      }
    }
  });

  it('ignores bytes after the ClientHello', () => {
    assert.deepEqual(parseClientHelloSni(Buffer.concat([hello13, randomBytes(100)])), ok('shop.example.test'));
  });

  it('reassembles a ClientHello fragmented across TLS records, at every prefix too', () => {
    for (const size of [1, 3, 50, 200]) {
      const framed = reframe(hello13, size);
      assert.deepEqual(parseClientHelloSni(framed), ok('shop.example.test'), `records of ${size}`);
      for (let i = 0; i < framed.length; i += Math.max(1, Math.floor(framed.length / 97))) {
        assert.deepEqual(parseClientHelloSni(framed.subarray(0, i)).kind, 'need-more', `records of ${size}, prefix ${i}`);
      }
    }
  });

  it('refuses oversized and malformed records', () => {
    const huge = Buffer.from([0x16, 3, 1, 0x40, 0x01]); // record longer than 2^14
    assert.equal(parseClientHelloSni(huge).kind, 'error');
    const bigHello = Buffer.from([0x16, 3, 1, 0x00, 0x04, 1, 0x01, 0x00, 0x00]); // handshake claims 64 KiB
    assert.match((parseClientHelloSni(bigHello) as { reason: string }).reason, /too large/);
    assert.equal(parseClientHelloSni(Buffer.from([0x16, 3, 1, 0x00, 0x04, 1, 0x00, 0x00, 0x10]), 8).kind, 'error', 'custom limit');
    assert.equal(parseClientHelloSni(Buffer.from([0x16, 3, 1, 0, 0])).kind, 'error', 'empty record');
    assert.equal(parseClientHelloSni(Buffer.from([0x16, 2, 0])).kind, 'error', 'bad version major');
    assert.equal(parseClientHelloSni(buildHello([], { handshakeType: 2 })).kind, 'error', 'ServerHello');
    // A fragmented hello interrupted by another record type.
    const framed = reframe(hello13, 100);
    const cut = Buffer.concat([framed.subarray(0, 105), Buffer.from([0x17, 3, 3, 0, 1, 0])]);
    assert.equal(parseClientHelloSni(cut).kind, 'error');
    // Record length shorter than the handshake it starts, with nothing following yet: still need more.
    assert.equal(parseClientHelloSni(framed.subarray(0, 105)).kind, 'need-more');
  });

  it('rejects garbage immediately', () => {
    for (const g of [Buffer.from('GET / HTTP/1.1\r\n'), Buffer.from([0x80, 0x2e, 0x01]), Buffer.from('S'), Buffer.from([0x15, 3, 3, 0, 2, 2, 40])]) {
      assert.equal(parseClientHelloSni(g).kind, 'error', g.toString('hex'));
    }
    assert.deepEqual(parseClientHelloSni(Buffer.alloc(0)), { kind: 'need-more' });
  });

  it('handles hand-built edge cases', () => {
    assert.deepEqual(parseClientHelloSni(buildHello()), ok(null), 'no extensions block');
    assert.deepEqual(parseClientHelloSni(buildHello([])), ok(null), 'empty extensions block');
    assert.deepEqual(parseClientHelloSni(buildHello([ext(10, Buffer.from([0, 2, 0, 29])), sniExt([0, Buffer.from('x.test.')])], { sessionId: 32 })), ok('x.test'));
    assert.deepEqual(parseClientHelloSni(buildHello([sniExt([7, Buffer.from('other')], [0, Buffer.from('y.test')])])), ok('y.test'), 'unknown name type skipped');
    assert.deepEqual(parseClientHelloSni(buildHello([sniExt([7, Buffer.from('other')])])), ok(null), 'no host_name entry');
    const bad = (exts: Buffer[], why: string): void => assert.equal(parseClientHelloSni(buildHello(exts)).kind, 'error', why);
    bad([sniExt([0, Buffer.from('bad name')])], 'space in the name');
    bad([sniExt([0, Buffer.from('bad\0name')])], 'NUL in the name');
    bad([sniExt([0, Buffer.alloc(0)])], 'empty name');
    bad([sniExt([0, Buffer.from('.')])], 'only a dot');
    bad([sniExt([0, Buffer.alloc(256, 0x61)])], 'longer than 255');
    bad([sniExt([0, Buffer.from('a.test')], [0, Buffer.from('b.test')])], 'two host_names');
    bad([sniExt([0, Buffer.from('a.test')]), sniExt([0, Buffer.from('b.test')])], 'two server_name extensions');
    bad([ext(0, Buffer.from([0, 10, 0, 0, 3, 0x61]))], 'list length overruns the extension');
    bad([ext(0, Buffer.from([0, 4, 0, 0, 9, 0x61]))], 'name length overruns the list');
    bad([Buffer.from([0, 0, 0, 50, 0, 1])], 'extension overruns the block');
    // Extensions length overrunning the message, and trailing bytes after the block.
    const h = buildHello([sniExt([0, Buffer.from('a.test')])]);
    const overrun = Buffer.from(h);
    const extLenPos = 5 + 4 + 2 + 32 + 1 + 2 + 2 + 2;
    overrun.writeUInt16BE(overrun.readUInt16BE(extLenPos) + 1, extLenPos);
    assert.equal(parseClientHelloSni(overrun).kind, 'error');
    const shorter = Buffer.from(h);
    shorter.writeUInt16BE(shorter.readUInt16BE(extLenPos) - 1, extLenPos);
    assert.equal(parseClientHelloSni(shorter).kind, 'error');
  });

  it('never throws on random bytes or mutated real ClientHellos', () => {
    const kinds = new Set(['ok', 'need-more', 'error']);
    for (let i = 0; i < 3000; i++) {
      const b = randomBytes(Math.floor(Math.random() * 600));
      if (i % 2 === 0 && b.length > 5) {
        b[0] = 0x16;
        b[1] = 3;
      }
      const r = parseClientHelloSni(b);
      assert.ok(kinds.has(r.kind));
    }
    for (let i = 0; i < 5000; i++) {
      const m = Buffer.from(i % 2 ? hello13 : reframe(hello12, 64));
      const flips = 1 + Math.floor(Math.random() * 4);
      for (let f = 0; f < flips; f++) m[Math.floor(Math.random() * m.length)] = Math.floor(Math.random() * 256);
      const r = parseClientHelloSni(m.subarray(0, Math.floor(Math.random() * (m.length + 1))));
      assert.ok(kinds.has(r.kind));
      if (r.kind === 'ok' && r.serverName !== null) assert.match(r.serverName, /^[\x21-\x7e]+$/);
    }
  });
});

// --- Node-specific behaviour --------------------------------------------------------------------------------------

describe('node data plane specifics', () => {
  let edgeCA: Issued;
  let accessCA: Issued;
  let visitor: Issued;
  let origin: EchoOrigin;
  let config: (hostname: string, cas?: boolean) => Promise<HostnameConfig>;
  const planes: DataPlane[] = [];

  before(async () => {
    [edgeCA, accessCA] = await Promise.all([makeCA(), makeCA()]);
    visitor = await makeLeaf({ issuer: accessCA });
    origin = await startEchoOrigin({ name: 'plain' });
    config = async (hostname, cas = false) => {
      const sc = await makeServerCert(edgeCA, [hostname]);
      return {
        hostname,
        serverCertificate: { certPem: sc.certPem, keyPem: sc.keyPem },
        origin: { address: '127.0.0.1', port: origin.port, tls: false },
        accessCAs: cas ? [{ id: 'ca', pem: accessCA.certPem }] : [],
        forwardClientCertificate: false,
        originClientCertificate: null,
      };
    };
  });
  after(async () => {
    await Promise.all(planes.map((p) => p.stop()));
    await origin?.close();
  });

  const startPlane = async (opts: Parameters<typeof createNodeDataPlane>[0] = {}): Promise<{ plane: DataPlane; port: number }> => {
    const plane = createNodeDataPlane(opts);
    planes.push(plane);
    const { port } = await plane.start({ host: '127.0.0.1', port: 0 });
    return { plane, port };
  };
  const connectRaw = (port: number): Promise<net.Socket> =>
    new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', () => undefined);
    });

  it('closes connections that deliver no complete ClientHello in time', async () => {
    const { plane, port } = await startPlane({ clientHelloTimeoutMs: 200 });
    await plane.apply({ version: 1, hostnames: [await config('slow.test')] });
    const silent = await connectRaw(port);
    const partial = await connectRaw(port);
    partial.write(Buffer.from([0x16, 3, 1, 1, 0, 1]));
    const t0 = Date.now();
    assert.equal(await closedWithin(silent, 5000), true);
    assert.equal(await closedWithin(partial, 5000), true);
    assert.ok(Date.now() - t0 < 4000);
    assert.equal((await edgeRequest(port, { servername: 'slow.test' })).status, 200);
  });

  it('closes visitors that do not finish their request headers in time (slow loris)', async () => {
    const { plane, port } = await startPlane({ headersTimeoutMs: 300 });
    await plane.apply({ version: 1, hostnames: [await config('loris.test')] });
    const s = await tlsConnect(port, { servername: 'loris.test' });
    s.write('GET / HTTP/1.1\r\nHost: loris.test\r\nX-Slow: 1');
    s.resume(); // read the 408 and the end of the connection
    const t0 = Date.now();
    assert.equal(await closedWithin(s, 5000), true);
    assert.ok(Date.now() - t0 < 4000);
    assert.equal((await edgeRequest(port, { servername: 'loris.test' })).status, 200);
  });

  it('answers an unknown SNI with an unrecognized_name alert; version is 0 before any apply', async () => {
    const { plane, port } = await startPlane();
    assert.equal(plane.version, 0);
    await assert.rejects(tlsConnect(port, { servername: 'nobody.test' }), /unrecognized.name/i);
    const res = await plane.applyDelta({ version: 3, upsert: [await config('late.test')], remove: [] });
    assert.deepEqual(res, { version: 3, failed: [] });
    assert.equal((await edgeRequest(port, { servername: 'late.test' })).status, 200);
    await assert.rejects(plane.start({ host: '127.0.0.1', port: 0 }), /already started/);
  });

  it('serves a wildcard hostname for its subdomains (an exact hostname wins)', async () => {
    const { plane, port } = await startPlane();
    const wild = await config('*.wild.test');
    const exact = await config('exact.wild.test');
    const res = await plane.apply({ version: 1, hostnames: [wild, { ...exact, accessCAs: [{ id: 'ca', pem: accessCA.certPem }] }] });
    assert.deepEqual(res.failed, []);
    const r = await edgeRequest(port, { servername: 'Any.Wild.Test', ca: edgeCA.certPem });
    assert.equal(r.status, 200);
    assert.equal(r.json().host, 'Any.Wild.Test');
    assert.equal((await edgeRequest(port, { servername: 'exact.wild.test' })).status, 403, 'the exact hostname has its own CAs');
    await assert.rejects(tlsConnect(port, { servername: 'deep.any.wild.test' }), 'a wildcard covers one label only');
  });

  it('reports invalid and duplicate hostnames without stopping the others', async () => {
    const { plane, port } = await startPlane();
    const good = await config('good.test');
    const res = await plane.apply({ version: 1, hostnames: [good, { ...good }, { ...good, hostname: 'bad host' }] });
    assert.equal(res.failed.length, 2);
    assert.deepEqual(res.failed.map((f) => f.hostname).sort(), ['bad host', 'good.test']);
    assert.equal((await edgeRequest(port, { servername: 'good.test' })).status, 200);
  });

  it('stop() closes listeners, open keep-alive connections and pending handshakes', async () => {
    const { plane, port } = await startPlane();
    await plane.apply({ version: 1, hostnames: [await config('stop.test'), await config('stop-m.test', true)] });
    const agent = keepAliveAgent();
    const mAgent = keepAliveAgent({ cert: visitor.certPem, key: visitor.keyPem });
    try {
      const r = await edgeRequest(port, { servername: 'stop.test', agent });
      const m = await edgeRequest(port, { servername: 'stop-m.test', agent: mAgent });
      assert.equal(m.status, 200);
      const silent = await connectRaw(port);
      await plane.stop();
      assert.equal(await closedWithin(r.socket, 3000), true);
      assert.equal(await closedWithin(m.socket, 3000), true);
      assert.equal(await closedWithin(silent, 3000), true);
      const refused = await new Promise<string>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve('connected');
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      assert.equal(refused, 'ECONNREFUSED', 'the listener is closed');
      await assert.rejects(plane.apply({ version: 2, hostnames: [] }), /stopped/);
    } finally {
      agent.destroy();
      mAgent.destroy();
    }
  });
});

/**
 * Real servers and clients for the data-plane conformance suite: echo origins (HTTP or HTTPS, optionally requiring a
 * client certificate) and visitor clients over real TLS.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';

export const sha256hex = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

// --- echo origins -------------------------------------------------------------------------------------------------

export interface Echo {
  origin: string;
  /** SHA-256 (hex) of the client certificate the origin received on this connection; null = none. */
  clientCertSha256: string | null;
  host: string | undefined;
  /** Every cf-client-cert-* header received (lowercase names). */
  cfHeaders: Record<string, string | string[]>;
  socketId: number;
  method: string;
  url: string;
  xForwardedFor: string | undefined;
  xForwardedProto: string | undefined;
  bodyLength: number;
  bodySha256: string;
}

export interface EchoOrigin {
  name: string;
  port: number;
  /** Socket ids per presented identity (certificate SHA-256 or 'none'). */
  socketsByIdentity: Map<string, Set<number>>;
  close(): Promise<void>;
}

export interface EchoOriginOptions {
  name: string;
  tls?: { certPem: string; keyPem: string; caPems?: string[]; requestCert: boolean; rejectUnauthorized: boolean };
}

/**
 * An origin that answers every request with an `Echo` (JSON). `/__reset` destroys the connection instead of
 * answering; `/__status/NNN` answers with that status.
 */
export async function startEchoOrigin(opts: EchoOriginOptions): Promise<EchoOrigin> {
  const socketsByIdentity = new Map<string, Set<number>>();
  const ids = new WeakMap<net.Socket, { id: number; identity: string }>();
  let nextId = 0;
  const sockets = new Set<net.Socket>();
  const register = (socket: net.Socket, identity: string): void => {
    const id = ++nextId;
    ids.set(socket, { id, identity });
    let set = socketsByIdentity.get(identity);
    if (!set) socketsByIdentity.set(identity, (set = new Set()));
    set.add(id);
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === '/__reset') {
      req.socket.destroy();
      return;
    }
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    req.on('end', () => {
      const info = ids.get(req.socket);
      let clientCertSha256: string | null = null;
      if (opts.tls) {
        const peer = (req.socket as tls.TLSSocket).getPeerCertificate();
        if (peer && peer.raw) clientCertSha256 = sha256hex(peer.raw);
      }
      const cfHeaders: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('cf-client-cert') && v !== undefined) cfHeaders[k] = v;
      const echo: Echo = {
        origin: opts.name,
        clientCertSha256,
        host: req.headers.host,
        cfHeaders,
        socketId: info?.id ?? -1,
        method: req.method ?? '',
        url: req.url ?? '',
        xForwardedFor: req.headers['x-forwarded-for'] as string | undefined,
        xForwardedProto: req.headers['x-forwarded-proto'] as string | undefined,
        bodyLength: length,
        bodySha256: hash.digest('hex'),
      };
      const m = /^\/__status\/(\d{3})$/.exec(req.url ?? '');
      const body = JSON.stringify(echo);
      res.writeHead(m ? Number(m[1]) : 200, { 'content-type': 'application/json', 'x-echo-origin': opts.name });
      res.end(body);
    });
  };
  let server: http.Server | https.Server;
  if (opts.tls) {
    const t = opts.tls;
    server = https.createServer(
      { cert: t.certPem, key: t.keyPem, ca: t.caPems, requestCert: t.requestCert, rejectUnauthorized: t.rejectUnauthorized },
      handler,
    );
    server.on('secureConnection', (s: tls.TLSSocket) => {
      const peer = s.getPeerCertificate();
      register(s, peer && peer.raw ? sha256hex(peer.raw) : 'none');
    });
  } else {
    server = http.createServer(handler);
    server.on('connection', (s: net.Socket) => register(s, 'none'));
  }
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    name: opts.name,
    port,
    socketsByIdentity,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

// --- visitors -----------------------------------------------------------------------------------------------------

export interface EdgeResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  reusedSocket: boolean;
  socket: tls.TLSSocket;
  json<T = Echo>(): T;
}

export interface VisitorRequest {
  servername: string;
  /** Host header (default: servername). */
  host?: string;
  path?: string;
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer | string;
  cert?: string;
  key?: string;
  /** Verify the edge's certificate against this CA. */
  ca?: string;
  agent?: https.Agent;
  timeoutMs?: number;
}

/** One HTTPS request to the edge on 127.0.0.1:port with the given SNI (a new connection unless `agent` is given). */
export function edgeRequest(port: number, r: VisitorRequest): Promise<EdgeResponse> {
  return withTimeout(
    new Promise<EdgeResponse>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          servername: r.servername,
          path: r.path ?? '/',
          method: r.method ?? 'GET',
          headers: { host: r.host ?? r.servername, ...(r.headers ?? {}) },
          agent: r.agent ?? false,
          cert: r.agent ? undefined : r.cert,
          key: r.agent ? undefined : r.key,
          ca: r.agent ? undefined : r.ca,
          rejectUnauthorized: r.agent ? undefined : !!r.ca,
        },
        (res) => {
          const socket = res.socket as tls.TLSSocket; // detached from `res` once a keep-alive agent takes it back
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body,
              reusedSocket: req.reusedSocket,
              socket,
              json: <T>() => JSON.parse(body) as T,
            });
          });
        },
      );
      req.on('error', reject);
      req.end(r.body);
    }),
    r.timeoutMs ?? 10_000,
    `request to ${r.servername}${r.path ?? '/'}`,
  );
}

/** A keep-alive agent holding at most one connection (so consecutive requests share it). */
export function keepAliveAgent(opts: { cert?: string; key?: string; ca?: string } = {}): https.Agent {
  return new https.Agent({
    keepAlive: true,
    maxSockets: 1,
    cert: opts.cert,
    key: opts.key,
    ca: opts.ca,
    rejectUnauthorized: !!opts.ca,
    maxCachedSessions: 0,
  });
}

/** A TLS connection to the edge; resolves once the handshake is done, rejects if it fails. */
export function tlsConnect(port: number, opts: tls.ConnectionOptions, timeoutMs = 10_000): Promise<tls.TLSSocket> {
  return withTimeout(
    new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
      s.once('secureConnect', () => {
        s.off('error', reject);
        s.on('error', () => undefined);
        resolve(s);
      });
      s.once('error', reject);
      s.once('close', () => reject(new Error('connection closed during the handshake')));
    }),
    timeoutMs,
    `TLS handshake with ${String(opts.servername)}`,
  );
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One HTTP/1.1 request written directly on a TLS socket (keep-alive); the response must carry a Content-Length.
 * Rejects if the connection closes first.
 */
export function rawHttp(socket: tls.TLSSocket, req: { host: string; path?: string; headers?: Record<string, string> }, timeoutMs = 10_000): Promise<RawResponse> {
  return withTimeout(
    new Promise<RawResponse>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const cleanup = (): void => {
        socket.off('data', onData);
        socket.off('close', onClose);
        socket.off('error', onClose);
      };
      const onClose = (): void => {
        cleanup();
        reject(new Error('connection closed before a complete response'));
      };
      const onData = (chunk: Buffer): void => {
        buf = Buffer.concat([buf, chunk]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        const len = Number(headers['content-length'] ?? 0);
        if (buf.length < end + 4 + len) return;
        cleanup();
        resolve({ status, headers, body: buf.subarray(end + 4, end + 4 + len).toString('utf8') });
      };
      socket.on('data', onData);
      socket.on('close', onClose);
      socket.on('error', onClose);
      const extra = Object.entries(req.headers ?? {})
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      socket.write(`GET ${req.path ?? '/'} HTTP/1.1\r\nHost: ${req.host}\r\nConnection: keep-alive\r\n${extra}\r\n`);
    }),
    timeoutMs,
    `raw request for ${req.host}`,
  );
}

/** Resolves when the socket closes (true) or after `ms` (false). */
export function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  if (socket.destroyed || socket.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      socket.off('close', onClose);
      resolve(false);
    }, ms);
    const onClose = (): void => {
      clearTimeout(t);
      resolve(true);
    };
    socket.once('close', onClose);
  });
}

/**
 * The handshake as `openssl s_client -msg` shows it (asynchronously: the edge under test may run in this process).
 * Resolves with stdout+stderr.
 */
export function opensslHandshake(port: number, servername: string, extraArgs: string[] = []): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-msg', ...extraArgs],
      { timeout: 10_000, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => resolve(`${stdout}\n${stderr}\n${error ? `[exit: ${error.message}]` : ''}`),
    );
    child.stdin?.end();
  });
}

/**
 * A TCP proxy in front of the edge that delivers the visitor's first TLS record (the ClientHello) in `segment`-byte
 * TCP segments `delayMs` apart, optionally re-framed into TLS records of at most `reframe` bytes of payload (the
 * handshake transcript covers messages, not records, so the handshake still succeeds). Everything else is relayed
 * untouched.
 */
export async function startSegmentingProxy(
  targetPort: number,
  opts: { segment: number; delayMs: number; reframe?: number },
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect(targetPort, '127.0.0.1');
    upstream.setNoDelay(true);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 5) return;
      const len = buf.readUInt16BE(3);
      if (buf.length < 5 + len) return;
      client.off('data', onData);
      client.pause();
      let first = buf.subarray(0, 5 + len);
      const rest = buf.subarray(5 + len);
      if (opts.reframe) {
        const payload = first.subarray(5);
        const records: Buffer[] = [];
        for (let off = 0; off < payload.length; off += opts.reframe) {
          const part = payload.subarray(off, off + opts.reframe);
          const header = Buffer.from([first[0], first[1], first[2], 0, 0]);
          header.writeUInt16BE(part.length, 3);
          records.push(header, part);
        }
        first = Buffer.concat(records);
      }
      void (async () => {
        for (let off = 0; off < first.length; off += opts.segment) {
          if (upstream.destroyed) return;
          upstream.write(first.subarray(off, off + opts.segment));
          await new Promise((r) => setTimeout(r, opts.delayMs));
        }
        if (rest.length) upstream.write(rest);
        client.pipe(upstream);
        client.resume();
      })();
    };
    client.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

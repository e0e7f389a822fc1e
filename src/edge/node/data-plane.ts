/**
 * The in-process Node data plane (zero-install default for development and CI).
 *
 * Wire design (see DESIGN.md "Edge (data plane) findings"):
 *
 *   visitor ──TCP──► net.Server ── reads the ClientHello just far enough for the SNI (client-hello.ts), puts the bytes
 *                    back (unshift) and hands the socket to the https.Server of the hostname's TRUST DOMAIN
 *                       │
 *                       ├─► "public" domain (hostnames without Access CAs): no CertificateRequest at all
 *                       └─► one domain per exact Access CA set: requestCert, rejectUnauthorized: false, ca = that set
 *
 *   Each domain's server selects the hostname's certificate with SNICallback and owns its own session cache, ticket
 *   keys and session-id context, so a TLS session (ticket) from one CA set never resumes in another. The HTTP layer
 *   then re-checks every request: the Host must belong to the connection's domain (421 otherwise), and on an mTLS
 *   hostname the certificate of THIS connection must chain to that hostname's CAs (403 otherwise).
 *
 *   Requests are proxied to the origin through keep-alive pools keyed by the origin and the client-certificate
 *   identity presented to it (origin.ts).
 */
import { randomBytes } from 'node:crypto';
import type * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { ApplyResult, DataPlane, EdgeDelta, EdgeSnapshot, HostnameConfig } from '../contract.js';
import { ChangeQueue, collectHostname, hostFromHeader, normalizeHostname, prepareHostname, sameConfig, sha256, type PreparedHostname } from '../validate.js';
import { DEFAULT_MAX_CLIENT_HELLO, parseClientHelloSni } from './client-hello.js';
import { OriginPool, originRequestHeaders, pipeline, retryable, visitorResponseHeaders } from './origin.js';
import { chainsTo, presentedCertificate, type PresentedCertificate } from './verify.js';

export interface EdgeLogger {
  debug?(msg: string, fields?: Record<string, unknown>): void;
  info?(msg: string, fields?: Record<string, unknown>): void;
  warn?(msg: string, fields?: Record<string, unknown>): void;
  error?(msg: string, fields?: Record<string, unknown>): void;
}

export interface NodeDataPlaneOptions {
  logger?: EdgeLogger;
  /** A new connection must deliver its whole ClientHello within this time (default 10 s). */
  clientHelloTimeoutMs?: number;
  /** TLS handshake deadline once the ClientHello is in (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Largest ClientHello accepted (default 16 KiB). */
  maxClientHelloBytes?: number;
  /** Idle visitor keep-alive connections are closed after this (default 30 s). */
  keepAliveTimeoutMs?: number;
  /** Visitor sockets with no activity at all are closed after this (default 120 s). */
  idleTimeoutMs?: number;
  /** A visitor must send a request's headers within this time (default 60 s; slow-loris protection). */
  headersTimeoutMs?: number;
  /** An origin that does not answer within this time gets the visitor a 502 (default 100 s, as Cloudflare). */
  originTimeoutMs?: number;
}

interface HostState extends PreparedHostname {
  domain: Domain | null;
}

interface Domain {
  key: string;
  mtls: boolean;
  server: https.Server;
  sockets: Set<tls.TLSSocket>;
  retired: boolean;
}

interface ConnState {
  domain: Domain;
  sni: string;
  presented: PresentedCertificate | null;
  leafNotAfter: number;
  /** Chain verification results of this connection's certificate, per CA-set key. */
  verdicts: Map<string, boolean>;
}

const ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x70]);

function jsonBody(status: number, error: string, message: string): string {
  return JSON.stringify({ status, error, message }) + '\n';
}

function reply(res: http.ServerResponse, status: number, error: string, message: string, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = jsonBody(status, error, message);
  const headers: http.OutgoingHttpHeaders = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  if (close) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(body);
}

class NodeDataPlane implements DataPlane {
  private readonly log: EdgeLogger;
  private readonly o: Required<Omit<NodeDataPlaneOptions, 'logger'>>;
  private hosts = new Map<string, HostState>();
  private domains = new Map<string, Domain>();
  private readonly conns = new WeakMap<tls.TLSSocket, ConnState>();
  private readonly rawSockets = new Set<net.Socket>();
  private readonly pool = new OriginPool();
  private listener: net.Server | null = null;
  private currentVersion = 0;
  private readonly changes = new ChangeQueue();
  private stopped = false;

  constructor(opts: NodeDataPlaneOptions = {}) {
    this.log = opts.logger ?? {};
    this.o = {
      clientHelloTimeoutMs: opts.clientHelloTimeoutMs ?? 10_000,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
      maxClientHelloBytes: opts.maxClientHelloBytes ?? DEFAULT_MAX_CLIENT_HELLO,
      keepAliveTimeoutMs: opts.keepAliveTimeoutMs ?? 30_000,
      idleTimeoutMs: opts.idleTimeoutMs ?? 120_000,
      originTimeoutMs: opts.originTimeoutMs ?? 100_000,
      headersTimeoutMs: opts.headersTimeoutMs ?? 60_000,
    };
  }

  get version(): number {
    return this.currentVersion;
  }

  // --- lifecycle ------------------------------------------------------------------------------------------------

  start(opts: { host: string; port: number }): Promise<{ port: number }> {
    if (this.listener) return Promise.reject(new Error('data plane already started'));
    if (this.stopped) return Promise.reject(new Error('data plane stopped'));
    const server = net.createServer((socket) => this.onConnection(socket));
    this.listener = server;
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => {
        this.listener = null;
        reject(e);
      };
      server.once('error', onError);
      server.listen(opts.port, opts.host, () => {
        server.off('error', onError);
        server.on('error', (e) => this.log.error?.('edge listener error', { error: e.message }));
        const addr = server.address() as net.AddressInfo;
        this.log.info?.('edge listening', { host: opts.host, port: addr.port });
        resolve({ port: addr.port });
      });
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const listener = this.listener;
    this.listener = null;
    const closed = listener ? new Promise<void>((r) => listener.close(() => r())) : Promise.resolve();
    for (const d of this.domains.values()) this.retireDomain(d, true);
    this.domains.clear();
    this.hosts.clear();
    for (const s of this.rawSockets) s.destroy();
    this.rawSockets.clear();
    this.pool.destroyAll();
    await closed;
  }

  // --- configuration --------------------------------------------------------------------------------------------

  apply(snapshot: EdgeSnapshot): Promise<ApplyResult> {
    return this.serialize(async () => {
      if (!snapshot || !Number.isFinite(snapshot.version)) throw new Error('snapshot version is missing');
      const failed: ApplyResult['failed'] = [];
      const desired = new Map<string, HostnameConfig>();
      for (const cfg of snapshot.hostnames ?? []) collectHostname(cfg, desired, failed);
      return this.commit(snapshot.version, desired, failed);
    });
  }

  applyDelta(delta: EdgeDelta): Promise<ApplyResult> {
    return this.serialize(async () => {
      if (!delta || !Number.isFinite(delta.version)) throw new Error('delta version is missing');
      if (delta.version <= this.currentVersion) {
        throw new Error(`delta version ${delta.version} is not newer than the current version ${this.currentVersion}`);
      }
      const failed: ApplyResult['failed'] = [];
      const desired = new Map<string, HostnameConfig>();
      for (const [name, state] of this.hosts) desired.set(name, state.config);
      for (const name of delta.remove ?? []) {
        const n = normalizeHostname(name);
        if (n) desired.delete(n);
      }
      const upserted = new Set<string>();
      for (const cfg of delta.upsert ?? []) {
        const n = normalizeHostname(cfg?.hostname);
        if (n && !upserted.has(n)) desired.delete(n); // replaced, not a duplicate of the live entry
        collectHostname(cfg, desired, failed, upserted);
      }
      return this.commit(delta.version, desired, failed);
    });
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    return this.changes.run(() => {
      if (this.stopped) throw new Error('data plane stopped');
      return fn();
    });
  }

  private commit(version: number, desired: Map<string, HostnameConfig>, failed: ApplyResult['failed']): ApplyResult {
    const next = new Map<string, HostState>();
    for (const [name, cfg] of desired) {
      const prev = this.hosts.get(name);
      if (prev && sameConfig(prev, cfg)) {
        next.set(name, prev);
        continue;
      }
      try {
        next.set(name, { ...prepareHostname(name, cfg), domain: null });
      } catch (e) {
        const reason = (e as Error).message || String(e);
        failed.push({ hostname: name, reason });
        this.log.warn?.('edge hostname not applied', { hostname: name, reason, keptPrevious: !!prev });
        if (prev) next.set(name, prev);
      }
    }

    // Trust domains: one server per exact Access CA set.
    const nextDomains = new Map<string, Domain>();
    for (const state of next.values()) {
      let d = nextDomains.get(state.caKey);
      if (!d) {
        d = this.domains.get(state.caKey) ?? this.createDomain(state);
        nextDomains.set(state.caKey, d);
      }
      state.domain = d;
    }
    const previousDomains = this.domains;
    this.hosts = next;
    this.domains = nextDomains;
    for (const [key, d] of previousDomains) {
      if (nextDomains.get(key) !== d) this.retireDomain(d, false);
    }
    // Authenticated connections whose SNI hostname left their domain (CA set changed) or was removed are closed.
    for (const d of nextDomains.values()) {
      if (!d.mtls) continue;
      for (const s of d.sockets) {
        const c = this.conns.get(s);
        if (!c?.presented) continue;
        if (this.lookup(c.sni)?.domain !== d) s.destroy();
      }
    }
    this.pool.retain(new Set([...next.values()].map((s) => s.target.key)));
    this.currentVersion = version;
    this.log.info?.('edge configuration applied', { version, hostnames: next.size, domains: nextDomains.size, failed: failed.length });
    return { version, failed };
  }

  /** The configuration serving `name`: an exact hostname first, else a wildcard `*.parent` one. */
  private lookup(name: string | null | undefined): HostState | undefined {
    if (!name) return undefined;
    const exact = this.hosts.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    return dot > 0 && name[0] !== '*' ? this.hosts.get(`*${name.slice(dot)}`) : undefined;
  }

  private createDomain(first: HostState): Domain {
    const mtls = first.caKey !== '';
    const domain: Domain = { key: first.caKey, mtls, server: null as unknown as https.Server, sockets: new Set(), retired: false };
    const server = https.createServer(
      {
        SNICallback: (servername, cb) => {
          const h = this.lookup(normalizeHostname(servername));
          if (h && h.domain === domain && !domain.retired) cb(null, h.secureContext);
          else cb(new Error(`no certificate for ${servername}`), undefined);
        },
        requestCert: mtls,
        rejectUnauthorized: false,
        ca: mtls ? first.caPems : undefined,
        minVersion: 'TLSv1.2',
        ALPNProtocols: ['http/1.1'],
        handshakeTimeout: this.o.handshakeTimeoutMs,
        // Own session-id context and ticket keys: sessions never resume across trust domains.
        sessionIdContext: sha256(`${first.caKey}\0${randomBytes(16).toString('hex')}`).slice(0, 32),
        ticketKeys: randomBytes(48),
        headersTimeout: this.o.headersTimeoutMs,
        requestTimeout: Math.max(300_000, this.o.headersTimeoutMs),
        connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(this.o.headersTimeoutMs / 4))),
      },
      (req, res) => {
        try {
          this.onRequest(domain, req, res);
        } catch (e) {
          // Never let one request take the process down.
          this.log.error?.('edge request handler failed', { error: (e as Error).message });
          if (!res.destroyed) reply(res, 502, 'Bad Gateway', 'the edge could not forward this request', true);
        }
      },
    );
    server.timeout = this.o.idleTimeoutMs;
    server.keepAliveTimeout = this.o.keepAliveTimeoutMs;
    // The server never listens itself (the dispatcher hands it sockets), but node:http only enforces headersTimeout and
    // requestTimeout (slow-loris protection) once 'listening' has started its connection checks: start them here.
    // retireDomain() and stop() close() the server, which stops them again.
    server.emit('listening');
    server.on('secureConnection', (socket: tls.TLSSocket) => this.onSecureConnection(domain, socket));
    server.on('tlsClientError', (e) => this.log.debug?.('visitor TLS handshake failed', { error: e.message }));
    domain.server = server;
    return domain;
  }

  /** Stops using a domain; its authenticated connections (or all of them when `all`) are closed. */
  private retireDomain(d: Domain, all: boolean): void {
    d.retired = true;
    try {
      d.server.close(); // stops node:http's connection checks; also closes its idle connections (they could only get 421)
    } catch {
      // not running: nothing to stop
    }
    for (const s of d.sockets) {
      if (all || this.conns.get(s)?.presented) s.destroy();
    }
  }

  // --- visitors: TCP → ClientHello → trust domain -------------------------------------------------------------

  private onConnection(raw: net.Socket): void {
    if (this.stopped) {
      raw.destroy();
      return;
    }
    this.rawSockets.add(raw);
    raw.once('close', () => this.rawSockets.delete(raw));
    raw.on('error', (e) => this.log.debug?.('visitor socket error', { error: e.message }));
    raw.setNoDelay(true);
    const chunks: Buffer[] = [];
    let total = 0;
    const hardCap = this.o.maxClientHelloBytes + 64 * 1024;
    raw.setTimeout(this.o.clientHelloTimeoutMs, () => {
      this.log.debug?.('visitor sent no complete ClientHello in time', { remote: raw.remoteAddress });
      raw.destroy();
    });
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      total += chunk.length;
      const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
      const res = parseClientHelloSni(buf, this.o.maxClientHelloBytes);
      if (res.kind === 'need-more') {
        if (total > hardCap) raw.destroy();
        return;
      }
      raw.off('data', onData);
      raw.pause();
      raw.setTimeout(0);
      if (res.kind === 'error') {
        this.log.debug?.('not a usable ClientHello', { reason: res.reason, remote: raw.remoteAddress });
        raw.destroy();
        return;
      }
      const host = this.lookup(res.serverName);
      if (!host || !host.domain || host.domain.retired) {
        this.log.debug?.('ClientHello for an unknown hostname', { serverName: res.serverName });
        raw.end(ALERT_UNRECOGNIZED_NAME, () => raw.destroy());
        setTimeout(() => raw.destroy(), 1000).unref();
        return;
      }
      raw.unshift(buf);
      host.domain.server.emit('connection', raw);
    };
    raw.on('data', onData);
  }

  private onSecureConnection(domain: Domain, socket: tls.TLSSocket): void {
    if (domain.retired || this.stopped) {
      socket.destroy();
      return;
    }
    const presented = domain.mtls ? presentedCertificate(socket) : null;
    const state: ConnState = {
      domain,
      sni: normalizeHostname((socket as tls.TLSSocket & { servername?: string | false }).servername) ?? '',
      presented,
      leafNotAfter: presented ? Date.parse(presented.leaf.validTo) : 0,
      verdicts: new Map(),
    };
    this.conns.set(socket, state);
    domain.sockets.add(socket);
    socket.once('close', () => domain.sockets.delete(socket));
  }

  // --- HTTP layer -----------------------------------------------------------------------------------------------

  private onRequest(domain: Domain, req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket as tls.TLSSocket;
    const conn = this.conns.get(socket);
    const hostname = hostFromHeader(req.headers.host);
    const host = this.lookup(hostname);
    if (!conn || conn.domain !== domain || domain.retired || !host || host.domain !== domain) {
      reply(
        res,
        421,
        'Misdirected Request',
        host
          ? `${hostname} cannot be served on this connection (its TLS server name is ${conn?.sni || 'unknown'}); open a new connection for it`
          : `${hostname ?? 'this host'} is not served here`,
      );
      return;
    }
    let verified: PresentedCertificate | null = null;
    if (host.caKey !== '') {
      if (!this.clientCertificateValid(socket, conn, host)) {
        reply(
          res,
          403,
          'Forbidden',
          conn.presented
            ? `the client certificate presented is not valid for ${hostname}: it must be issued by one of its Access CAs`
            : `${hostname} requires a client certificate issued by one of its Access CAs; none was presented`,
        );
        return;
      }
      verified = conn.presented;
    }
    const forwardedCert = host.config.forwardClientCertificate && verified ? verified : null;
    this.proxy(host, hostname!, req, res, forwardedCert);
  }

  private clientCertificateValid(socket: tls.TLSSocket, conn: ConnState, host: HostState): boolean {
    if (!conn.presented || !socket.authorized) return false;
    if (!(conn.leafNotAfter >= Date.now())) return false;
    let v = conn.verdicts.get(host.caKey);
    if (v === undefined) {
      v = chainsTo(conn.presented, host.anchors);
      conn.verdicts.set(host.caKey, v);
    }
    return v;
  }

  private proxy(host: HostState, hostname: string, req: http.IncomingMessage, res: http.ServerResponse, cert: PresentedCertificate | null): void {
    const headers = originRequestHeaders(req, { clientIp: req.socket.remoteAddress, forwardedCert: cert });
    const noBody = retryable(req);
    const send = (attempt: number): void => {
      let responded = false;
      const preq = this.pool.request(host.target, hostname, {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers,
        timeoutMs: this.o.originTimeoutMs,
      });
      const abort = (): void => {
        if (!res.writableFinished) preq.destroy();
      };
      res.once('close', abort);
      preq.on('response', (pres) => {
        responded = true;
        const status = pres.statusCode ?? 502;
        try {
          res.writeHead(status, pres.statusMessage, visitorResponseHeaders(pres));
        } catch (e) {
          this.log.warn?.('origin response not forwardable', { hostname: host.hostname, error: (e as Error).message });
          pres.destroy();
          reply(res, 502, 'Bad Gateway', 'the origin sent an invalid response', true);
          return;
        }
        pipeline(pres, res, () => undefined);
      });
      preq.on('error', (e) => {
        res.off('close', abort);
        if (responded) {
          res.destroy();
          return;
        }
        if (attempt === 0 && noBody && preq.reusedSocket && !res.headersSent && !res.destroyed) {
          this.log.debug?.('stale pooled origin connection, retrying', { hostname: host.hostname, error: e.message });
          send(1);
          return;
        }
        if (!noBody) req.unpipe(preq);
        this.log.warn?.('origin request failed', { hostname: host.hostname, origin: `${host.target.origin.address}:${host.target.origin.port}`, error: e.message });
        if (!res.destroyed) reply(res, 502, 'Bad Gateway', `the origin of ${host.hostname} could not be reached`, !noBody && !req.complete);
      });
      if (noBody) {
        preq.end();
        req.resume();
      } else {
        req.pipe(preq);
      }
    };
    send(0);
  }
}

/** The in-process Node implementation of the data plane. */
export function createNodeDataPlane(opts: NodeDataPlaneOptions = {}): DataPlane {
  return new NodeDataPlane(opts);
}

/**
 * Connections to origins: keep-alive agents pooled per (scheme, address, port, SNI, origin CA bundle, client-certificate
 * identity), so a connection opened with one tenant's certificate is never reused for another identity, plus the
 * request forwarding itself (streamed bodies, hop-by-hop headers dropped, 502 on origin errors).
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { pipeline } from 'node:stream';
import type { OriginConfig, PemPair } from '../contract.js';

export interface OriginTarget {
  /** Pool key without the SNI: never shared between different identities. */
  key: string;
  origin: OriginConfig;
  /**
   * SNI sent to the origin ('' = none, for an IP address); null = the visitor's hostname of each request (a wildcard
   * hostname without an explicit origin SNI).
   */
  servername: string | null;
  identityId: string | null;
  /** Prepared TLS context (client certificate, origin CA); undefined for plain HTTP. */
  secureContext?: tls.SecureContext;
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * Validates and prepares how a hostname reaches its origin. Throws an Error with a readable message if the client
 * certificate/key or the origin CA bundle cannot be used.
 */
export function prepareOriginTarget(
  hostname: string,
  origin: OriginConfig,
  clientCert: (PemPair & { id: string }) | null,
  opts: { context?: boolean; checkKeyPair?: (certPem: string, keyPem: string) => void; checkCaBundle?: (pem: string) => void } = {},
): OriginTarget {
  if (!origin || typeof origin !== 'object') throw new Error('origin is missing');
  if (typeof origin.address !== 'string' || origin.address.length === 0) throw new Error('origin address is missing');
  if (!Number.isInteger(origin.port) || origin.port < 1 || origin.port > 65535) throw new Error(`origin port ${String(origin.port)} is invalid`);
  // SNI must be a host name (RFC 6066): an IP address is not sent (and Node deprecates it).
  const sniName = (origin.sni ?? hostname).toLowerCase();
  const servername = sniName.startsWith('*') ? null : net.isIP(sniName) ? '' : sniName;
  if (!origin.tls) {
    // Plain HTTP: a client certificate cannot be presented; the identity still separates pools for clarity.
    return {
      key: ['http', origin.address, origin.port, '', '', clientCert ? `${clientCert.id}` : 'none'].join('|'),
      origin,
      servername,
      identityId: clientCert?.id ?? null,
    };
  }
  const identity = clientCert ? `${clientCert.id}#${sha256(clientCert.certPem + '\0' + clientCert.keyPem).slice(0, 16)}` : 'none';
  const ca = origin.caPem ? sha256(origin.caPem).slice(0, 16) : 'noverify';
  const key = ['https', origin.address, origin.port, ca, identity].join('|');
  if (opts.context === false) {
    // Checked without building a TLS context (an engine that builds its own, like HAProxy).
    const what = clientCert ? `origin client certificate ${clientCert.id}` : '';
    try {
      if (clientCert) opts.checkKeyPair!(clientCert.certPem, clientCert.keyPem);
    } catch (e) {
      throw new Error(`${what} is unusable: ${(e as Error).message}`);
    }
    try {
      if (origin.caPem) opts.checkCaBundle!(origin.caPem);
    } catch (e) {
      throw new Error(`origin CA bundle is unusable: ${(e as Error).message}`);
    }
    return { key, origin, servername, identityId: clientCert?.id ?? null };
  }
  const ctxOpts: tls.SecureContextOptions = { minVersion: 'TLSv1.2' };
  if (clientCert) {
    ctxOpts.cert = clientCert.certPem;
    ctxOpts.key = clientCert.keyPem;
  }
  if (origin.caPem) ctxOpts.ca = origin.caPem;
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext(ctxOpts);
  } catch (e) {
    const what = clientCert ? `origin client certificate ${clientCert.id} or origin CA bundle` : 'origin CA bundle';
    throw new Error(`${what} is unusable: ${(e as Error).message}`);
  }
  return {
    key,
    origin,
    servername,
    identityId: clientCert?.id ?? null,
    secureContext,
  };
}

interface PoolEntry {
  agent: http.Agent;
  inflight: number;
  retired: boolean;
}

export class OriginPool {
  private readonly entries = new Map<string, PoolEntry>();

  constructor(private readonly opts: { keepAliveMsecs?: number; maxFreeSockets?: number; socketTimeoutMs?: number } = {}) {}

  private entryFor(key: string, target: OriginTarget): PoolEntry {
    let e = this.entries.get(key);
    if (!e || e.retired) {
      const base = {
        keepAlive: true,
        keepAliveMsecs: this.opts.keepAliveMsecs ?? 1000,
        maxFreeSockets: this.opts.maxFreeSockets ?? 256,
        scheduling: 'lifo' as const,
        timeout: this.opts.socketTimeoutMs ?? 60_000,
      };
      const agent = target.origin.tls ? new https.Agent({ ...base, maxCachedSessions: 100 }) : new http.Agent(base);
      e = { agent, inflight: 0, retired: false };
      this.entries.set(key, e);
    }
    return e;
  }

  /** Retires (closes once idle) every pool whose target key is not in `live`. */
  retain(live: Set<string>): void {
    for (const [key, e] of this.entries) {
      if (live.has(key.slice(0, key.lastIndexOf('|')))) continue;
      this.entries.delete(key);
      e.retired = true;
      if (e.inflight === 0) e.agent.destroy();
    }
  }

  destroyAll(): void {
    for (const e of this.entries.values()) e.agent.destroy();
    this.entries.clear();
  }

  /**
   * Starts one request to the origin through the pool of (target, SNI); `visitorHostname` is the SNI when the target
   * does not fix one.
   */
  request(
    target: OriginTarget,
    visitorHostname: string,
    opts: { method: string; path: string; headers: http.OutgoingHttpHeaders; timeoutMs: number },
  ): http.ClientRequest {
    const servername = target.origin.tls ? (target.servername ?? visitorHostname) : '';
    const entry = this.entryFor(`${target.key}|${servername}`, target);
    entry.inflight++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      entry.inflight--;
      if (entry.retired && entry.inflight === 0) entry.agent.destroy();
    };
    const base: https.RequestOptions = {
      agent: entry.agent,
      host: target.origin.address,
      port: target.origin.port,
      method: opts.method,
      path: opts.path,
      headers: opts.headers,
      setHost: false,
    };
    let req: http.ClientRequest;
    if (target.origin.tls) {
      // https.request passes TLS options through to tls.connect (secureContext included).
      const tlsOpts: Pick<tls.ConnectionOptions, 'servername' | 'secureContext' | 'rejectUnauthorized'> = {
        servername, // '' = no SNI (never derived from the Host header)
        secureContext: target.secureContext,
        rejectUnauthorized: !!target.origin.caPem,
      };
      req = https.request({ ...base, ...tlsOpts } as https.RequestOptions);
    } else {
      req = http.request(base);
    }
    req.setTimeout(opts.timeoutMs, () => req.destroy(new Error(`origin did not answer within ${opts.timeoutMs} ms`)));
    req.once('close', release);
    return req;
  }
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded in either direction. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const FORWARDED_CERT_HEADERS = new Set(['cf-client-cert-der-base64', 'cf-client-cert-sha256']);

/** Headers of a visitor request as they go to the origin (client copies of the forwarding headers always removed). */
export function originRequestHeaders(
  req: http.IncomingMessage,
  extra: { clientIp: string | undefined; forwardedCert: { der: Buffer } | null },
): http.OutgoingHttpHeaders {
  const connectionTokens = new Set(
    String(req.headers.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: http.OutgoingHttpHeaders = {};
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || connectionTokens.has(lower) || FORWARDED_CERT_HEADERS.has(lower)) continue;
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-for') continue;
    const prev = out[lower];
    if (prev === undefined) out[lower] = raw[i + 1];
    else if (Array.isArray(prev)) prev.push(raw[i + 1]);
    else out[lower] = [String(prev), raw[i + 1]];
  }
  const xff = req.headers['x-forwarded-for'];
  const prior = Array.isArray(xff) ? xff.join(', ') : xff;
  if (extra.clientIp) out['x-forwarded-for'] = prior ? `${prior}, ${extra.clientIp}` : extra.clientIp;
  else if (prior) out['x-forwarded-for'] = prior;
  out['x-forwarded-proto'] = 'https';
  if (extra.forwardedCert) {
    out['Cf-Client-Cert-Der-Base64'] = extra.forwardedCert.der.toString('base64');
    out['Cf-Client-Cert-Sha256'] = createHash('sha256').update(extra.forwardedCert.der).digest('hex');
  }
  return out;
}

/** Response headers from the origin as they go to the visitor. */
export function visitorResponseHeaders(res: http.IncomingMessage): http.OutgoingHttpHeaders {
  const connectionTokens = new Set(
    String(res.headers.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || connectionTokens.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Idempotent methods whose requests carry no body can be retried once on a stale pooled connection. */
export function retryable(req: http.IncomingMessage): boolean {
  const m = req.method ?? 'GET';
  if (!['GET', 'HEAD', 'OPTIONS', 'TRACE', 'DELETE', 'PUT'].includes(m)) return false;
  if (req.headers['transfer-encoding']) return false;
  const len = req.headers['content-length'];
  return len === undefined || len === '0';
}

export { pipeline };

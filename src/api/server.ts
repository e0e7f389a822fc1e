/**
 * The HTTP binding: Fastify, Cloudflare's `/client/v4` paths, and the translation of every outcome into the
 * envelope. Handlers return domain values; `defineRoute` does authentication, authorisation, body validation and
 * envelope building, so no handler repeats it.
 */
import { STATUS_CODES, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Duplex } from 'node:stream';
import type { TSchema } from '@sinclair/typebox';
import type { AccessScope, AccessService } from '../domain/access.js';
import type { AopService } from '../domain/aop.js';
import { DomainError } from '../domain/errors.js';
import { HEX32_RE } from '../domain/shared.js';
import type { Permission, Zone } from '../domain/model.js';
import type { Principal, TenancyService } from '../domain/tenancy.js';
import { StorageError } from '../storage/errors.js';
import type { DataVersions } from '../domain/ports.js';
import { answerHeaders, canAnswerFromMemory, createAnswerCache, sendAnswer, type AnswerCache, type CachedAnswer } from './answers.js';
import { authenticate, authenticateFromMemory, authorizeAccount, authorizeZone, authorizeZoneFromMemory, type BearerDigests } from './auth.js';
import { fail, ok, type ResultInfo, type WireMessage } from './envelope.js';
import { ApiError, render, type ApiErrorKind, type ErrorFamily, type RenderedError } from './errors.js';
import { compileBody } from './validate.js';
import {
  clientKey,
  createRateLimiter,
  credentialKey,
  setRateLimitHeaders,
  writeRateLimited,
  type RateDecision,
  type RateLimitSettings,
} from './ratelimit.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Abuse limits: how this request was counted (null when rate limiting is off). */
    rateDecision: RateDecision | null;
  }
}

export const API_PREFIX = '/client/v4';

export interface ApiServices {
  tenancy: TenancyService;
  aop: AopService;
  access: AccessService;
}

export interface ApiOptions {
  /** Largest accepted request body, bytes. */
  bodyLimit?: number;
  /** Fastify/pino logger options, or false. */
  logger?: boolean | Record<string, unknown>;
  /** Bytes of answers kept ready to send (src/api/answers.ts); 0 turns the cache off. Default 32 MiB. */
  answerCacheBytes?: number;
  // ---- abuse limits (docs/deployment.md "Abuse limits") ----
  /** Request rates per credential and per client IP (src/api/ratelimit.ts); nothing is counted when absent. */
  rateLimit?: RateLimitSettings;
  /** Connection timeouts, ms (0 = none); Fastify's and Node's defaults when absent. */
  timeouts?: ConnectionTimeouts;
  /** Most connections open at once (0 = no cap); further connections are closed at once. */
  maxConnections?: number;
  /** Proxies whose X-Forwarded-For gives the client IP: addresses/CIDRs, comma-separated (Fastify `trustProxy`). */
  trustProxy?: string;
  /** The rate limiter's clock, ms since the epoch (default Date.now). */
  nowMs?: () => number;
}

export interface ConnectionTimeouts {
  /** From a request's first byte (or the connection's opening) to the end of its headers. */
  headersMs: number;
  /** From a request's first byte to the end of its body. */
  requestMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveMs: number;
  /** A connection with no traffic in either direction is closed after this (must exceed the edge feed's 30 s wait). */
  idleMs: number;
}

/** Fastify's options for the timeouts; Node checks the header and request deadlines on a timer, set to a quarter of the shorter. */
function timeoutOptions(t: ConnectionTimeouts | undefined) {
  if (!t) return {};
  const deadlines = [t.headersMs, t.requestMs].filter((ms) => ms > 0);
  const checkEvery = deadlines.length ? Math.min(30_000, Math.max(10, Math.floor(Math.min(...deadlines) / 4))) : 30_000;
  return {
    connectionTimeout: t.idleMs,
    keepAliveTimeout: t.keepAliveMs,
    requestTimeout: t.requestMs,
    http: { headersTimeout: t.headersMs, requestTimeout: t.requestMs, connectionsCheckingInterval: checkEvery },
  };
}

export interface HandlerResult {
  result: unknown;
  resultInfo?: ResultInfo;
  messages?: WireMessage[];
  status?: number;
}

export interface RouteContext<B = unknown> {
  req: FastifyRequest;
  principal: Principal;
  body: B;
  params: Record<string, string>;
  query: Record<string, string | string[] | undefined>;
  /** Set on `/zones/:zone_id/...` routes. */
  zone: Zone;
  /** Set on Access routes (`/accounts/:account_id/...` and `/zones/:zone_id/...`). */
  scope: AccessScope;
  /** The versions read before anything else for this request (the route's zone's data version when it has one). */
  versions: DataVersions;
}

export interface RouteSpec<B = unknown> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  /** Path below /client/v4, with `:zone_id` or `:account_id` when the route acts on one. */
  url: string;
  family: ErrorFamily;
  /** Permission required on the route's zone or account; undefined = any authenticated caller. */
  permission?: Permission;
  body?: TSchema;
  handler: (ctx: RouteContext<B>) => Promise<HandlerResult>;
  /** Status of a successful answer (default 200). */
  status?: number;
  /** Error for an unknown, revoked, expired or not-yet-valid bearer token (default `auth.invalid_token`). */
  invalidTokenError?: ApiErrorKind;
  /**
   * A GET whose successful answer depends only on the tenancy version and the `:zone_id`'s data version (its AOP
   * certificates and associations): the answer is kept and sent again while both are unchanged (src/api/answers.ts).
   */
  cacheable?: boolean;
}

interface RegisteredPattern {
  method: string;
  regex: RegExp;
  /** Static segments: like the router, the most specific pattern wins. */
  statics: number;
}

function patternOf(url: string): RegExp {
  const source = url
    .split('/')
    .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${API_PREFIX}${source}/?$`);
}

/** Writes an envelope straight onto a connection Fastify does not own (refused before HTTP parsing ended) and closes it. */
function endWithEnvelope(socket: Duplex, rendered: RenderedError): void {
  const body = JSON.stringify(fail([rendered.error]));
  socket.end(
    `HTTP/1.1 ${rendered.status} ${STATUS_CODES[rendered.status]}\r\n` +
      `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `cache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
  );
}

export function errorReply(
  reply: FastifyReply,
  rendered: RenderedError | RenderedError[],
  headers: Record<string, string> = {},
): FastifyReply {
  const list = Array.isArray(rendered) ? rendered : [rendered];
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply
    .code(list[0].status)
    .header('content-type', 'application/json; charset=utf-8')
    .send(fail(list.map((r) => r.error)));
}

/** Maps anything thrown while serving a request to Cloudflare's envelope; unknown errors are logged, not shown. */
export function renderError(err: unknown, req: FastifyRequest): RenderedError {
  if (err instanceof DomainError) return render(err.kind, err.detail, err.pointer);
  if (err instanceof ApiError) return render(err.kind, err.detail);
  if (err instanceof StorageError) {
    req.log.error({ err: { message: err.message, kind: err.kind } }, 'storage error');
    return render('server.unavailable');
  }
  const code = (err as { code?: string })?.code;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return render('request.too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return render('request.unsupported_media_type');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return render('request.body_required');
    case 'FST_ERR_BAD_URL': // undecodable percent-encoding in the path
    case 'FST_ERR_MAX_PARAM_LENGTH': // a path segment longer than the router accepts
      return render('route.bad_identifier', req.url.split('?')[0]);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return render('request.malformed_json');
  }
  const status = (err as { statusCode?: number })?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // A client error raised by Fastify itself (for example a malformed URL).
    return { status, error: { code: 6100 + (status - 400), message: (err as Error).message } };
  }
  // Never echo an unknown error: it could contain request data. Log its message and stack only.
  req.log.error({ err: { message: (err as Error)?.message, stack: (err as Error)?.stack } }, 'unhandled error');
  return render('server.internal');
}

/** A request the answer-from-memory step counted against its credential before handing it to Fastify. */
const COUNTED = Symbol('certplane.rateDecision');
type CountedRequest = IncomingMessage & { [COUNTED]?: RateDecision };

export function buildServer(services: ApiServices, options: ApiOptions = {}): FastifyInstance {
  // Abuse limits (docs/deployment.md): the rate limiter both paths count with, and the client address as Fastify
  // computes `req.ip` (the same library, with the same trusted proxies).
  const limiter = createRateLimiter(options.rateLimit);
  const nowMs = options.nowMs ?? Date.now;
  const trusted = options.trustProxy ? proxyAddr.compile(options.trustProxy.split(',').map((p) => p.trim())) : null;
  const clientIp = (req: IncomingMessage): string => (trusted ? proxyAddr(req, trusted) : (req.socket.remoteAddress ?? ''));
  const answerCacheBytes = options.answerCacheBytes ?? 32 * 1024 * 1024;
  const answers = createAnswerCache(answerCacheBytes);
  const answersOn = answerCacheBytes > 0;
  /** Successful answers to keep, by request: what the handler knew (zone, permission, versions), until onSend has the bytes. */
  const keeping = new WeakMap<FastifyRequest, Omit<CachedAnswer, 'body'>>();
  const timeouts = timeoutOptions(options.timeouts);
  /** Per connection (its socket), the bearer header it last sent and its token's digest (see BearerDigests). */
  const bearerDigests: BearerDigests = new WeakMap();

  /**
   * A GET answered from memory: the same credential checks as the full path (onRequest below), then the kept bytes.
   * False (or a promise of false), having written nothing, whenever the full path must answer instead.
   */
  function answerFromMemory(req: IncomingMessage, res: ServerResponse, kept: CachedAnswer): boolean | Promise<boolean> {
    // Rate limits first, as on the full path: only a credential already seen to authenticate is counted here (any
    // other request goes to the full path uncounted, which counts it by client IP). A refusal does no work at all;
    // a request counted here and then handed to the full path is not counted again (COUNTED).
    let d: RateDecision | undefined;
    if (limiter) {
      const credential = credentialKey(req.headers);
      if (!limiter.verified(credential)) return false;
      const now = nowMs();
      d = limiter.admit(credential, clientKey(clientIp(req)), now);
      if (!d.allowed) {
        writeRateLimited(res, d, now);
        return true;
      }
      (req as CountedRequest)[COUNTED] = d;
    }
    // One probe of the versions, then the checks `authenticate` and `authorizeZone` make, from the rows kept for
    // that tenancy version (no read, no further promise); anything they cannot tell goes to the full path.
    return services.tenancy.versions(kept.zoneId).then((v) => {
      if (v.tenancy !== kept.versions.tenancy || v.zone !== kept.versions.zone) return false;
      const principal = authenticateFromMemory(services.tenancy, req, v.tenancy, bearerDigests);
      if (!principal || !authorizeZoneFromMemory(services.tenancy, principal, kept.zoneId, kept.permission, v.tenancy)) return false;
      if ((app.log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('info')) {
        // The line Fastify logs for a request it answers (its "incoming request" line is folded into this one).
        app.log.info({ req: { method: req.method, url: req.url, remoteAddress: req.socket.remoteAddress }, res: { statusCode: 200 } }, 'request completed from memory');
      }
      if (d) setRateLimitHeaders(d, res);
      sendAnswer(res, kept);
      answers.hits++;
      return true;
    });
  }

  const app = Fastify({
    // The HTTP server Fastify would create, with one step in front: GETs whose answer is kept are sent from memory.
    serverFactory: (handler, factoryOptions) => {
      const opts = factoryOptions as unknown as {
        http?: Record<string, unknown>;
        keepAliveTimeout: number;
        requestTimeout: number;
        connectionTimeout: number;
        maxRequestsPerSocket: number;
      };
      const server = createServer(opts.http ?? {}, (req, res) => {
        const kept = answersOn && canAnswerFromMemory(req) ? answers.get(req.url ?? '') : undefined;
        if (!kept) return handler(req, res);
        const done = answerFromMemory(req, res, kept);
        if (done === true) return;
        if (done === false) return handler(req, res);
        done.then(
          (answered) => answered || handler(req, res),
          () => handler(req, res),
        );
      });
      server.keepAliveTimeout = opts.keepAliveTimeout;
      server.requestTimeout = opts.requestTimeout;
      server.setTimeout(opts.connectionTimeout);
      if (opts.maxRequestsPerSocket > 0) server.maxRequestsPerSocket = opts.maxRequestsPerSocket;
      return server;
    },
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    routerOptions: { maxParamLength: 1024, ignoreTrailingSlash: true, ignoreDuplicateSlashes: false },
    ...timeouts,
    // One compiled list of trusted proxies for Fastify's `req.ip` and the answer-from-memory step's clientIp.
    ...(trusted ? { trustProxy: trusted } : {}),
    // Requests Node's HTTP parser rejects (bad framing, oversized headers) or gives up on (header and request
    // timeouts: a slow client) still get Cloudflare's envelope, unless an answer has already begun on the socket.
    clientErrorHandler: (err, socket) => {
      const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
      if (!socket.writable || answering) return socket.destroy();
      const code = (err as { code?: string }).code;
      endWithEnvelope(
        socket,
        render(
          code === 'HPE_HEADER_OVERFLOW'
            ? 'request.headers_too_large'
            : code === 'ERR_HTTP_REQUEST_TIMEOUT'
              ? 'request.timeout'
              : 'request.bad_http',
        ),
      );
    },
    // Node would answer an HTTP/1.1 request without Host itself, with an empty 400: the onRequest hook below does.
    // (With the timeouts' own options for Node's server: one `http` object, not one replacing the other.)
    http: { ...timeouts.http, requireHostHeader: false },
    // Errors the router raises before any route runs (bad URL encoding, over-long segment) get the envelope too.
    frameworkErrors: (err, req, reply) => errorReply(reply, renderError(err, req)),
  });
  if (options.maxConnections) app.server.maxConnections = options.maxConnections;
  // What Node's HTTP server would answer by itself, outside Fastify, gets the envelope too. An Expect other than
  // 100-continue: Node answers 417 with an empty body.
  app.server.on('checkExpectation', (_req, res) => {
    const { status, error } = render('request.expectation_failed', 'only 100-continue is supported');
    const body = JSON.stringify(fail([error]));
    res.writeHead(status, { ...answerHeaders(Buffer.byteLength(body)), connection: 'close' });
    res.end(body);
  });
  // CONNECT: Node drops the connection without an answer when nothing listens (certplane is no proxy).
  app.server.on('connect', (_req, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    endWithEnvelope(socket, render('route.method_not_allowed', 'CONNECT'));
  });
  // A callback hook (no promise per request). Node's parser takes a request line without a version for HTTP/0.9 and
  // still reads the headers after it, and takes "HTTP/2.0" on a text connection: only HTTP/1.0 and 1.1 are served.
  // RFC 9112 §3.2: 400 for HTTP/1.1 without Host.
  app.addHook('onRequest', (req, _reply, done) => {
    const raw = req.raw;
    if (raw.httpVersionMajor !== 1 || raw.httpVersionMinor > 1) {
      return done(new ApiError('request.bad_http', `HTTP/${raw.httpVersion} is not supported; use HTTP/1.1`));
    }
    if (raw.headers.host === undefined && raw.httpVersionMinor === 1) {
      return done(new ApiError('request.bad_http', 'an HTTP/1.1 request must have a Host header'));
    }
    // RFC 9112 §6.3: a body whose length cannot be known. Node's parser only fails once it reads the body, after a GET
    // has already been handed to its route.
    const te = raw.headers['transfer-encoding'];
    if (te !== undefined && !/(?:^|,)[ \t]*chunked[ \t]*$/i.test(te)) {
      return done(new ApiError('request.bad_http', 'the last Transfer-Encoding must be chunked'));
    }
    done();
  });

  const patterns: RegisteredPattern[] = [];
  /** Per-request context built by a route's onRequest hook for its handler. */
  const contexts = new WeakMap<FastifyRequest, RouteContext<unknown>>();

  // JSON for every content type: curl -d sends application/x-www-form-urlencoded unless told otherwise.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, text, done) => {
    const s = text as string;
    if (s.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(s));
    } catch {
      done(new ApiError('request.malformed_json'), undefined);
    }
  });

  // ---- abuse limits: request rates (src/api/ratelimit.ts), counted before anything else is done ----
  if (limiter) {
    app.decorateRequest('rateDecision', null);
    // A callback hook (no promise per request). A refused request is answered here: no routing, no database.
    app.addHook('onRequest', (req, reply, done) => {
      const counted = (req.raw as CountedRequest)[COUNTED];
      if (counted) {
        // Counted already by the answer-from-memory step, which handed the request on.
        req.rateDecision = counted;
        setRateLimitHeaders(counted, reply);
        return done();
      }
      const now = nowMs();
      const client = clientKey(req.ip);
      const d = req.url.startsWith(API_PREFIX)
        ? limiter.admit(credentialKey(req.headers), client, now)
        : limiter.admitClient(client, now);
      if (!d.allowed) {
        reply.hijack();
        return writeRateLimited(reply.raw, d, now);
      }
      req.rateDecision = d;
      setRateLimitHeaders(d, reply);
      done();
    });
  }
  /** After authentication: a request counted by client IP is counted against its credential; false if refused. */
  function countCredential(req: FastifyRequest, reply: FastifyReply): boolean {
    const d = req.rateDecision;
    if (!limiter || !d?.provisional) return true;
    const now = nowMs();
    const c = (req.rateDecision = limiter.confirm(d, now));
    if (c.allowed) {
      setRateLimitHeaders(c, reply);
      return true;
    }
    reply.hijack();
    writeRateLimited(reply.raw, c, now);
    return false;
  }
  // ---- end of abuse limits ----

  app.setErrorHandler((err, req, reply) =>
    errorReply(reply, renderError(err, req), err instanceof ApiError ? err.headers : undefined),
  );

  /** 405 naming the methods the path does have (also sent as `Allow`). */
  function methodNotAllowed(req: FastifyRequest, matching: RegisteredPattern[]): ApiError {
    const allowed = [...new Set(matching.map((p) => p.method))].join(', ');
    return new ApiError('route.method_not_allowed', `${req.method} (allowed: ${allowed})`, { allow: allowed });
  }

  app.setNotFoundHandler((req, reply) => {
    const matching = moreSpecific(req.url.split('?')[0], -1);
    if (matching.length > 0) {
      const err = methodNotAllowed(req, matching);
      return errorReply(reply, renderError(err, req), err.headers);
    }
    return errorReply(reply, render('route.not_found'));
  });

  // A callback hook, not an async one: it runs on every response, and a promise per response showed in the profile.
  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('cache-control', 'no-store');
    // A kept answer is exactly what this path sends (the serialised envelope), so both paths answer the same bytes.
    const keep = keeping.get(req);
    if (keep && reply.statusCode === 200 && typeof payload === 'string') {
      // Written out field by field, not `{ ...keep, body }`: V8 gave each spread copy a map of its own, so the
      // answer-from-memory step's reads of these fields missed its inline caches on every request (--log-ic).
      const answer: CachedAnswer = { zoneId: keep.zoneId, permission: keep.permission, versions: keep.versions, body: Buffer.from(payload) };
      answers.put(req.url, answer);
    }
    done(null, payload);
  });

  /** Patterns with more static segments than `statics`, per `statics` (built on first use after the last definition). */
  const moreStatic = new Map<number, RegisteredPattern[]>();
  /** Patterns more specific than `statics` that match the path: a static path of another method shadows this route. */
  function moreSpecific(path: string, statics: number): RegisteredPattern[] {
    let pool = moreStatic.get(statics);
    if (!pool) moreStatic.set(statics, (pool = patterns.filter((p) => p.statics > statics)));
    const candidates = pool.filter((p) => p.regex.test(path));
    const best = Math.max(...candidates.map((p) => p.statics));
    return candidates.filter((p) => p.statics === best);
  }

  /** Every route defined, in order: the route table (tests generate their authorization matrix from it). */
  const routeSpecs: RouteSpec<any>[] = [];

  function defineRoute<B>(spec: RouteSpec<B>): void {
    routeSpecs.push(spec as RouteSpec<any>);
    const statics = spec.url.split('/').filter((s) => s && !s.startsWith(':')).length;
    const validate = spec.body ? compileBody<B>(spec.body, spec.family) : undefined;
    const keep = answersOn && spec.cacheable === true && spec.method === 'GET' && spec.permission !== undefined;
    moreStatic.clear();
    patterns.push({
      method: spec.method,
      regex: patternOf(spec.url),
      statics: spec.url.split('/').filter((s) => s && !s.startsWith(':')).length,
    });
    app.route({
      method: spec.method,
      url: `${API_PREFIX}${spec.url}`,
      // Identifiers, credentials and permissions are checked before the body is read or parsed, as an API gateway
      // does: an unauthenticated caller learns nothing from how its body would have been judged.
      onRequest: async (req, reply) => {
        // `DELETE .../settings` must not be taken for "delete the certificate whose id is settings".
        const shadowing = moreSpecific(req.url.split('?')[0], statics);
        if (shadowing.length > 0) throw methodNotAllowed(req, shadowing);
        const params = req.params as Record<string, string>;
        for (const name of ['zone_id', 'account_id'] as const) {
          if (params[name] !== undefined && !HEX32_RE.test(params[name])) {
            throw new ApiError('route.bad_identifier', req.url.split('?')[0]);
          }
        }
        // One read of the versions, then the token and the zone from memory while nothing changed.
        const lookups = await services.tenancy.lookups(params.zone_id ?? null);
        const principal = await authenticate(lookups, req.headers).catch((err: unknown) => {
          if (limiter && req.rateDecision && err instanceof ApiError) limiter.forget(req.rateDecision); // abuse limits
          if (spec.invalidTokenError && err instanceof ApiError && err.kind === 'auth.invalid_token') {
            throw new ApiError(spec.invalidTokenError);
          }
          throw err;
        });
        if (!countCredential(req, reply)) return; // abuse limits: refused once counted against the credential
        const ctx = { req, principal, params, versions: lookups.versions } as RouteContext<B>;
        if (params.zone_id !== undefined) {
          const zone = spec.permission
            ? await authorizeZone(lookups, principal, params.zone_id, spec.permission)
            : null;
          if (zone) {
            ctx.zone = zone;
            ctx.scope = { type: 'zone', id: zone.id, accountId: zone.accountId, zone };
          }
        } else if (params.account_id !== undefined && spec.permission) {
          await authorizeAccount(lookups, principal, params.account_id, spec.permission);
          ctx.scope = { type: 'account', id: params.account_id, accountId: params.account_id };
        }
        contexts.set(req, ctx);
      },
      handler: async (req, reply) => {
        const ctx = contexts.get(req) as RouteContext<B>;
        ctx.query = req.query as RouteContext['query'];
        if (validate) {
          if (req.body === undefined || req.body === null) throw new ApiError('request.body_required');
          ctx.body = validate(req.body);
        }
        const r = await spec.handler(ctx);
        if (keep && ctx.zone) keeping.set(req, { zoneId: ctx.zone.id, permission: spec.permission!, versions: ctx.versions });
        return reply
          .code(r.status ?? spec.status ?? 200)
          .header('content-type', 'application/json; charset=utf-8')
          .send(ok(r.result, r.resultInfo, r.messages));
      },
    });
  }

  return Object.assign(app, { defineRoute, routeSpecs: routeSpecs as readonly RouteSpec<any>[], answers }) as FastifyInstance & {
    defineRoute: typeof defineRoute;
    routeSpecs: readonly RouteSpec<any>[];
    answers: AnswerCache;
  };
}

export type CertplaneServer = ReturnType<typeof buildServer> & {
  defineRoute: <B>(spec: RouteSpec<B>) => void;
  readonly routeSpecs: readonly RouteSpec<any>[];
  /** Answers kept ready to send (src/api/answers.ts). */
  readonly answers: AnswerCache;
};

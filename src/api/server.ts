/**
 * The HTTP binding: Fastify, Cloudflare's `/client/v4` paths, and the translation of every outcome into the
 * envelope. Handlers return domain values; `defineRoute` does authentication, authorisation, body validation and
 * envelope building, so no handler repeats it.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TSchema } from '@sinclair/typebox';
import type { AccessScope, AccessService } from '../domain/access.js';
import type { AopService } from '../domain/aop.js';
import { DomainError } from '../domain/errors.js';
import { HEX32_RE } from '../domain/shared.js';
import type { Permission, Zone } from '../domain/model.js';
import type { Principal, TenancyService } from '../domain/tenancy.js';
import { StorageError } from '../storage/errors.js';
import { authenticate, authorizeAccount, authorizeZone } from './auth.js';
import { fail, ok, type ResultInfo, type WireMessage } from './envelope.js';
import { ApiError, render, type ApiErrorKind, type ErrorFamily, type RenderedError } from './errors.js';
import { compileBody } from './validate.js';

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
      `connection: close\r\n\r\n${body}`,
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

export function buildServer(services: ApiServices, options: ApiOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    routerOptions: { maxParamLength: 1024, ignoreTrailingSlash: true, ignoreDuplicateSlashes: false },
    // Requests Node's HTTP parser rejects (bad framing, oversized headers) still get Cloudflare's envelope.
    clientErrorHandler: (err, socket) => {
      if (!socket.writable) return socket.destroy();
      const big = (err as { code?: string }).code === 'HPE_HEADER_OVERFLOW';
      endWithEnvelope(
        socket,
        big ? { status: 431, error: { code: 6031, message: 'Request header fields too large' } } : render('request.bad_http'),
      );
    },
    // Node would answer an HTTP/1.1 request without Host itself, with an empty 400: the onRequest hook below does.
    http: { requireHostHeader: false },
    // Errors the router raises before any route runs (bad URL encoding, over-long segment) get the envelope too.
    frameworkErrors: (err, req, reply) => errorReply(reply, renderError(err, req)),
  });
  // What Node's HTTP server would answer by itself, outside Fastify, gets the envelope too. An Expect other than
  // 100-continue: Node answers 417 with an empty body.
  app.server.on('checkExpectation', (_req, res) => {
    const { status, error } = render('request.expectation_failed', 'only 100-continue is supported');
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
    res.end(JSON.stringify(fail([error])));
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
  app.addHook('onSend', (_req, reply, payload, done) => {
    reply.header('cache-control', 'no-store');
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
      onRequest: async (req) => {
        // `DELETE .../settings` must not be taken for "delete the certificate whose id is settings".
        const shadowing = moreSpecific(req.url.split('?')[0], statics);
        if (shadowing.length > 0) throw methodNotAllowed(req, shadowing);
        const params = req.params as Record<string, string>;
        for (const name of ['zone_id', 'account_id'] as const) {
          if (params[name] !== undefined && !HEX32_RE.test(params[name])) {
            throw new ApiError('route.bad_identifier', req.url.split('?')[0]);
          }
        }
        // One read of the tenancy version, then the token and the zone from memory while nothing changed.
        const lookups = await services.tenancy.lookups();
        const principal = await authenticate(lookups, req.headers).catch((err: unknown) => {
          if (spec.invalidTokenError && err instanceof ApiError && err.kind === 'auth.invalid_token') {
            throw new ApiError(spec.invalidTokenError);
          }
          throw err;
        });
        const ctx = { req, principal, params } as RouteContext<B>;
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
        return reply
          .code(r.status ?? spec.status ?? 200)
          .header('content-type', 'application/json; charset=utf-8')
          .send(ok(r.result, r.resultInfo, r.messages));
      },
    });
  }

  return Object.assign(app, { defineRoute, routeSpecs: routeSpecs as readonly RouteSpec<any>[] }) as FastifyInstance & {
    defineRoute: typeof defineRoute;
    routeSpecs: readonly RouteSpec<any>[];
  };
}

export type CertplaneServer = ReturnType<typeof buildServer> & {
  defineRoute: <B>(spec: RouteSpec<B>) => void;
  readonly routeSpecs: readonly RouteSpec<any>[];
};

/**
 * Request rate limits, Cloudflare's way (docs/compatibility.md "Abuse limits"): so many requests per window per
 * credential (Cloudflare: 1200 per 5 minutes per user or token) and per client IP (Cloudflare: 200 per second).
 * Over a limit, every request is refused with 429 for one whole window ("all API calls for the next five minutes
 * will be blocked"), before any work is done: no database access, no body read.
 *
 * Who is counted:
 * - every request, against its client IP (`ip` policy);
 * - a request presenting a credential this node has seen authenticate, against that credential (`default` policy:
 *   a bearer token, or a user's email + global key);
 * - any other request (no credentials, malformed or wrong ones, or a credential not yet seen here), against the
 *   client IP in a bucket of the `default` policy: guessing tokens costs the guesser's IP, not a fresh bucket per
 *   guess. When such a request then authenticates, its count moves from the IP to the credential (`confirm`).
 *
 * Cost per request: one or two Map lookups and one small decision object; the counters are fixed windows that start
 * at a key's first request. Memory is bounded: a counter holds at most `maxKeys` keys, drops expired ones at most once
 * per window when it needs room, and beyond that forgets its oldest key. Counters live in this process: with several
 * API nodes each node counts on its own (docs/deployment.md).
 *
 * Contract for callers (the Fastify hooks in server.ts, and any path that answers before Fastify):
 *   const d = limiter.admit(credentialKey(headers), clientKey(ip), now)
 *   if (!d.allowed) → writeRateLimited(res, d, now) and stop;            otherwise setRateLimitHeaders(d, now, reply)
 *   after authentication succeeded: if (d.provisional) d = limiter.confirm(d, now) (and check d.allowed again)
 *   after authentication failed:    limiter.forget(d)
 * A path that wants to answer only verified credentials checks `limiter.verified(key)` before `admit`.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { fail } from './envelope.js';
import { render } from './errors.js';

export interface RatePolicySettings {
  /** Requests per window; 0 turns this limit off. */
  limit: number;
  windowSeconds: number;
}

export interface RateLimitSettings {
  /** Per credential (token, or user by email + key); unauthenticated requests by client IP. */
  perCredential: RatePolicySettings;
  /** Per client IP, every request. */
  perIp: RatePolicySettings;
  /** Largest number of keys one counter remembers (default 100 000). */
  maxKeys?: number;
}

/** A named policy, with its constant header values computed once. */
class Policy {
  readonly policyHeader: string;
  readonly limitHeader: string;
  constructor(
    readonly name: string,
    readonly limit: number,
    readonly windowSeconds: number,
  ) {
    this.policyHeader = `"${name}";q=${limit};w=${windowSeconds}`;
    this.limitHeader = String(limit);
  }
}

/** The answer for one request. Valid as long as the caller likes: nothing in it is shared. */
export class RateDecision {
  constructor(
    readonly allowed: boolean,
    readonly policy: Policy,
    readonly remaining: number,
    /** Seconds until the window resets (rounded up); while blocked, until the block ends. */
    readonly resetSeconds: number,
    /** Seconds until a request can succeed (rounded up); 0 when allowed. */
    readonly retryAfterSeconds: number,
    /** Counted against the client IP's `default` bucket until `confirm` moves it to the credential. */
    readonly provisional: boolean,
    readonly credential: string | null,
    readonly client: string,
  ) {}
  get limit(): number {
    return this.policy.limit;
  }
}

interface Bucket {
  start: number;
  count: number;
  blockedUntil: number;
}

/**
 * Fixed-window counters by key. `take` reports its outcome in `remaining`, `resetMs` and `retryAfterMs` (read them
 * right after the call; JavaScript runs one request at a time between awaits), so counting allocates nothing for a
 * key already known.
 */
export class WindowCounter {
  private readonly buckets = new Map<string, Bucket>();
  private nextSweep = 0;
  readonly windowMs: number;
  remaining = 0;
  resetMs = 0;
  retryAfterMs = 0;

  constructor(
    readonly limit: number,
    windowSeconds: number,
    readonly maxKeys = 100_000,
  ) {
    this.windowMs = windowSeconds * 1000;
  }

  get size(): number {
    return this.buckets.size;
  }

  has(key: string): boolean {
    return this.buckets.has(key);
  }

  delete(key: string): void {
    this.buckets.delete(key);
  }

  /** Counts one request for `key`; false when it is over the limit (then blocked for one window). */
  take(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { start: now, count: 0, blockedUntil: 0 };
      this.makeRoom(now);
      this.buckets.set(key, b);
    }
    return this.count(b, now);
  }

  /** Like `take`, for a key already known; undefined (nothing counted) when it is not. */
  takeKnown(key: string, now: number): boolean | undefined {
    const b = this.buckets.get(key);
    return b === undefined ? undefined : this.count(b, now);
  }

  /** Gives back one request counted by `take` in the current window. */
  refund(key: string, now: number): void {
    const b = this.buckets.get(key);
    if (b !== undefined && b.count > 0 && now - b.start < this.windowMs && now >= b.blockedUntil) b.count--;
  }

  private count(b: Bucket, now: number): boolean {
    if (now < b.blockedUntil) {
      // Refused requests are not counted and do not extend the block.
      this.remaining = 0;
      this.resetMs = this.retryAfterMs = b.blockedUntil - now;
      return false;
    }
    if (now - b.start >= this.windowMs) {
      b.start = now;
      b.count = 0;
    }
    if (b.count >= this.limit) {
      b.blockedUntil = now + this.windowMs;
      this.remaining = 0;
      this.resetMs = this.retryAfterMs = this.windowMs;
      return false;
    }
    b.count++;
    this.remaining = this.limit - b.count;
    this.resetMs = b.start + this.windowMs - now;
    this.retryAfterMs = 0;
    return true;
  }

  /** Before a new key: drop expired buckets (at most once per window), then, if still full, the oldest key. */
  private makeRoom(now: number): void {
    if (this.buckets.size < this.maxKeys) return;
    if (now >= this.nextSweep) {
      this.nextSweep = now + this.windowMs;
      for (const [k, b] of this.buckets) {
        if (now - b.start >= this.windowMs && now >= b.blockedUntil) this.buckets.delete(k);
      }
    }
    while (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
  }
}

const seconds = (ms: number): number => Math.ceil(ms / 1000);

export class RateLimiter {
  private readonly credentials: WindowCounter | null;
  /** Requests not (yet) tied to a verified credential, by client IP, under the credential policy. */
  private readonly unverified: WindowCounter | null;
  private readonly ips: WindowCounter | null;
  private readonly credentialPolicy: Policy;
  private readonly ipPolicy: Policy;

  constructor(settings: RateLimitSettings) {
    const { perCredential: c, perIp: i, maxKeys } = settings;
    this.credentialPolicy = new Policy('default', c.limit, c.windowSeconds);
    this.ipPolicy = new Policy('ip', i.limit, i.windowSeconds);
    this.credentials = c.limit > 0 ? new WindowCounter(c.limit, c.windowSeconds, maxKeys) : null;
    this.unverified = c.limit > 0 ? new WindowCounter(c.limit, c.windowSeconds, maxKeys) : null;
    this.ips = i.limit > 0 ? new WindowCounter(i.limit, i.windowSeconds, maxKeys) : null;
  }

  /** Whether `credential` authenticated on this node within its current window. */
  verified(credential: string | null): boolean {
    return credential !== null && this.credentials !== null && this.credentials.has(credential);
  }

  /** Counts a request of the API (`credential`: see `credentialKey`; null when none was presented). */
  admit(credential: string | null, client: string, now: number): RateDecision {
    const ips = this.ips;
    if (ips !== null && !ips.take(client, now)) return this.decision(ips, this.ipPolicy, false, false, credential, client);
    const known = this.credentials;
    if (known === null) {
      return ips !== null ? this.decision(ips, this.ipPolicy, true, false, credential, client) : this.unlimited(credential, client);
    }
    // A request refused here is not counted against the IP either.
    if (credential !== null) {
      const allowed = known.takeKnown(credential, now);
      if (allowed !== undefined) {
        if (!allowed) ips?.refund(client, now);
        return this.decision(known, this.credentialPolicy, allowed, false, credential, client);
      }
    }
    const unverified = this.unverified!;
    const allowed = unverified.take(client, now);
    if (!allowed) ips?.refund(client, now);
    return this.decision(unverified, this.credentialPolicy, allowed, true, credential, client);
  }

  /** Counts a request outside the API (the edge feed): the per-IP limit only. */
  admitClient(client: string, now: number): RateDecision {
    const ips = this.ips;
    if (ips === null) return this.unlimited(null, client);
    const allowed = ips.take(client, now);
    return this.decision(ips, this.ipPolicy, allowed, false, null, client);
  }

  /** A provisional request authenticated: its count moves from the client IP to the credential. */
  confirm(d: RateDecision, now: number): RateDecision {
    if (!d.provisional || d.credential === null || this.credentials === null) return d;
    this.unverified!.refund(d.client, now);
    const allowed = this.credentials.take(d.credential, now);
    return this.decision(this.credentials, this.credentialPolicy, allowed, false, d.credential, d.client);
  }

  /** Authentication failed: a credential counted as verified is counted by client IP again from now on. */
  forget(d: RateDecision): void {
    if (!d.provisional && d.credential !== null) this.credentials?.delete(d.credential);
  }

  private decision(
    c: WindowCounter,
    policy: Policy,
    allowed: boolean,
    provisional: boolean,
    credential: string | null,
    client: string,
  ): RateDecision {
    return new RateDecision(allowed, policy, c.remaining, seconds(c.resetMs), seconds(c.retryAfterMs), provisional, credential, client);
  }

  private unlimited(credential: string | null, client: string): RateDecision {
    return new RateDecision(true, this.ipPolicy, 0, 0, 0, false, credential, client);
  }

  /** Whether any limit is on (a limiter with none is never built). */
  static enabled(settings: RateLimitSettings): boolean {
    return settings.perCredential.limit > 0 || settings.perIp.limit > 0;
  }
}

/** The limiter for these settings, or null when every limit is off (then nothing is counted or sent). */
export function createRateLimiter(settings: RateLimitSettings | undefined): RateLimiter | null {
  return settings && RateLimiter.enabled(settings) ? new RateLimiter(settings) : null;
}

/**
 * What a request is counted by: the bearer token (normalised like `authenticate` does: scheme in any case, outer
 * spaces trimmed), else the email (lower case) and global key; null without credentials. A malformed value gives a
 * key that never authenticates, so it is counted by client IP.
 */
export function credentialKey(h: IncomingHttpHeaders): string | null {
  const a = h.authorization;
  if (a !== undefined) {
    const t = a.trim();
    return t.length > 7 && isBearer(t) ? t.slice(7) : null;
  }
  const email = h['x-auth-email'];
  const key = h['x-auth-key'];
  if (typeof email !== 'string' || typeof key !== 'string' || email === '' || key === '') return null;
  // A newline cannot occur in a header value, so the two parts cannot run into each other.
  return `${email.trim().toLowerCase()}\n${key.trim()}`;
}

/** `Bearer ` at the start, in any case, without allocating (`c | 0x20` is the lower case of an ASCII letter). */
function isBearer(t: string): boolean {
  for (let i = 0; i < 6; i++) if ((t.charCodeAt(i) | 0x20) !== BEARER.charCodeAt(i)) return false;
  return t.charCodeAt(6) === 32;
}
const BEARER = 'bearer';

/**
 * What a client is counted by: its IPv4 address (an IPv4-mapped IPv6 address counts as the IPv4 one), or its IPv6
 * /64 (one subscriber's network: counting single IPv6 addresses would give every client 2^64 budgets).
 */
export function clientKey(ip: string): string {
  if (ip.indexOf(':') === -1) return ip;
  if (ip.startsWith('::ffff:') && ip.indexOf('.') !== -1) return ip.slice(7);
  return ipv6Network(ip) ?? ip;
}

function ipv6Network(address: string): string | null {
  const zone = address.indexOf('%');
  const ip = zone === -1 ? address : address.slice(0, zone);
  const gap = ip.indexOf('::');
  let groups: string[];
  if (gap === -1) {
    groups = ip.split(':');
  } else {
    const head = gap === 0 ? [] : ip.slice(0, gap).split(':');
    const rest = ip.slice(gap + 2);
    const tail = rest === '' ? [] : rest.split(':');
    const tailGroups = tail.length + (tail.length > 0 && tail[tail.length - 1].includes('.') ? 1 : 0);
    const missing = 8 - head.length - tailGroups;
    if (missing < 1) return null;
    groups = [...head, ...new Array<string>(missing).fill('0'), ...tail];
  }
  if (groups.length < 4) return null;
  const prefix: string[] = [];
  for (let i = 0; i < 4; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(groups[i])) return null;
    prefix.push(parseInt(groups[i], 16).toString(16));
  }
  return `${prefix.join(':')}::/64`;
}

/** Where rate-limit headers go: a Fastify reply (`reply.header`), or a Node response (`setHeader`) before Fastify. */
export type HeaderTarget = { header(name: string, value: string): unknown } | ServerResponse;

function put(target: HeaderTarget, name: string, value: string): void {
  if ('setHeader' in target) target.setHeader(name, value);
  else target.header(name, value);
}

/**
 * The headers of an answer that was counted: `Ratelimit` and `Ratelimit-Policy` (Cloudflare's current docs, IETF
 * draft syntax) and `X-RateLimit-Limit` / `X-RateLimit-Remaining` (Cloudflare's earlier docs), on every answer;
 * a refused one also gets `Retry-After` and `X-RateLimit-Reset` (see `rateLimitHeaders`).
 */
export function setRateLimitHeaders(d: RateDecision, target: HeaderTarget): void {
  if (d.policy.limit === 0) return;
  put(target, 'ratelimit', `"${d.policy.name}";r=${d.remaining};t=${d.resetSeconds}`);
  put(target, 'ratelimit-policy', d.policy.policyHeader);
  put(target, 'x-ratelimit-limit', d.policy.limitHeader);
  put(target, 'x-ratelimit-remaining', String(d.remaining));
}

/** Every header of a refused request's answer. */
export function rateLimitHeaders(d: RateDecision, now: number): Record<string, string> {
  const h: Record<string, string> = {};
  setRateLimitHeaders(d, { header: (n, v) => (h[n] = v) });
  h['retry-after'] = String(d.retryAfterSeconds);
  h['x-ratelimit-reset'] = new Date(now + d.retryAfterSeconds * 1000).toUTCString();
  return h;
}

const RATE_LIMITED = render('rate.limited');
const RATE_LIMITED_BODY = JSON.stringify(fail([RATE_LIMITED.error]));

/**
 * Answers a refused request: 429 with Cloudflare's envelope (from the error catalogue) and the rate-limit headers,
 * written directly so that a refusal costs as little as possible. The only way a 429 is written.
 */
export function writeRateLimited(res: ServerResponse, d: RateDecision, now: number): void {
  res.writeHead(RATE_LIMITED.status, {
    ...rateLimitHeaders(d, now),
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(RATE_LIMITED_BODY)),
    'cache-control': 'no-store',
  });
  res.end(RATE_LIMITED_BODY);
}

/**
 * Fuzz models of the routes: for each route of the route table, a valid request built from real seeded objects, and
 * a fast-check arbitrary of requests that break it in exactly one place the server must notice (the "breaker":
 * credentials, one path parameter, the query, the body, the HTTP framing or the method), plus noise that must not
 * matter (extra headers, odd content types, unknown query parameters, a body on a GET).
 *
 * A breaker must really make the request invalid: each is filtered by a conservative oracle that says whether the
 * server *could* accept it (a real id, a hostname that normalises to a real one, a body whose certificate would be
 * new, ...). Those are never sent; everything else must be answered with a 4xx envelope.
 */
import fc from 'fast-check';
import type { TSchema } from '@sinclair/typebox';
import { isSubdomainOrEqual, normalizeHostname } from '../../src/domain/hostnames.js';
import { createHash } from 'node:crypto';
import { keyMatchesCertificate, parseCertificates, parsePrivateKey, type ParsedCertificate } from '../../src/pki/index.js';
import { decodeBase64Strict, scanPem } from '../../src/pki/pem.js';
import {
  AccessCreateBody,
  AccessSettingsBody,
  AccessUpdateBody,
  HostnamesPutBody,
  UploadBody,
  ZoneSettingBody,
} from '../../src/api/schemas.js';
import { serialize, type RawRequest } from './fuzz-http.js';
import {
  corruptText,
  garbageBody,
  smallGarbage,
  hostileHostname,
  hostileJsonFragment,
  hostileKey,
  hostilePem,
  hostileSegment,
  hostileString,
  nearMiss,
  shortHostileString,
  pct,
  tryDecode,
  type PemMaterial,
} from './fuzz-values.js';

/** What the database holds, as the generators need it. */
export interface World {
  port: number;
  /** All permissions on everything. */
  token: string;
  /** Read permissions only, on everything. */
  readOnlyToken: string;
  /** All permissions, on another account only. */
  otherAccountToken: string;
  /** Expired and revoked tokens. */
  deadTokens: string[];
  email: string;
  apiKey: string;
  edgeCredential: string;
  zoneId: string;
  zoneName: string;
  accountId: string;
  /** Every zone and account id that exists. */
  zoneIds: string[];
  accountIds: string[];
  /** Names of the zones of the main account. */
  accountZoneNames: string[];
  /** Every certificate id that exists (AOP and Access). */
  certIds: string[];
  /** Live hostname-certificate ids of the main zone (a PUT of associations may name them). */
  hostnameCertIds: string[];
  /** Hostnames with an AOP association. */
  associationHostnames: string[];
  zoneCert: { id: string; pem: string; key: string };
  hostnameCert: { id: string; pem: string; key: string };
  accountCa: { id: string; pem: string; name: string; hostnames: string[] };
  zoneCa: { id: string; pem: string; name: string; hostnames: string[] };
  /** Never uploaded: a leaf with its key, and a CA. */
  freshLeaf: { pem: string; key: string };
  freshCa: string;
  /** Other certificates and keys. */
  otherPems: string[];
  otherKeys: string[];
  /** Fingerprints (SHA-256 hex) stored per AOP kind and per Access scope. */
  fingerprints: { zone: string[]; hostname: string[]; account: string[]; zoneAccess: string[] };
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';

export interface RouteEntry {
  method: Method;
  /** Full path pattern, e.g. /client/v4/zones/:zone_id/origin_tls_client_auth. */
  url: string;
  /** Request body schema, when the route has one. */
  body?: TSchema;
}

type QueryKind = 'page' | 'page+status' | 'edge';
type BodyKind = 'upload-zone' | 'upload-hostname' | 'zone-setting' | 'hostnames-put' | 'access-create' | 'access-update' | 'access-settings' | 'edge-ack' | 'edge-health';

export interface FuzzRoute {
  name: string;
  method: Method;
  url: string;
  params: string[];
  validParams: Record<string, string>;
  edge: boolean;
  /** Tokens that pass authentication and authorization here. */
  passingTokens: string[];
  bodyKind?: BodyKind;
  validBody?: Record<string, unknown>;
  query?: { kind: QueryKind; maxPerPage: number };
  /** Methods some route answers on this route's valid path (a method breaker avoids them). */
  routedMethods: string[];
  /** Patterns of the other routes of the same method. */
  siblings: RegExp[];
}

export interface FuzzCase {
  /** Where the request is broken, and how. */
  site: string;
  label: string;
  bytes: Buffer;
  /** Broken framing: send on a connection of its own (see RawClient.exchangeClosing). */
  closing: boolean;
  /** ... and half-close it at once: the server can only judge the request at the end of the stream. */
  halfClose: boolean;
}

const describeCase = (c: FuzzCase) => {
  const head = c.bytes.subarray(0, 600).toString('latin1');
  return `[${c.site}: ${c.label}] ${c.bytes.length} bytes: ${JSON.stringify(head)}${c.bytes.length > 600 ? '…' : ''}`;
};

// ---- route models ------------------------------------------------------------------------------------------------

const paramsOf = (url: string) => [...url.matchAll(/:([a-z_]+)/g)].map((m) => m[1]);

function patternRegex(url: string): RegExp {
  const source = url
    .split('/')
    .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}/?$`);
}

export function fillPath(url: string, params: Record<string, string>): string {
  return url.replace(/:([a-z_]+)/g, (_m, name: string) => params[name]);
}

/** Builds the model of one route; throws for a route or body the fuzzer has no model for (so none is forgotten). */
export function fuzzRoute(entry: RouteEntry, all: RouteEntry[], w: World): FuzzRoute {
  const { method, url } = entry;
  const edge = url.startsWith('/edge/');
  const access = url.includes('/access/certificates');
  const accountScope = url.includes('/accounts/:account_id');
  const params = paramsOf(url);
  const validParams: Record<string, string> = {};
  for (const p of params) {
    if (p === 'zone_id') validParams[p] = w.zoneId;
    else if (p === 'account_id') validParams[p] = w.accountId;
    else if (p === 'hostname') validParams[p] = w.associationHostnames[0];
    else if (p === 'certificate_id') {
      validParams[p] = access
        ? accountScope
          ? w.accountCa.id
          : w.zoneCa.id
        : url.includes('/hostnames/certificates')
          ? w.hostnameCert.id
          : w.zoneCert.id;
    } else throw new Error(`fuzz: no real value for parameter :${p} of ${method} ${url}; add one to fuzzRoute`);
  }

  let bodyKind: BodyKind | undefined;
  let validBody: Record<string, unknown> | undefined;
  const ca = accountScope ? w.accountCa : w.zoneCa;
  if (entry.body === UploadBody) {
    bodyKind = url.includes('/hostnames/certificates') ? 'upload-hostname' : 'upload-zone';
    validBody = { certificate: w.freshLeaf.pem, private_key: w.freshLeaf.key };
  } else if (entry.body === ZoneSettingBody) {
    bodyKind = 'zone-setting';
    validBody = { enabled: true };
  } else if (entry.body === HostnamesPutBody) {
    bodyKind = 'hostnames-put';
    validBody = { config: [{ hostname: w.associationHostnames[0], cert_id: w.hostnameCert.id, enabled: true }] };
  } else if (entry.body === AccessCreateBody) {
    bodyKind = 'access-create';
    validBody = { name: 'fuzz CA', certificate: w.freshCa, associated_hostnames: [] };
  } else if (entry.body === AccessUpdateBody) {
    bodyKind = 'access-update';
    validBody = { name: ca.name, associated_hostnames: ca.hostnames };
  } else if (entry.body === AccessSettingsBody) {
    bodyKind = 'access-settings';
    validBody = { settings: [{ hostname: w.associationHostnames[0], china_network: false, client_certificate_forwarding: true }] };
  } else if (url === '/edge/v1/ack') {
    bodyKind = 'edge-ack';
    validBody = { version: 0, failed: [] };
  } else if (url === '/edge/v1/health') {
    bodyKind = 'edge-health';
    validBody = { healthy: true };
  } else if (entry.body) {
    throw new Error(`fuzz: no body model for ${method} ${url}; add one to fuzzRoute`);
  } else if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
    throw new Error(`fuzz: ${method} ${url} has no body schema; add a body model to fuzzRoute`);
  }

  let query: FuzzRoute['query'];
  if (method === 'GET') {
    if (url === '/client/v4/zones') query = { kind: 'page', maxPerPage: 50 };
    else if (url.endsWith('/origin_tls_client_auth/hostnames')) query = { kind: 'page+status', maxPerPage: 1000 };
    else if (url.endsWith('/access/certificates')) query = { kind: 'page', maxPerPage: 1000 };
    else if (url === '/edge/v1/config') query = { kind: 'edge', maxPerPage: 0 };
  }

  const scoped = params.includes('zone_id') || params.includes('account_id');
  const passingTokens = edge
    ? [w.edgeCredential]
    : [w.token, ...(method === 'GET' || !scoped ? [w.readOnlyToken] : []), ...(scoped ? [] : [w.otherAccountToken])];

  const path = fillPath(url, validParams);
  const routedMethods = new Set<string>();
  for (const r of all) {
    if (patternRegex(r.url).test(path)) {
      routedMethods.add(r.method);
      if (r.method === 'GET') routedMethods.add('HEAD');
    }
  }

  return {
    name: `${method} ${url}`,
    method,
    url,
    params,
    validParams,
    edge,
    passingTokens,
    bodyKind,
    validBody,
    query,
    routedMethods: [...routedMethods],
    siblings: all.filter((r) => r.method === method && r.url !== url).map((r) => patternRegex(r.url)),
  };
}

// ---- oracles: could the server accept this? (conservative: "yes" when unsure) ---------------------------------------

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const onlyKeys = (v: Record<string, unknown>, keys: string[]) => Object.keys(v).every((k) => keys.includes(k));
/** Ajv counts code points for maxLength (never more than UTF-16 units, never fewer than half of them). */
const within = (s: unknown, max: number): s is string =>
  typeof s === 'string' && (s.length <= max || (s.length <= 2 * max && [...s].length <= max));

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Could this PEM be a certificate the scope does not store yet? (Its first block is read as the server reads it.) */
function firstCertificate(pem: string, stored: string[]): ParsedCertificate | null {
  const first = scanPem(pem).find((b) => b.label === 'CERTIFICATE');
  const der = first && first.terminated ? decodeBase64Strict(first.body) : null;
  if (!der || stored.includes(sha256(der))) return null; // unparseable, or a duplicate
  try {
    return parseCertificates(pem)[0];
  } catch {
    return null;
  }
}

function hostnameMayPass(h: unknown, zones: string[]): boolean {
  if (typeof h !== 'string') return false;
  const n = normalizeHostname(h);
  return n.ok && zones.some((z) => isSubdomainOrEqual(n.hostname, z));
}

/** `{ [key]: [objects...] }` and nothing else, at most `max` entries, each accepted by `entry`. */
const objectList = (v: Record<string, unknown>, key: string, max: number, entry: (e: Record<string, unknown>) => boolean) => {
  const list = v[key];
  return onlyKeys(v, [key]) && Array.isArray(list) && list.length <= max && list.every((e) => isObject(e) && entry(e));
};

/** checkName in the Access domain: non-empty, at most 255 UTF-16 units, no control characters. */
const nameMayPass = (n: unknown) => typeof n === 'string' && n.trim() !== '' && n.length <= 255 && !/[\u0000-\u001f\u007f]/.test(n);

export function bodyMayPass(route: FuzzRoute, w: World, v: unknown): boolean {
  if (!isObject(v)) return false;
  switch (route.bodyKind) {
    case 'upload-zone':
    case 'upload-hostname': {
      if (!onlyKeys(v, ['certificate', 'private_key', 'bundle_method'])) return false;
      if (!within(v.certificate, 65536) || !within(v.private_key, 65536)) return false;
      if (v.bundle_method !== undefined && !within(v.bundle_method, 32)) return false;
      const leaf = firstCertificate(v.certificate, route.bodyKind === 'upload-zone' ? w.fingerprints.zone : w.fingerprints.hostname);
      if (!leaf || leaf.isCA) return false;
      try {
        return keyMatchesCertificate(parsePrivateKey(v.private_key), leaf);
      } catch {
        return false;
      }
    }
    case 'zone-setting':
      return onlyKeys(v, ['enabled']) && typeof v.enabled === 'boolean';
    case 'hostnames-put':
      return objectList(v, 'config', 1000, (e) =>
        onlyKeys(e, ['hostname', 'cert_id', 'enabled']) &&
        typeof e.cert_id === 'string' &&
        w.hostnameCertIds.includes(e.cert_id.toLowerCase()) &&
        hostnameMayPass(e.hostname, [w.zoneName]) &&
        (e.enabled === undefined || e.enabled === null || typeof e.enabled === 'boolean'),
      );
    case 'access-create': {
      if (!onlyKeys(v, ['name', 'certificate', 'associated_hostnames'])) return false;
      if (!within(v.name, 255) || !nameMayPass(v.name) || !within(v.certificate, 65536)) return false;
      const h = v.associated_hostnames;
      if (h !== undefined && !(Array.isArray(h) && h.length <= 100 && h.every((x) => within(x, 255) && hostnameMayPass(x, w.accountZoneNames)))) return false;
      return firstCertificate(v.certificate, route.url.includes('/accounts/') ? w.fingerprints.account : w.fingerprints.zoneAccess) !== null;
    }
    case 'access-update': {
      if (!onlyKeys(v, ['name', 'associated_hostnames'])) return false;
      if (v.name !== undefined && !(within(v.name, 255) && nameMayPass(v.name))) return false;
      const h = v.associated_hostnames;
      return Array.isArray(h) && h.length <= 100 && h.every((x) => within(x, 255) && hostnameMayPass(x, w.accountZoneNames));
    }
    case 'access-settings':
      return objectList(v, 'settings', 1000, (e) =>
        onlyKeys(e, ['hostname', 'china_network', 'client_certificate_forwarding']) &&
        within(e.hostname, 255) &&
        hostnameMayPass(e.hostname, w.accountZoneNames) &&
        typeof e.china_network === 'boolean' &&
        typeof e.client_certificate_forwarding === 'boolean',
      );
    case 'edge-ack':
      return (
        onlyKeys(v, ['version', 'failed']) &&
        Number.isInteger(v.version) &&
        (v.version as number) >= 0 &&
        Array.isArray(v.failed) &&
        v.failed.every((f) => isObject(f) && onlyKeys(f, ['hostname', 'reason']) && typeof f.hostname === 'string' && typeof f.reason === 'string')
      );
    case 'edge-health':
      return onlyKeys(v, ['healthy', 'reason']) && typeof v.healthy === 'boolean' && (v.reason === undefined || v.reason === null || typeof v.reason === 'string');
    default:
      return true;
  }
}

/** The server decodes the body as UTF-8 and parses it as JSON; blank bodies count as no body. */
function bytesMayPass(route: FuzzRoute, w: World, body: Buffer): boolean {
  const text = body.toString('utf8');
  if (text.trim() === '') return false;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return false;
  }
  return bodyMayPass(route, w, v);
}

/** A path parameter in wire form that could name a real object (or change which route answers). */
export function paramMayPass(route: FuzzRoute, name: string, wire: string, w: World): boolean {
  if (wire === '' || /[?#\s]/.test(wire)) return true;
  if (wire.includes('/')) return !wire.split('/').some((s) => s === '.' || s === '..');
  const v = tryDecode(wire);
  if (v === null) return false;
  // A value that makes the path another route's ("settings" for a certificate id).
  const paths = [wire, v].map((x) => fillPath(route.url, { ...route.validParams, [name]: x }));
  if (route.siblings.some((re) => paths.some((p) => re.test(p)))) return true;
  switch (name) {
    case 'zone_id':
    case 'account_id':
      return w.zoneIds.includes(v) || w.accountIds.includes(v);
    case 'certificate_id':
      return w.certIds.includes(v.toLowerCase());
    case 'hostname': {
      const n = normalizeHostname(v);
      return n.ok && w.associationHostnames.includes(n.hostname);
    }
    default:
      return true;
  }
}

type Header = [string, string | Buffer];
const text = (v: string | Buffer) => (typeof v === 'string' ? v : v.toString('latin1'));

/** Could these headers authenticate on this route (as Node parses them: first Authorization wins, others join)? */
export function authMayPass(route: FuzzRoute, w: World, headers: Header[]): boolean {
  const get = (name: string) => {
    const vs = headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => text(v).trim());
    return vs.length === 0 ? undefined : vs;
  };
  const authorization = get('authorization')?.[0];
  if (authorization !== undefined) {
    const m = route.edge ? /^Bearer (\S+)$/i.exec(authorization) : /^Bearer ([A-Za-z0-9_-]{1,200})$/i.exec(authorization);
    return !!m && route.passingTokens.includes(m[1]);
  }
  if (route.edge) return false;
  const key = get('x-auth-key')?.join(', ');
  return get('x-auth-email') !== undefined && key !== undefined && key.trim() === w.apiKey;
}

/** Query pairs as the server's parser may read them: decoded or raw, '+' as space or not. */
function queryInterpretations(pairs: [string, string | null][]): Record<string, string | string[]>[] {
  const variants = [
    (s: string) => s,
    (s: string) => tryDecode(s) ?? s,
    (s: string) => tryDecode(s.replace(/\+/g, ' ')) ?? s.replace(/\+/g, ' '),
  ];
  return variants.map((dec) => {
    const q: Record<string, string | string[]> = {};
    for (const [k, v] of pairs) {
      const key = dec(k);
      const value = v === null ? '' : dec(v);
      const prev = q[key];
      q[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
    return q;
  });
}

const STATUSES = ['active', 'pending_deployment', 'pending_deletion', 'deleted', 'deployment_timed_out', 'deletion_timed_out'];

export function queryMayPass(route: FuzzRoute, pairs: [string, string | null][]): boolean {
  const kind = route.query?.kind;
  if (!kind) return true;
  return queryInterpretations(pairs).some((q) => {
    const int = (name: string, min: number, max: number, digits: number) => {
      const v = q[name];
      if (v === undefined || v === '') return true;
      if (Array.isArray(v)) return false;
      return new RegExp(`^\\d{1,${digits}}$`).test(v) && Number(v) >= min && Number(v) <= max;
    };
    if (kind === 'edge') {
      const after = q.after;
      const afterOk = after === undefined || after === '' || (typeof after === 'string' && /^\d{1,15}$/.test(after));
      return afterOk && int('wait', 0, 30, 15);
    }
    if (!int('page', 1, 1_000_000, 9) || !int('per_page', 1, route.query!.maxPerPage, 9)) return false;
    if (kind === 'page+status') {
      const s = q.status;
      if (Array.isArray(s)) return false;
      if (s === undefined || s === '') return true;
      const parts = s.split(',').map((p) => p.trim().toLowerCase());
      return parts.includes('all') || parts.every((p) => STATUSES.includes(p));
    }
    return true;
  });
}

/** Query parameter names the server reads on this route (noise must not use them). */
const readNames = (route: FuzzRoute) => (route.query?.kind === 'edge' ? ['after', 'wait'] : route.query ? ['page', 'per_page', 'status', 'name'] : []);

// ---- request assembly ----------------------------------------------------------------------------------------------

interface Parts {
  method: string;
  params: Record<string, string>;
  query: [string, string | null][];
  auth: Header[];
  contentType: string | null;
  noiseHeaders: Header[];
  body: Buffer | undefined;
  trailingSlash: boolean;
}

function target(route: FuzzRoute, p: Parts): string {
  let path = fillPath(route.url, p.params);
  if (p.trailingSlash) path += '/';
  const q = p.query.map(([k, v]) => (v === null ? k : `${k}=${v}`)).join('&');
  return q ? `${path}?${q}` : path;
}

function toRequest(route: FuzzRoute, w: World, p: Parts): RawRequest {
  const headers: Header[] = [['host', `127.0.0.1:${w.port}`], ...p.auth, ...p.noiseHeaders];
  if (p.body !== undefined) {
    if (p.contentType !== null) headers.push(['content-type', p.contentType]);
    headers.push(['content-length', String(p.body.length)]);
  }
  return { method: p.method, target: target(route, p), headers, body: p.body };
}

const validAuth = (route: FuzzRoute, w: World): Header[] => [['authorization', `Bearer ${route.edge ? w.edgeCredential : w.token}`]];
const validBodyBytes = (route: FuzzRoute) => (route.validBody ? Buffer.from(JSON.stringify(route.validBody)) : undefined);

function baseParts(route: FuzzRoute, w: World): Parts {
  return {
    method: route.method,
    params: { ...route.validParams },
    query: [],
    auth: validAuth(route, w),
    contentType: 'application/json',
    noiseHeaders: [],
    body: validBodyBytes(route),
    trailingSlash: false,
  };
}

// ---- noise: must not matter ------------------------------------------------------------------------------------------

/** Header values a parser must accept: visible ASCII, space, tab and obs-text (no CR, LF or other controls). */
// UTF-8 never encodes non-ASCII with bytes below 0x80, so dropping ASCII controls from the string is enough.
const headerSafe = (s: string) => Buffer.from(s.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, ''), 'utf8');
const RESERVED_HEADERS = ['host', 'content-length', 'transfer-encoding', 'authorization', 'x-auth-email', 'x-auth-key', 'content-type', 'connection', 'expect', 'upgrade', 'te', 'trailer', 'keep-alive'];

const noiseHeader: fc.Arbitrary<Header> = fc.oneof(
  fc.tuple(
    fc.constantFrom('user-agent', 'accept', 'accept-encoding', 'accept-language', 'cookie', 'referer', 'origin', 'x-forwarded-for', 'x-forwarded-host', 'x-real-ip', 'cf-connecting-ip', 'x-http-method-override', 'x-original-url', 'x-rewrite-url', 'forwarded', 'range', 'if-none-match', 'x-request-id'),
    shortHostileString,
  ).map(([n, v]): Header => [n, headerSafe(v)]),
  fc.tuple(fc.stringMatching(/^[a-z][a-z0-9!#$%&'*+.^_`|~-]{0,30}$/), shortHostileString)
    .filter(([n]) => !RESERVED_HEADERS.includes(n))
    .map(([n, v]): Header => [n, headerSafe(v)]),
);

const contentTypeNoise: fc.Arbitrary<string | null> = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'text/plain',
      'text/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/octet-stream',
      'application/vnd.api+json',
      '*/*',
      'application/*',
    ),
  },
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constantFrom(';', 'json', 'application/', '/json', '\u00e9/\u00e9', 'a/b; c', 'application/json;;;') },
);

function queryNoise(route: FuzzRoute): fc.Arbitrary<[string, string | null][]> {
  const reserved = readNames(route);
  const pair = fc.tuple(
    fc.oneof(fc.constantFrom('x', 'cursor', 'order', 'direction', 'match', '__proto__', 'constructor', 'a[b]', 'page[]', 'per_page%00', 'PAGE', '%70age'), shortHostileString.map(pct)),
    fc.oneof(shortHostileString.map(pct), fc.constantFrom(null, '', '%', '%zz', '%00', '..%2F', "'%20OR%201=1--")),
  ).filter(([k]) => !reserved.includes(k) && !reserved.includes(tryDecode(k) ?? k) && !reserved.includes((tryDecode(k) ?? k).replace(/\+/g, ' ')));
  return fc.array(pair, { maxLength: 3 });
}

// ---- breakers -----------------------------------------------------------------------------------------------------------

interface Breaker {
  site: string;
  label: string;
  apply: (p: Parts) => Parts;
  closing?: boolean;
  halfClose?: boolean;
  /** Replaces the request's bytes entirely (framing breakers build them from the request). */
  bytes?: (req: RawRequest) => Buffer;
}

function authBreakers(route: FuzzRoute, w: World): fc.Arbitrary<Breaker> {
  const bearerValue = fc.oneof(
    nearMiss(route.edge ? w.edgeCredential : w.token),
    hostileString,
    fc.constantFrom(...w.deadTokens, w.apiKey, ...(route.edge ? [w.token] : [w.edgeCredential])),
  );
  const value = headerSafe;
  const choices: fc.Arbitrary<[string, Header[]]>[] = [
    fc.constant(['no credentials', []]),
    bearerValue.map((t): [string, Header[]] => ['unknown bearer token', [['authorization', value(`Bearer ${t}`)]]]),
    fc.tuple(fc.constantFrom('Basic', 'Token', 'Bearer:', 'Bearer\t', 'Bearer  ', 'Bearer', 'JWT', 'Digest', ''), fc.constantFrom(w.token, w.edgeCredential, `${w.email}:${w.apiKey}`))
      .map(([scheme, t]): [string, Header[]] => ['other scheme', [['authorization', `${scheme} ${t}`]]]),
    fc.constantFrom(`Bearer ${w.token} ${w.token}`, `Bearer ${w.token},Bearer ${w.token}`, `Bearer "${w.token}"`, `Bearer ${w.token};`, `Bearer ${Buffer.from(w.token).toString('base64')}`)
      .map((v): [string, Header[]] => ['decorated token', [['authorization', v]]]),
    hostileString.map((s): [string, Header[]] => ['hostile authorization', [['authorization', value(s)]]]),
    // A hostile Authorization wins over valid global-key headers.
    bearerValue.map((t): [string, Header[]] => ['bearer beats key', [['authorization', value(`Bearer ${t}`)], ['x-auth-email', w.email], ['x-auth-key', w.apiKey]]]),
  ];
  if (!route.edge) {
    choices.push(
      fc.tuple(fc.oneof(fc.constant(w.email), hostileString), fc.oneof(nearMiss(w.apiKey), hostileString))
        .map(([e, k]): [string, Header[]] => ['bad email or key', [['x-auth-email', value(e)], ['x-auth-key', value(k)]]]),
      fc.constantFrom<[string, Header[]]>(
        ['key without email', [['x-auth-key', w.apiKey]]],
        ['email without key', [['x-auth-email', w.email]]],
        ['key twice', [['x-auth-email', w.email], ['x-auth-key', w.apiKey], ['x-auth-key', w.apiKey]]],
      ),
    );
    const scoped = route.params.includes('zone_id') || route.params.includes('account_id');
    if (scoped) choices.push(fc.constant(['token of another account', [['authorization', `Bearer ${w.otherAccountToken}`]]]));
    if (scoped && route.method !== 'GET') choices.push(fc.constant(['read-only token on a write', [['authorization', `Bearer ${w.readOnlyToken}`]]]));
  }
  return fc
    .oneof(...choices)
    .filter(([, headers]) => !authMayPass(route, w, headers))
    .map(([label, headers]): Breaker => ({ site: 'auth', label, apply: (p) => ({ ...p, auth: headers }) }));
}

function paramBreaker(route: FuzzRoute, w: World, name: string): fc.Arbitrary<Breaker> {
  const real = route.validParams[name];
  const wire =
    name === 'hostname'
      ? fc.oneof(hostileSegment(real), hostileHostname(real, w.zoneName).map(pct))
      : hostileSegment(real);
  return wire
    .filter((v) => !paramMayPass(route, name, v, w))
    .map((v): Breaker => ({ site: `param ${name}`, label: v.length > 80 ? `${v.slice(0, 80)}… (${v.length})` : v, apply: (p) => ({ ...p, params: { ...p.params, [name]: v } }) }));
}

function queryBreaker(route: FuzzRoute): fc.Arbitrary<Breaker> {
  const kind = route.query!.kind;
  const max = route.query!.maxPerPage;
  const badInt = fc.oneof(
    fc.constantFrom('0', '-1', '+1', '1.0', '1e3', '0x10', '%201', '1%20', '%091', '1,2', '١', '１', '1%00', '%00', 'NaN', 'Infinity', 'null', 'true', '[]', '{}', '%31%30x', '999999999999', '1000000001', '2147483648', '18446744073709551616', '9'.repeat(400), "1'%20OR%20'1'='1", '1;DROP%20TABLE%20zones', '%27', '..%2f', '31', String(max + 1)),
    hostileString.map(pct),
    fc.integer({ min: 1_000_001, max: Number.MAX_SAFE_INTEGER }).map(String),
  );
  const names = kind === 'edge' ? ['after', 'wait'] : kind === 'page+status' ? ['page', 'per_page', 'status'] : ['page', 'per_page'];
  const badStatus = fc.oneof(
    fc.constantFrom('bogus', 'ACTIVE,bogus', 'initializing', 'active,,', ',', 'active;drop', "active'%20OR%20'1'='1", 'pending', 'all_', '%00', 'active%00', '*', '%25', 'deleted,initializing'),
    hostileString.map(pct),
  );
  const pairs = fc.oneof(
    fc.tuple(fc.constantFrom(...names.filter((n) => n !== 'status')), badInt).map(([n, v]): [string, string | null][] => [[n, v]]),
    fc.tuple(fc.constantFrom(...names), fc.constantFrom('1', '2', '')).map(([n, v]): [string, string | null][] => [[n, v], [n, v]]),
    ...(kind === 'page+status' ? [badStatus.map((v): [string, string | null][] => [['status', v]])] : []),
  );
  return fc
    .tuple(pairs, queryNoise(route))
    .map(([bad, noise]) => [...noise, ...bad])
    .filter((q) => !queryMayPass(route, q))
    .map((q): Breaker => ({ site: 'query', label: q.map(([k, v]) => `${k}=${v ?? ''}`).join('&').slice(0, 120), apply: (p) => ({ ...p, query: q }) }));
}

/** Every path to a value inside `v` ([] is the whole value). */
function valuePaths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out = [at];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...valuePaths(x, [...at, i])));
  else if (isObject(v)) for (const [k, x] of Object.entries(v)) out.push(...valuePaths(x, [...at, k]));
  return out;
}
const objectPaths = (v: unknown) => valuePaths(v).filter((p) => isObject(getAt(v, p)));
const getAt = (v: unknown, path: (string | number)[]) => path.reduce<unknown>((x, k) => (x as Record<string | number, unknown>)?.[k], v);

const MARK = '\u0001FUZZ\u0001';
/** JSON text of `v` with the value at `path` replaced by raw JSON text `fragment` (which may be huge or deep). */
function replaced(v: unknown, path: (string | number)[], fragment: string): string {
  if (path.length === 0) return fragment;
  const copy = structuredClone(v) as Record<string | number, unknown>;
  const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, unknown>;
  parent[path[path.length - 1]] = MARK;
  return JSON.stringify(copy).replace(JSON.stringify(MARK), () => fragment);
}
/** JSON text of `v` with key `key` added (raw text) to the object at `path`, before or after its own keys. */
function withKey(v: unknown, path: (string | number)[], key: string, fragment: string, first: boolean): string {
  const target = getAt(v, path) as Record<string, unknown>;
  const entries = Object.entries(target).map(([k, x]) => `${JSON.stringify(k)}:${JSON.stringify(x)}`);
  const extra = `${JSON.stringify(key)}:${fragment}`;
  const obj = `{${(first ? [extra, ...entries] : [...entries, extra]).join(',')}}`;
  return replaced(v, path, obj);
}
function withoutKey(v: unknown, path: (string | number)[]): string {
  const copy = structuredClone(v) as Record<string | number, unknown>;
  const parent = getAt(copy, path.slice(0, -1));
  if (Array.isArray(parent)) parent.splice(path[path.length - 1] as number, 1);
  else delete (parent as Record<string | number, unknown>)[path[path.length - 1]];
  return JSON.stringify(copy);
}

function pemMaterial(route: FuzzRoute, w: World): PemMaterial {
  const stored =
    route.bodyKind === 'upload-zone' ? w.zoneCert.pem : route.bodyKind === 'upload-hostname' ? w.hostnameCert.pem : route.url.includes('/accounts/') ? w.accountCa.pem : w.zoneCa.pem;
  const fresh = route.bodyKind === 'access-create' ? w.freshCa : w.freshLeaf.pem;
  const storedKey = route.bodyKind === 'upload-zone' ? w.zoneCert.key : w.hostnameCert.key;
  return { stored, fresh, others: w.otherPems, keys: [route.bodyKind?.startsWith('upload') ? w.freshLeaf.key : storedKey, storedKey, ...w.otherKeys] };
}

function bodyBreaker(route: FuzzRoute, w: World): fc.Arbitrary<Breaker> {
  const base = route.validBody!;
  const baseText = JSON.stringify(base);
  const paths = valuePaths(base);
  const objects = objectPaths(base);
  const leafKey = (p: (string | number)[]) => String(p[p.length - 1] ?? '');
  const hostname = w.associationHostnames[0];

  /** Hostile JSON for the value at a path, knowing what the field is. */
  const fragmentFor = (p: (string | number)[]): fc.Arbitrary<string> => {
    const k = leafKey(p);
    const inHostnames = p.includes('associated_hostnames') && typeof p[p.length - 1] === 'number';
    const m = route.bodyKind && (k === 'certificate' || k === 'private_key') ? pemMaterial(route, w) : null;
    const specific: fc.Arbitrary<string>[] = [];
    if (m) specific.push(hostilePem(m, k === 'certificate' ? 'certificate' : 'key').map((s) => JSON.stringify(s)));
    if (k === 'hostname' || inHostnames) specific.push(hostileHostname(hostname, w.zoneName).map((s) => JSON.stringify(s)));
    if (k === 'cert_id') specific.push(fc.oneof(nearMiss(w.hostnameCert.id), fc.constantFrom(w.zoneCert.id, w.accountCa.id, w.zoneCa.id)).map((s) => JSON.stringify(s)));
    if (k === 'name') specific.push(hostileString.map((s) => JSON.stringify(s)));
    return specific.length === 0 ? hostileJsonFragment : fc.oneof({ weight: 3, arbitrary: fc.oneof(...specific) }, { weight: 1, arbitrary: hostileJsonFragment });
  };

  const strategies: fc.Arbitrary<[string, Buffer]>[] = [
    fc.constantFrom(...paths.filter((p) => p.length > 0)).chain((p) => fragmentFor(p).map((f): [string, Buffer] => [`${p.join('.')} replaced`, Buffer.from(replaced(base, p, f))])),
    fc.tuple(fc.constantFrom(...objects), hostileKey, hostileJsonFragment, fc.boolean()).map(([p, k, f, first]): [string, Buffer] => [`extra key at ${p.join('.') || 'top'}`, Buffer.from(withKey(base, p, k, f, first))]),
    // Duplicate keys: JSON.parse keeps the last one; a server that read the first would see the valid value.
    fc.constantFrom(...paths.filter((p) => p.length > 0 && isObject(getAt(base, p.slice(0, -1)))))
      .chain((p) => fragmentFor(p).map((f): [string, Buffer] => [`duplicate key ${p.join('.')}`, Buffer.from(withKey(base, p.slice(0, -1), leafKey(p), f, false))])),
    fc.constantFrom(...paths.filter((p) => p.length > 0)).map((p): [string, Buffer] => [`${p.join('.')} removed`, Buffer.from(withoutKey(base, p))]),
    corruptText(baseText).map((b): [string, Buffer] => ['corrupted text', b]),
    garbageBody.map((b): [string, Buffer] => ['garbage', b]),
  ];
  return fc
    .oneof({ weight: 5, arbitrary: strategies[0] }, { weight: 2, arbitrary: strategies[1] }, { weight: 1, arbitrary: strategies[2] }, { weight: 1, arbitrary: strategies[3] }, { weight: 2, arbitrary: strategies[4] }, { weight: 2, arbitrary: strategies[5] })
    .filter(([, b]) => !bytesMayPass(route, w, b))
    .map(([label, b]): Breaker => ({ site: 'body', label, apply: (p) => ({ ...p, body: b }) }));
}

/** Requests whose HTTP itself is broken. Built from the valid request's bytes. */
function framingBreakers(route: FuzzRoute): fc.Arbitrary<Breaker> {
  const headEnd = (b: Buffer) => b.indexOf('\r\n\r\n');
  const head = (b: Buffer) => b.subarray(0, headEnd(b)).toString('latin1');
  const bodyOf = (b: Buffer) => b.subarray(headEnd(b) + 4);
  const withoutLength = (h: string) => h.replace(/\r\ncontent-length: \d+/i, '');
  const rebuild = (h: string, body: Buffer | string = Buffer.alloc(0)) => Buffer.concat([Buffer.from(`${h}\r\n\r\n`, 'latin1'), Buffer.from(body as Buffer)]);
  const insertHeader = (b: Buffer, line: Buffer | string) => {
    const h = head(b);
    const i = h.indexOf('\r\n');
    return Buffer.concat([Buffer.from(h.slice(0, i + 2), 'latin1'), Buffer.from(line as Buffer), Buffer.from(`\r\n${h.slice(i + 2)}\r\n\r\n`, 'latin1'), bodyOf(b)]);
  };
  const b = (label: string, bytes: (req: RawRequest) => Buffer, halfClose = false): Breaker => ({ site: 'framing', label, closing: true, halfClose, apply: (p) => p, bytes });

  const all: fc.Arbitrary<Breaker>[] = [
    fc.constantFrom('abc', '-1', '+5', '1.5', '0x10', '1 2', '', ' ', '99999999999999999999999', '5,5', '\u0000')
      .map((v) => b(`content-length ${JSON.stringify(v)}`, (r) => rebuild(`${withoutLength(head(serialize(r)))}\r\ncontent-length: ${v}`, bodyOf(serialize(r))))),
    fc.tuple(fc.nat({ max: 50 }), fc.integer({ min: 51, max: 100 }))
      .map(([x, y]) => b(`content-length ${x} and ${y}`, (r) => rebuild(`${withoutLength(head(serialize(r)))}\r\ncontent-length: ${x}\r\ncontent-length: ${y}`, bodyOf(serialize(r))))),
    fc.constant(b('content-length with transfer-encoding', (r) => {
      const body = bodyOf(serialize(r));
      return rebuild(`${withoutLength(head(serialize(r)))}\r\ncontent-length: ${body.length}\r\ntransfer-encoding: chunked`, `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
    })),
    fc.constantFrom('gzip', 'chunked, gzip', 'deflate', 'x-custom', 'chunked, chunked')
      .map((te) => b(`transfer-encoding ${te}`, (r) => rebuild(`${withoutLength(head(serialize(r)))}\r\ntransfer-encoding: ${te}`, bodyOf(serialize(r))))),
    fc.constantFrom([0x00], [0x01], [0x7f], [0x0d], [0x0b], [0x1b])
      .map((c) => b(`control byte 0x${c[0].toString(16)} in a header value`, (r) => insertHeader(serialize(r), Buffer.concat([Buffer.from('x-fuzz: a'), Buffer.from(c), Buffer.from('b')])))),
    fc.constantFrom('bad name: x', '(x): y', 'x\u0000y: z', ': empty', 'no colon', 'x y: z', '\u00e9: x', ' x: leading space', 'x-a\r\n y')
      .map((line) => b(`header line ${JSON.stringify(line)}`, (r) => insertHeader(serialize(r), Buffer.from(line, 'latin1')))),
    fc.constant(b('bare LF line ends', (r) => Buffer.from(serialize(r).toString('latin1').replace(/\r\n/g, '\n'), 'latin1'))),
    fc.integer({ min: 33_000, max: 40_000 }).map((n) => b(`header of ${n} bytes`, (r) => insertHeader(serialize(r), `x-big: ${'a'.repeat(n)}`))),
    fc.integer({ min: 1100, max: 1400 }).map((n) => b(`${n} headers`, (r) => insertHeader(serialize(r), Array.from({ length: n }, (_, i) => `x-h${i}: ${'v'.repeat(20)}`).join('\r\n')))),
    fc.constantFrom(
      (r: RawRequest) => `${r.method.toLowerCase()} ${r.target} HTTP/1.1`,
      (r: RawRequest) => `FUZZ ${r.target} HTTP/1.1`,
      (r: RawRequest) => `${r.method}\u0000 ${r.target} HTTP/1.1`,
      (r: RawRequest) => `${r.method} ${r.target} HTTP/1.1 extra`,
      (r: RawRequest) => `${r.method} ${r.target} HTTP/1.`,
      (r: RawRequest) => `${r.method} ${r.target} HTTPS/1.1`,
      (r: RawRequest) => `${r.method} ${r.target} http/1.1`,
      (r: RawRequest) => `${r.method} ${r.target.replace(/\/(?=[^/]*$)/, '/a b/')} HTTP/1.1`,
      (r: RawRequest) => `${r.method} ${r.target.replace(/\/(?=[^/]*$)/, '/\u00ff\u00fe/')} HTTP/1.1`,
      (r: RawRequest) => `${r.method} ${r.target.replace(/\/(?=[^/]*$)/, '/\u0000/')} HTTP/1.1`,
      (r: RawRequest) => `${r.method} ${r.target.replace(/\/(?=[^/]*$)/, '/\u007f/')} HTTP/1.1`,
      (r: RawRequest) => `${r.method} ${r.target.replace(/^\//, '')} HTTP/1.1`,
      (r: RawRequest) => `${r.method} ${r.target}`,
    ).map((line) => b('request line', (r) => {
      const h = head(serialize(r));
      return rebuild(line(r) + h.slice(h.indexOf('\r\n')), bodyOf(serialize(r)));
    })),
    fc.constant(b('no Host header', (r) => serialize({ ...r, headers: r.headers.filter(([n]) => n !== 'host') }))),
    fc.constantFrom('200-ok', 'x', '100', 'continue', '\u00e9')
      .map((e) => b(`Expect: ${e}`, (r) => insertHeader(serialize(r), `expect: ${e}`))),
    fc.constantFrom((r: RawRequest) => r.target, () => '127.0.0.1:80', () => 'example.com:443')
      .map((t) => b('CONNECT', (r) => serialize({ ...r, method: 'CONNECT', target: t(r) }))),
  ];
  // Breaks only the body: refused where the server must read and judge one (a GET is answered from its headers).
  if (route.bodyKind) {
    all.push(
      fc.constantFrom('zz\r\n{}\r\n0\r\n\r\n', '-1\r\n{}\r\n0\r\n\r\n', '2\r\n{}}}\r\n0\r\n\r\n', '2\r\n{}', '2;\u0000\r\n{}\r\n0\r\n\r\n', 'ffffffffffffffffff\r\n{}\r\n', '1\r\n{\r\n')
        .map((chunks) => b(`bad chunks ${JSON.stringify(chunks.slice(0, 12))}`, (r) => rebuild(`${withoutLength(head(serialize(r)))}\r\ntransfer-encoding: chunked`, chunks), true)),
      fc.integer({ min: 1, max: 10_000 }).map((k) => b(`content-length ${k} short`, (r) => {
        const body = bodyOf(serialize(r));
        const n = Math.max(body.length - k, 0);
        return rebuild(`${withoutLength(head(serialize(r)))}\r\ncontent-length: ${n}`, body);
      })),
      fc.integer({ min: 1, max: 100_000 }).map((k) => b(`content-length ${k} long`, (r) => {
        const body = bodyOf(serialize(r));
        return rebuild(`${withoutLength(head(serialize(r)))}\r\ncontent-length: ${body.length + k}`, body);
      }, true)),
      // Larger than the body limit, declared (answered from the header) or streamed in chunks.
      fc.integer({ min: 1024 * 1024 + 1, max: 1e12 }).map((n) => b(`content-length ${n} (over the limit)`, (r) => rebuild(`${withoutLength(head(serialize(r)))}\r\ncontent-length: ${n}`, bodyOf(serialize(r))))),
      fc.constant(b('chunked body over the limit', (r) => {
        const chunk = `${(64 * 1024).toString(16)}\r\n${' '.repeat(64 * 1024)}\r\n`;
        return rebuild(`${withoutLength(head(serialize(r)))}\r\ntransfer-encoding: chunked`, `${chunk.repeat(17)}0\r\n\r\n`);
      })),
    );
  }
  return fc.oneof(...all);
}

function methodBreaker(route: FuzzRoute): fc.Arbitrary<Breaker> {
  const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'SEARCH', 'PURGE', 'REPORT', 'MKCALENDAR', 'LINK', 'UNLINK', 'NOTIFY', 'SUBSCRIBE', 'UNSUBSCRIBE', 'ACL', 'BIND', 'MERGE', 'M-SEARCH', 'QUERY'];
  return fc
    .constantFrom(...methods.filter((m) => !route.routedMethods.includes(m)))
    .map((m): Breaker => ({ site: 'method', label: m, apply: (p) => ({ ...p, method: m }) }));
}

/** Every breaker that applies to the route, weighted toward the parts with the most to get wrong. */
export function fuzzCases(route: FuzzRoute, w: World): fc.Arbitrary<FuzzCase> {
  const sites: { weight: number; arbitrary: fc.Arbitrary<Breaker> }[] = [
    { weight: 2, arbitrary: authBreakers(route, w) },
    { weight: 1, arbitrary: framingBreakers(route) },
    { weight: 1, arbitrary: methodBreaker(route) },
    ...route.params.map((name) => ({ weight: name === 'zone_id' || name === 'account_id' ? 2 : 4, arbitrary: paramBreaker(route, w, name) })),
  ];
  if (route.query) sites.push({ weight: 4, arbitrary: queryBreaker(route) });
  if (route.bodyKind) sites.push({ weight: 10, arbitrary: bodyBreaker(route, w) });

  const noBodyNoise = fc.option(fc.oneof(smallGarbage, fc.constant(Buffer.from('{}'))), { freq: 4 });
  return fc
    .record({
      breaker: fc.oneof(...sites),
      headers: fc.array(noiseHeader, { maxLength: 3 }),
      contentType: contentTypeNoise,
      query: queryNoise(route),
      trailingSlash: fc.integer({ min: 0, max: 9 }).map((x) => x === 0),
      extraBody: noBodyNoise,
    })
    .map(({ breaker, headers, contentType, query, trailingSlash, extraBody }) => {
      let p: Parts = { ...baseParts(route, w), noiseHeaders: headers, contentType, query, trailingSlash: trailingSlash && breaker.site !== 'framing' };
      // A body on a route that takes none: ignored by GET, parsed (and maybe refused) on DELETE.
      if (!route.bodyKind && extraBody) p.body = extraBody;
      p = breaker.apply(p);
      const req = toRequest(route, w, p);
      const c: FuzzCase = { site: breaker.site, label: breaker.label, bytes: breaker.bytes ? breaker.bytes(req) : serialize(req), closing: !!breaker.closing, halfClose: !!breaker.halfClose };
      return Object.assign(c, { [fc.toStringMethod]: () => describeCase(c) });
    });
}

export { describeCase };

/**
 * The error catalogue: every error certplane can answer with, as Cloudflare's HTTP status, code and message.
 * Domain errors carry a `kind`; API-level failures (authentication, routing, parsing) are `ApiError`s with kinds of
 * their own. Sources for each entry are in docs/compatibility.md (documented / observed / inferred).
 */
import type { DomainErrorKind } from '../domain/errors.js';
import { DomainError } from '../domain/errors.js';
import type { WireMessage } from './envelope.js';

export type ApiErrorKind =
  | 'auth.missing'
  | 'auth.bad_header_authorization'
  | 'auth.bad_header_email'
  | 'auth.bad_header_key'
  | 'auth.both_schemes'
  | 'auth.invalid_token'
  | 'auth.invalid_key'
  | 'auth.forbidden'
  | 'auth.verify_invalid_token'
  | 'route.not_found'
  | 'route.bad_identifier'
  | 'route.method_not_allowed'
  | 'request.malformed_json'
  | 'request.body_required'
  | 'request.too_large'
  | 'request.unsupported_media_type'
  | 'request.invalid_query'
  | 'request.bad_http'
  | 'request.expectation_failed'
  | 'request.headers_too_large'
  | 'request.timeout'
  | 'rate.limited'
  | 'edge.unauthorized'
  | 'server.unavailable'
  | 'server.internal';

export class ApiError extends Error {
  readonly kind: ApiErrorKind;
  readonly detail?: string;
  /** Response headers that belong to this error (e.g. `Allow` on a 405). */
  readonly headers: Record<string, string>;
  constructor(kind: ApiErrorKind, detail?: string, headers: Record<string, string> = {}) {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = 'ApiError';
    this.kind = kind;
    this.detail = detail;
    this.headers = headers;
  }
}

/** Which family of codes a route uses for request-shape errors (Cloudflare's codes are per product). */
export type ErrorFamily = 'aop' | 'access' | 'generic';

interface Entry {
  status: number;
  code: number;
  /** Message, or a function of the error's detail. */
  message: string | ((detail?: string) => string);
  chain?: WireMessage[];
}

const withDetail = (base: string) => (detail?: string) => (detail ? `${base}: ${detail}` : base);
const accessMessage = (kind: string, fallback?: string) => (detail?: string) =>
  `access.api.error.${kind}${detail ? `: ${detail}` : fallback ? `: ${fallback}` : ''}`;

const CATALOGUE: Record<DomainErrorKind | ApiErrorKind, Entry> = {
  // ---- authentication (cloudflare-behavior.md §4.4, §5) ----
  'auth.missing': { status: 400, code: 9106, message: 'Missing X-Auth-Key, X-Auth-Email or Authorization headers' },
  'auth.bad_header_authorization': {
    status: 400,
    code: 6003,
    message: 'Invalid request headers',
    chain: [{ code: 6111, message: 'Invalid format for Authorization header' }],
  },
  'auth.bad_header_email': {
    status: 400,
    code: 6003,
    message: 'Invalid request headers',
    chain: [{ code: 6102, message: 'Invalid format for X-Auth-Email header' }],
  },
  'auth.bad_header_key': {
    status: 400,
    code: 6003,
    message: 'Invalid request headers',
    chain: [{ code: 6103, message: 'Invalid format for X-Auth-Key header' }],
  },
  'auth.both_schemes': {
    status: 400,
    code: 6003,
    message: 'Invalid request headers',
    chain: [{ code: 6111, message: 'Invalid format for Authorization header' }],
  },
  'auth.invalid_token': { status: 401, code: 9109, message: 'Invalid access token' },
  'auth.invalid_key': { status: 403, code: 9103, message: 'Unknown X-Auth-Key or X-Auth-Email' },
  'auth.forbidden': { status: 403, code: 10000, message: 'Authentication error' },
  'auth.verify_invalid_token': { status: 401, code: 1000, message: 'Invalid API Token' },

  // ---- routing and request parsing ----
  'route.not_found': { status: 404, code: 7000, message: 'No route for that URI' },
  'route.bad_identifier': {
    status: 400,
    code: 7003,
    message: (path) => `Could not route to ${path ?? 'that URI'}, perhaps your object identifier is invalid?`,
  },
  'route.method_not_allowed': { status: 405, code: 10405, message: withDetail('Method not allowed for this endpoint') },
  'request.malformed_json': { status: 400, code: 6007, message: 'Malformed JSON in request body' },
  'request.body_required': { status: 400, code: 6007, message: 'Request body is required and must be a JSON object' },
  'request.too_large': { status: 413, code: 6009, message: withDetail('Request body is too large') },
  'request.unsupported_media_type': { status: 415, code: 6010, message: withDetail('Unsupported Content-Type') },
  'request.invalid_query': { status: 400, code: 6008, message: withDetail('Invalid query parameter') },
  // Requests refused at the HTTP layer, before any route (Node's parser, its timeouts, the server's clientErrorHandler
  // and HTTP checks): 6000 + (status - 400).
  'request.bad_http': { status: 400, code: 6000, message: withDetail('Bad request') },
  'request.expectation_failed': { status: 417, code: 6017, message: withDetail('Expectation failed') },
  'request.headers_too_large': { status: 431, code: 6031, message: 'Request header fields too large' },
  'request.timeout': { status: 408, code: 6011, message: 'Request timeout' },
  // ---- abuse limits (cloudflare-behavior.md §4.1; docs/compatibility.md "Abuse limits") ----
  'rate.limited': { status: 429, code: 971, message: 'Please wait and consider throttling your request speed' },
  'edge.unauthorized': { status: 401, code: 10101, message: 'Invalid or revoked edge credential' },
  'server.unavailable': { status: 503, code: 10001, message: 'Service temporarily unavailable, please retry' },
  'server.internal': { status: 500, code: 10002, message: 'Internal server error' },

  // ---- generic domain ----
  validation: { status: 400, code: 1001, message: withDetail('Invalid request') },
  zone_not_found: { status: 404, code: 1001, message: 'Invalid zone identifier' },
  zone_exists: { status: 400, code: 1061, message: withDetail('A zone with this name already exists') },
  zone_name_invalid: { status: 400, code: 1001, message: withDetail('Invalid zone name') },
  account_not_found: { status: 404, code: 1003, message: withDetail('Account not found') },
  user_exists: { status: 400, code: 1004, message: withDetail('A user with this email already exists') },
  user_not_found: { status: 404, code: 1005, message: withDetail('User not found') },
  token_not_found: { status: 404, code: 1006, message: withDetail('Token not found') },
  hostname_invalid: { status: 400, code: 1417, message: withDetail('Invalid hostname') },

  // ---- Authenticated Origin Pulls (§1, §2, §4.2) ----
  'aop.cert_unparseable': { status: 400, code: 1408, message: 'Unable to parse certificate' },
  'aop.missing_leaf': { status: 400, code: 1407, message: 'missing leaf certificate' },
  'aop.key_missing': { status: 400, code: 1409, message: 'Private key is required' },
  'aop.key_unparseable': { status: 400, code: 1409, message: 'Unable to parse private key' },
  'aop.key_encrypted': { status: 400, code: 1410, message: 'Private key is encrypted; upload it without a passphrase' },
  'aop.key_unsupported': {
    status: 400,
    code: 1411,
    message: 'Unsupported private key type; use RSA, ECDSA (P-256, P-384, P-521) or Ed25519',
  },
  'aop.key_mismatch': { status: 400, code: 1412, message: 'The private key does not match the certificate' },
  'aop.cert_duplicate': { status: 400, code: 1406, message: 'This certificate already exists for this zone.' },
  'aop.hostname_cert_limit': {
    status: 400,
    code: 1413,
    message: (n) => `You have reached the maximum number of hostname certificates for this zone (${n ?? 10})`,
  },
  'aop.zone_cert_limit': {
    status: 400,
    code: 1413,
    message: (n) => `You have reached the maximum number of certificates for this zone (${n ?? 10})`,
  },
  'aop.association_limit': {
    status: 400,
    code: 1416,
    message: (n) => `Too many hostnames are associated with this certificate; the maximum is ${n ?? 100}`,
  },
  'aop.zone_cert_not_found': { status: 404, code: 1552, message: 'Certificate not found' },
  'aop.hostname_cert_not_found': { status: 404, code: 1551, message: 'Hostname certificate not found' },
  'aop.cert_id_required': { status: 400, code: 1404, message: 'Certificate ID required' },
  'aop.cert_id_invalid': {
    status: 400,
    code: 1415,
    message: 'Certificate ID in request is either invalid or the certificate has been deleted',
  },
  'aop.cert_id_malformed': { status: 400, code: 1415, message: 'Invalid Certificate ID' },
  'aop.enabled_invalid': { status: 400, code: 1405, message: 'enabled must be true, false or null' },
  'aop.hostname_required': { status: 400, code: 1403, message: 'Hostname required' },
  'aop.hostname_not_in_zone': { status: 400, code: 1418, message: withDetail('Hostname does not belong to this zone') },
  'aop.hostname_duplicate_in_request': {
    status: 400,
    code: 1419,
    message: withDetail('Hostname appears more than once in the request'),
  },
  'aop.association_not_found': {
    status: 404,
    code: 1553,
    message: 'Authenticated Origin Pulls setting for this hostname not found',
  },
  'aop.cert_in_use': {
    status: 400,
    code: 1433,
    message: 'This certificate is in use by one or more hostnames; set enabled to null for each association first',
  },
  'aop.cert_pending_deployment': {
    status: 400,
    code: 1434,
    message: 'Cannot delete resource while in pending deployment state.',
  },
  'aop.cert_pending_deletion': { status: 400, code: 1414, message: 'This certificate is pending deletion.' },
  'aop.cert_already_deleted': { status: 400, code: 1414, message: 'Certificate is already deleted.' },

  // ---- Access mTLS (§3, §4.3): access.api.error.<kind>[: detail] ----
  'access.invalid_request': { status: 400, code: 12130, message: accessMessage('invalid_request') },
  'access.cert_unparseable': {
    status: 400,
    code: 12130,
    message: accessMessage('invalid_request', 'unable to parse certificate'),
  },
  'access.not_a_ca': {
    status: 400,
    code: 12130,
    message: accessMessage('invalid_request', 'certificate must be a CA certificate (basic constraints CA:TRUE)'),
  },
  'access.signature_unsupported': {
    status: 400,
    code: 12130,
    message: (d) => `access.api.error.invalid_request: unsupported certificate signature algorithm${d ? ` ${d}` : ''}`,
  },
  'access.cert_duplicate': {
    status: 400,
    code: 12130,
    message: accessMessage('invalid_request', 'certificate already exists'),
  },
  'access.cert_limit': {
    status: 400,
    code: 12130,
    message: accessMessage('invalid_request', 'maximum number of certificates has been reached'),
  },
  'access.cert_not_found': { status: 404, code: 12135, message: accessMessage('not_found', 'certificate not found') },
  'access.cert_has_hostnames': {
    status: 400,
    code: 12130,
    message: accessMessage(
      'invalid_request',
      'certificate has associated hostnames; remove them before deleting the certificate',
    ),
  },
  'access.hostnames_not_in_domain': {
    status: 400,
    code: 12036,
    message: (d) => `access.api.error.hostnames_must_belong_to_your_domain${d ? `: ${d}` : ''}`,
  },
  'access.china_network_not_enabled': {
    status: 400,
    code: 12130,
    message: (d) =>
      `access.api.error.invalid_request: china_network can only be set to true on a zone that is China network enabled${d ? ` (${d})` : ''}`,
  },
  'access.settings_conflict': {
    status: 409,
    code: 12133,
    message: 'access.api.error.conflict: previous certificate settings still being updated',
  },
};

/** Request-shape errors use the product's own code family. */
const VALIDATION_BY_FAMILY: Record<ErrorFamily, DomainErrorKind> = {
  aop: 'validation',
  access: 'access.invalid_request',
  generic: 'validation',
};

export function validationError(family: ErrorFamily, detail: string, pointer?: string): DomainError {
  return new DomainError(VALIDATION_BY_FAMILY[family], detail, pointer);
}

export interface RenderedError {
  status: number;
  error: WireMessage;
}

export function render(kind: DomainErrorKind | ApiErrorKind, detail?: string, pointer?: string): RenderedError {
  const entry = CATALOGUE[kind];
  const message = typeof entry.message === 'function' ? entry.message(detail) : entry.message;
  const error: WireMessage = { code: entry.code, message };
  if (pointer) error.source = { pointer };
  if (entry.chain) error.error_chain = entry.chain.map((c) => ({ ...c }));
  return { status: entry.status, error };
}


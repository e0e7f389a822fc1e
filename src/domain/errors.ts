/**
 * Domain errors. Each carries a stable `kind`; the API's error catalogue maps a kind to Cloudflare's HTTP status,
 * code and message. The domain never decides HTTP statuses.
 */
export type DomainErrorKind =
  // generic request validation
  | 'validation'
  // tenancy
  | 'zone_not_found'
  | 'zone_exists'
  | 'zone_name_invalid'
  | 'user_exists'
  | 'token_not_found'
  | 'user_not_found'
  | 'account_not_found'
  | 'hostname_invalid'
  // AOP
  | 'aop.cert_unparseable'
  | 'aop.missing_leaf'
  | 'aop.key_missing'
  | 'aop.key_unparseable'
  | 'aop.key_encrypted'
  | 'aop.key_unsupported'
  | 'aop.key_mismatch'
  | 'aop.cert_duplicate'
  | 'aop.hostname_cert_limit'
  | 'aop.zone_cert_limit'
  | 'aop.association_limit'
  | 'aop.zone_cert_not_found'
  | 'aop.hostname_cert_not_found'
  | 'aop.cert_id_required'
  | 'aop.cert_id_invalid'
  | 'aop.cert_id_malformed'
  | 'aop.enabled_invalid'
  | 'aop.hostname_required'
  | 'aop.hostname_not_in_zone'
  | 'aop.hostname_duplicate_in_request'
  | 'aop.association_not_found'
  | 'aop.cert_in_use'
  | 'aop.cert_pending_deployment'
  | 'aop.cert_pending_deletion'
  | 'aop.cert_already_deleted'
  // Access
  | 'access.invalid_request'
  | 'access.cert_unparseable'
  | 'access.not_a_ca'
  | 'access.signature_unsupported'
  | 'access.cert_duplicate'
  | 'access.cert_limit'
  | 'access.cert_not_found'
  | 'access.cert_has_hostnames'
  | 'access.hostnames_not_in_domain'
  | 'access.china_network_not_enabled'
  | 'access.settings_conflict';

export class DomainError extends Error {
  readonly kind: DomainErrorKind;
  /** Extra, human-readable detail appended to the catalogue message where the catalogue allows it. */
  readonly detail?: string;
  /** JSON pointer into the request body, when the error is about one field. */
  readonly pointer?: string;

  constructor(kind: DomainErrorKind, detail?: string, pointer?: string) {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = 'DomainError';
    this.kind = kind;
    this.detail = detail;
    this.pointer = pointer;
  }
}


/**
 * The one error type the PKI module throws. Every public function of `src/pki` either returns normally or throws a
 * `PkiError`; any other exception raised by node:crypto or by our DER reader is caught and mapped to one of these kinds.
 * Messages are fixed strings chosen here: they never contain key material or the (possibly secret) input text.
 */
export type PkiErrorKind =
  | 'cert_empty' // no PEM CERTIFICATE block at all / empty string
  | 'cert_unparseable' // garbage, truncated base64, bad DER, block that is not a certificate
  | 'key_empty' // no private key block
  | 'key_unparseable' // garbage / truncated key
  | 'key_encrypted' // "ENCRYPTED PRIVATE KEY" block or legacy "Proc-Type: 4,ENCRYPTED" header
  | 'key_unsupported'; // a parseable key of a type we don't support

const DEFAULT_MESSAGES: Record<PkiErrorKind, string> = {
  cert_empty: 'no PEM certificate found',
  cert_unparseable: 'certificate could not be parsed',
  key_empty: 'no PEM private key found',
  key_unparseable: 'private key could not be parsed',
  key_encrypted: 'private key is encrypted',
  key_unsupported: 'private key type is not supported',
};

export class PkiError extends Error {
  readonly kind: PkiErrorKind;

  constructor(kind: PkiErrorKind, message?: string) {
    super(message ?? DEFAULT_MESSAGES[kind]);
    this.name = 'PkiError';
    this.kind = kind;
  }
}

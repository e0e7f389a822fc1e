/**
 * Hostname validation and normalisation (pure; node built-ins only).
 *
 * Rules, checked in this order (the first problem found wins; labels are checked left to right):
 *
 *  1. The input must be a string; anything else is `invalid_characters` ("hostname must be a string").
 *  2. "" is `empty`.
 *  3. Input longer than 255 characters is `too_long` before any further work (bounds the cost).
 *  4. IPv6 literals, bare ("::1") or bracketed ("[::1]"), are `ip_address`.
 *  5. No trimming: any ASCII character other than a-z A-Z 0-9 '-' '_' '.' '*' (so whitespace, control
 *     characters, ':', '/', '@', '%', ...) is `invalid_characters`. Non-ASCII characters are allowed here and
 *     handled as IDN in step 8.
 *  6. If the input contains non-ASCII, the IDNA full stops U+3002, U+FF0E and U+FF61 are label separators
 *     (as in UTS #46) and are replaced by '.'.
 *  7. ONE trailing dot (the DNS root) is accepted and removed; after that an empty label anywhere — including
 *     a second trailing dot, a leading dot, ".." or the input "." — is `empty_label`.
 *  8. Labels containing non-ASCII are converted, one label at a time, to their punycode A-label with
 *     `domainToASCII` (UTS #46 mapping: lowercases, NFC-normalises, drops ignorable characters such as
 *     U+200B). If conversion fails, yields "" or yields more than one label, it is `invalid_characters`.
 *     Converting per label (not the whole name) keeps the WHATWG URL host parser from reinterpreting
 *     ASCII parts (e.g. numeric labels as IPv4). ASCII labels — including ASCII "xn--" labels — are only
 *     lowercased, never re-validated as punycode: they are accepted as-is.
 *  9. Wildcards: '*' is allowed only when `allowWildcard` is set and only as the entire first label
 *     ("*.example.com"); anything else containing '*' ("*", "a*.example.com", "a.*.example.com", "**.x.com"
 *     without the option) is `wildcard`.
 * 10. Each label (after conversion) is 1..63 characters, else `label_too_long`.
 * 11. Label characters are a-z 0-9 '-' '_'. Underscore is allowed because Cloudflare accepts
 *     service-style labels such as "_acme-challenge" / "_dmarc" in hostnames.
 * 12. A label may not start or end with '-' → `hyphen`. (Hyphens in positions 3-4, as in "xn--", are allowed.)
 * 13. The normalised name (lowercase, no trailing dot) is at most 253 characters, else `too_long`.
 * 14. IPv4-like names are `ip_address`: dotted-decimal addresses, and any name whose last label is numeric
 *     (decimal digits, or "0x" hex), because URL parsers treat such hosts as IPv4 ("127.1", "0x7f.1", "a.1").
 *     No real TLD is numeric.
 * 15. At least two labels are required → `single_label` ("localhost"). For a wildcard, the part after
 *     "*." must itself have two labels, so "*.com" is `single_label`.
 *
 * Messages are short fixed English sentences and never echo the input.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';

export type HostnameProblem =
  | 'empty'
  | 'too_long'
  | 'label_too_long'
  | 'invalid_characters'
  | 'wildcard'
  | 'ip_address'
  | 'single_label'
  | 'empty_label'
  | 'hyphen';

export type HostnameResult =
  | { ok: true; hostname: string }
  | { ok: false; problem: HostnameProblem; message: string };

export const MAX_HOSTNAME_LENGTH = 253;
export const MAX_HOSTNAME_INPUT_LENGTH = 255;
export const MAX_LABEL_LENGTH = 63;

const MESSAGES: Record<HostnameProblem, string> = {
  empty: 'hostname is empty',
  too_long: `hostname is longer than ${MAX_HOSTNAME_LENGTH} characters`,
  label_too_long: `hostname has a label longer than ${MAX_LABEL_LENGTH} characters`,
  invalid_characters: 'hostname contains invalid characters',
  wildcard: 'hostname contains a wildcard that is not allowed here',
  ip_address: 'hostname is an IP address, not a domain name',
  single_label: 'hostname must have at least two labels',
  empty_label: 'hostname has an empty label',
  hyphen: 'hostname has a label that starts or ends with a hyphen',
};

const fail = (problem: HostnameProblem, message = MESSAGES[problem]): HostnameResult => ({
  ok: false,
  problem,
  message,
});

const ALLOWED_ASCII_RAW = /^[A-Za-z0-9._*-]$/;
const LABEL_CHARS = /^[a-z0-9_-]+$/;
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/;
const IDN_DOTS = /[\u3002\uFF0E\uFF61]/g;

export function normalizeHostname(input: unknown, opts: { allowWildcard?: boolean } = {}): HostnameResult {
  if (typeof input !== 'string') return fail('invalid_characters', 'hostname must be a string');
  if (input.length === 0) return fail('empty');
  if (input.length > MAX_HOSTNAME_INPUT_LENGTH) return fail('too_long');

  // IPv6 literals (bare or bracketed) — ':' and '[' would otherwise be reported as invalid characters.
  if (input.includes(':')) {
    const bare = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
    if (isIPv6(bare)) return fail('ip_address');
  }

  let hasNonAscii = false;
  for (const ch of input) {
    if (ch.charCodeAt(0) >= 0x80) hasNonAscii = true;
    else if (!ALLOWED_ASCII_RAW.test(ch)) return fail('invalid_characters');
  }

  let name = hasNonAscii ? input.replace(IDN_DOTS, '.') : input;
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0) return fail('empty_label');

  const rawLabels = name.split('.');
  const labels: string[] = [];
  let wildcard = false;
  for (let i = 0; i < rawLabels.length; i++) {
    const raw = rawLabels[i];
    if (raw.length === 0) return fail('empty_label');

    if (raw.includes('*')) {
      if (opts.allowWildcard && raw === '*' && i === 0) {
        wildcard = true;
        labels.push('*');
        continue;
      }
      return fail(
        'wildcard',
        opts.allowWildcard
          ? 'hostname wildcard is only allowed as the entire first label'
          : 'hostname contains a wildcard that is not allowed here',
      );
    }

    let label: string;
    if (/[^\x00-\x7f]/.test(raw)) {
      label = domainToASCII(raw);
      if (label === '' || label.includes('.')) return fail('invalid_characters');
    } else {
      label = raw.toLowerCase();
    }

    if (label.length > MAX_LABEL_LENGTH) return fail('label_too_long');
    if (!LABEL_CHARS.test(label)) return fail('invalid_characters');
    if (label.startsWith('-') || label.endsWith('-')) return fail('hyphen');
    labels.push(label);
  }

  const hostname = labels.join('.');
  if (hostname.length > MAX_HOSTNAME_LENGTH) return fail('too_long');

  if (isIPv4(hostname) || NUMERIC_LABEL.test(labels[labels.length - 1])) return fail('ip_address');

  const significant = wildcard ? labels.length - 1 : labels.length;
  if (significant < 2) return fail('single_label');

  return { ok: true, hostname };
}

function canonical(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * True if `hostname` equals `apex` or is below it on a label boundary ("a.example.com" within "example.com";
 * "badexample.com" is not). Comparison is case-insensitive and ignores one trailing dot; inputs are expected
 * to be normalised already. An empty name is never within anything.
 */
export function isSubdomainOrEqual(hostname: string, apex: string): boolean {
  const h = canonical(hostname);
  const a = canonical(apex);
  if (h.length === 0 || a.length === 0) return false;
  return h === a || (h.length > a.length && h.endsWith(a) && h[h.length - a.length - 1] === '.');
}

/**
 * The name itself followed by each parent, down to the TLD:
 * "a.b.example.com" -> ["a.b.example.com", "b.example.com", "example.com", "com"].
 * Expects a normalised hostname; "" gives [].
 */
export function parentDomains(hostname: string): string[] {
  if (hostname.length === 0) return [];
  const labels = hostname.split('.');
  const out: string[] = [];
  for (let i = 0; i < labels.length; i++) out.push(labels.slice(i).join('.'));
  return out;
}

/** True if `name` is a valid (non-wildcard) hostname with at least two labels — usable as a zone apex. */
export function isZoneApex(name: string): boolean {
  return normalizeHostname(name).ok;
}

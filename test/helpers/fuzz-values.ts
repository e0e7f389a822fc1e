/**
 * Hostile values for the fuzz suite (fast-check arbitraries): strings, identifiers, hostnames, JSON fragments,
 * certificates and keys, and the bytes of broken bodies. Nothing here knows about routes; `fuzz-routes.ts` puts
 * these together into requests and decides which of them must be rejected.
 */
import fc from 'fast-check';
import { toPem } from '../../src/pki/pem.js';

/** Percent-encodes every byte of the UTF-8 form except RFC 3986 unreserved characters (lone surrogates become U+FFFD). */
export function pct(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** decodeURIComponent, or null when the sequence is not valid percent-encoded UTF-8. */
export function tryDecode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

// ---- strings -----------------------------------------------------------------------------------------------------

/** Strings that have broken parsers, databases and templates before. */
export const NASTY_STRINGS: readonly string[] = [
  '',
  ' ',
  '\t',
  '\u0000',
  'a\u0000b',
  '\u0000'.repeat(64),
  '\u0001\u0002\u0003\u001b[31m\u007f',
  '\r\n\r\nHTTP/1.1 200 OK\r\n',
  "' OR '1'='1",
  "'; DROP TABLE zones; --",
  '" OR ""="',
  '1; SELECT pg_sleep(10); --',
  "' UNION SELECT secret_hash FROM tokens --",
  "admin'--",
  '%',
  '%%',
  '_',
  '%_%',
  '\\',
  '\\\\\\',
  '"',
  '\'',
  '`',
  '$1',
  '?',
  ':zone_id',
  '../../../../etc/passwd',
  '..\\..\\..\\windows\\win.ini',
  '/dev/zero',
  'file:///etc/passwd',
  '${jndi:ldap://127.0.0.1/a}',
  '{{7*7}}',
  '<%= 7*7 %>',
  '%s%s%s%s%n',
  '<script>alert(1)</script>',
  '<!--',
  ']]>',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'null',
  'undefined',
  'NaN',
  'Infinity',
  'true',
  '-0',
  '0',
  '1e309',
  '[]',
  '{}',
  '\ufeff',
  '\ufffd',
  '\ufffe\uffff',
  '\ud800',
  '\udfff\ud800',
  '\u202e\u0644\u0627',
  '\u200b\u200c\u200d\u2060',
  'e\u0301\u0301\u0301\u0301\u0301',
  '\u{1f600}\u{1f4a9}',
  '\u0430\u0440\u0440',
  'ＡＢＣ１２３',
  '\u00e9\u00df\u00fc',
  '\u3002\uff0e\uff61',
  '\ud83d',
];

const longString = fc
  .tuple(fc.constantFrom('A', 'é', '\u0000', '%', "'", '\u{1f600}', 'ab\\"', '-----'), fc.integer({ min: 256, max: 70_000 }))
  .map(([unit, n]) => unit.repeat(Math.ceil(n / unit.length)));

/** Short strings a client could send: nasty constants and random code units (lone surrogates included). */
export const shortHostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 60 }) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(...NASTY_STRINGS), fc.constantFrom(...NASTY_STRINGS)).map(([a, b]) => a + b),
  },
);

/** Any string a client could send: short hostile strings, and long runs. */
export const hostileString: fc.Arbitrary<string> = fc.oneof({ weight: 40, arbitrary: shortHostileString }, { weight: 1, arbitrary: longString });

/** Edits of a real value: close enough to look right, never the same string. */
export function nearMiss(real: string): fc.Arbitrary<string> {
  const n = Math.max(real.length, 1);
  return fc.oneof(
    fc.constant(real.toUpperCase()),
    fc.constant(real.slice(0, -1)),
    fc.constant(real.slice(1)),
    fc.constant(real + real),
    fc.nat({ max: n - 1 }).map((i) => real.slice(0, i) + real.slice(i + 1)),
    fc.tuple(fc.nat({ max: n - 1 }), fc.constantFrom('0', 'f', 'g', 'Z', '-', '.', '\u0000', ' ', '%', 'é'))
      .map(([i, c]) => real.slice(0, i) + c + real.slice(i + 1)),
    fc.tuple(fc.nat({ max: n }), shortHostileString).map(([i, s]) => real.slice(0, i) + s + real.slice(i)),
    fc.tuple(shortHostileString, shortHostileString).map(([a, b]) => a + real + b),
    fc.integer({ min: 2, max: 40 }).map((k) => real.repeat(k)),
  );
}

// ---- path segments -------------------------------------------------------------------------------------------------

/** Wire forms (already percent-encoded or deliberately not) of traversal and decoding tricks. */
const SEGMENT_TRICKS: readonly string[] = [
  '.',
  '..',
  '%2e',
  '%2e%2e',
  '%2E%2E%2F',
  '..%2F..%2F..%2Fetc%2Fpasswd',
  '..%5C..%5C',
  '%252e%252e%252f',
  '%c0%ae%c0%ae',
  '%c0%af',
  '%e0%80%ae',
  '%uff0e%uff0e',
  '%',
  '%2',
  '%zz',
  '%%32%65',
  '%25',
  '%00',
  '%00.json',
  '%0d%0aX-Injected:%201',
  '%09',
  '%7f',
  '%ff',
  '%c3%28',
  '%ed%a0%80',
  '%f4%90%80%80',
  '%ef%bb%bf',
  '%e2%80%ae',
  ';',
  ';jsessionid=1',
  '*',
  '~',
  "'",
  '(',
  '!',
  '$',
  '@',
  '%3F',
  '%23',
  '%2F',
  '%5C',
  '%3B',
  '%22',
  '%3C%3E',
  '%20',
  '+',
  'null',
  '__proto__',
  'constructor',
  'settings',
  'hostnames',
  'certificates',
];

/** A hostile path segment in wire form. Raw '/', '?', '#' and whitespace never appear (they would change the route). */
export function hostileSegment(real: string): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...SEGMENT_TRICKS) },
    { weight: 3, arbitrary: nearMiss(real).map(pct) },
    { weight: 2, arbitrary: shortHostileString.filter((s) => s !== '').map(pct) },
    // Tricks glued to the real value: a decoder that strips or stops at them would find the real object.
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.constantFrom(...SEGMENT_TRICKS), fc.boolean())
        .map(([t, before]) => (before ? t + pct(real) : pct(real) + t)),
    },
    // Double encoding: decodes once to "%xx...", never to the real value.
    { weight: 1, arbitrary: fc.constant(pct(real).replace(/^./, (c) => `%25${c.charCodeAt(0).toString(16)}`)) },
    { weight: 1, arbitrary: fc.constant(`%25${Buffer.from(real).toString('hex').match(/../g)!.join('%25')}`) },
    // Raw traversal: a '.' or '..' segment next to the real value.
    { weight: 2, arbitrary: fc.constantFrom(`../${pct(real)}`, `${pct(real)}/..`, `./${pct(real)}`, `${pct(real)}/../${pct(real)}`, '../..', '..%2f..') },
    // Longer than the router or the header limit accepts.
    { weight: 1, arbitrary: fc.integer({ min: 1025, max: 17_000 }).map((n) => 'a'.repeat(n)) },
  );
}

// ---- hostnames -------------------------------------------------------------------------------------------------------

/** Hostnames (not encoded) around a real one: valid-looking, outside the zone, malformed, IDN, traversal. */
export function hostileHostname(real: string, zone: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom(
      `${real}.`,
      `${real}..`,
      `.${real}`,
      real.toUpperCase(),
      `${real}\u0000`,
      `${real}%00`,
      `${real}/../x`,
      `${real}:443`,
      `user@${real}`,
      ` ${real}`,
      `${real} `,
      `*.${zone}`,
      `**.${zone}`,
      `a*.${zone}`,
      `${zone}.evil.com`,
      `evil${zone}`,
      `evil.com`,
      'localhost',
      '127.0.0.1',
      '[::1]',
      '::1',
      'a.123',
      'a.0x7f',
      `${'a'.repeat(64)}.${zone}`,
      `${'a.'.repeat(130)}${zone}`,
      `-a.${zone}`,
      `a-.${zone}`,
      `xn--.${zone}`,
      `xn--zz-zzzzzz.${zone}`,
      `\u0430pp.${zone}`,
      `app\u3002${zone}`,
      `app\uff0e${zone}`,
      `\u200b.${zone}`,
      `a\u00ad.${zone}`,
      `${real}\u202e`,
      `_acme-challenge.${zone}`,
      `${real}';--`,
      `${real}\r\nX: y`,
    ),
    nearMiss(real),
    shortHostileString,
    fc.tuple(shortHostileString, fc.constantFrom('', '.', '-')).map(([s, sep]) => `${s}${sep}${zone}`),
  );
}

// ---- JSON --------------------------------------------------------------------------------------------------------------

const nestedText = (depth: number, open: string, close: string, inner: string) => open.repeat(depth) + inner + close.repeat(depth);

/** JSON text of hostile values: wrong types, extremes, deep nesting, huge arrays and strings, lone surrogates. */
export const hostileJsonFragment: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 300,
    arbitrary: fc.constantFrom(
      'null',
      'true',
      'false',
      '0',
      '-0',
      '-1',
      '1.5',
      '1e309',
      '-1e309',
      '123456789012345678901234567890',
      '9007199254740993',
      '[]',
      '{}',
      '[null]',
      '[{}]',
      '{"":null}',
      '{"__proto__":{"admin":true}}',
      '{"constructor":{"prototype":{"x":1}}}',
      '""',
      '"\\u0000"',
      '"\\ud800"',
      '"\\udfff\\ud800"',
      '"\\u202e"',
      '"\\\\"',
      '[[[]]]',
      '{"$gt":""}',
      '{"$where":"1"}',
    ),
  },
  { weight: 400, arbitrary: hostileString.map((s) => JSON.stringify(s)) },
  { weight: 150, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) },
  // Deep, long and large: a few percent of the fragments.
  {
    weight: 20,
    arbitrary: fc.oneof(
      fc.integer({ min: 50, max: 20_000 }).map((d) => nestedText(d, '[', ']', '')),
      fc.integer({ min: 50, max: 10_000 }).map((d) => nestedText(d, '{"a":', '}', 'null')),
      fc.integer({ min: 1001, max: 20_000 }).map((n) => `[${'0,'.repeat(n - 1)}0]`),
      fc.integer({ min: 101, max: 2_000 }).map((n) => `[${'"a.example.com",'.repeat(n - 1)}"a.example.com"]`),
      fc.integer({ min: 65_537, max: 100_000 }).map((n) => `"${'A'.repeat(n)}"`),
    ),
  },
  // Near the body limit.
  { weight: 3, arbitrary: fc.constantFrom(nestedText(400_000, '[', ']', ''), `"${'\\u0000'.repeat(150_000)}"`, `[${'{},'.repeat(250_000)}{}]`) },
);

/** Keys an object should not have. */
export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', '', ' ', 'id', 'zone_id', 'status', 'result', 'success', '$where', 'enabled\u0000', 'ENABLED', 'certificate ', 'name\u200b'),
  shortHostileString,
);

/** Bytes that are not UTF-8 (or are UTF-8 a decoder must treat with care). */
const BAD_UTF8: readonly number[][] = [
  [0xff],
  [0xfe, 0xff],
  [0x80],
  [0xc0, 0x80],
  [0xc0, 0xae],
  [0xe0, 0x80, 0xae],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe2, 0x82],
  [0xef, 0xbb, 0xbf],
  [0x00],
  [0x00, 0x00, 0x00],
  [0x1b],
  [0x7f],
];

/** Byte-level corruption of a body's text: truncation, foreign bytes, wrong syntax. Results may still parse. */
export function corruptText(text: string): fc.Arbitrary<Buffer> {
  const buf = Buffer.from(text, 'utf8');
  const n = buf.length;
  const insert = (at: number, bytes: Buffer) => Buffer.concat([buf.subarray(0, at), bytes, buf.subarray(at)]);
  return fc.oneof(
    fc.nat({ max: Math.max(n - 1, 0) }).map((k) => buf.subarray(0, k)),
    fc.tuple(fc.nat({ max: n }), fc.constantFrom(...BAD_UTF8)).map(([at, b]) => insert(at, Buffer.from(b))),
    fc.tuple(fc.nat({ max: n }), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([at, b]) => insert(at, Buffer.from(b))),
    fc.tuple(fc.nat({ max: Math.max(n - 1, 0) }), fc.integer({ min: 0, max: 255 }))
      .map(([at, b]) => Buffer.concat([buf.subarray(0, at), Buffer.from([b]), buf.subarray(at + 1)])),
    fc.constantFrom(
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), buf]),
      Buffer.from(text.replace(/"/g, "'")),
      Buffer.from(text.replace(/}$/, ',}')),
      Buffer.from(text.replace(/^\{/, '{,')),
      Buffer.from(`/* comment */${text}`),
      Buffer.from(`${text}//`),
      Buffer.from(`${text}${text}`),
      Buffer.from(`${text}}`),
      Buffer.from(`${text}x`),
      Buffer.from(`[${text}`),
      Buffer.from(`{${text}}`),
      Buffer.from(text.replace(/:/g, '=')),
      Buffer.from(text.replace(/"([^"]*)":/g, '$1:')),
      Buffer.from(text.replace(/true|false/, 'True')),
      Buffer.from(text.replace(/"/, '"\u0000')),
      Buffer.from(text.replace(/"([^"]+)"/, '"$1\n"')),
      Buffer.from(text.replace(/\d/, 'NaN')),
      Buffer.from(text, 'utf16le'),
      Buffer.from(text, 'latin1'),
    ),
  );
}

/** Whole bodies that are no JSON object at all. */
export const smallGarbage: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
  fc.string({ unit: 'binary', maxLength: 100 }).map((s) => Buffer.from(s)),
  fc.constantFrom(
    '',
    ' ',
    '\r\n\t ',
    'null',
    'true',
    '0',
    '"{}"',
    '[{}]',
    '{',
    '}',
    '{"',
    '{"a"',
    '{"a":',
    '{"a":}',
    '{"a" "b"}',
    '{a:1}',
    "{'a':1}",
    '{"a":1,,}',
    '{"a":01}',
    '{"a":.5}',
    '{"a":0x10}',
    '{"a":NaN}',
    '{"a":Infinity}',
    '{"a":undefined}',
    '{"a":"\\x41"}',
    '{"a":"\\u12"}',
    '{"a":"\\uZZZZ"}',
    '{"a":"unterminated',
    'enabled=true',
    'certificate=-----BEGIN%20CERTIFICATE-----',
    '<?xml version="1.0"?><a/>',
    '--boundary\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--boundary--',
  ).map((s) => Buffer.from(s)),
);

export const garbageBody: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 20, arbitrary: smallGarbage },
  { weight: 10, arbitrary: hostileJsonFragment.map((s) => Buffer.from(s)) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 200_000 }).map((d) => Buffer.from('['.repeat(d))) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 100_000 }).map((d) => Buffer.from('{"a":'.repeat(d))) },
);

// ---- certificates and keys ----------------------------------------------------------------------------------------

export interface PemMaterial {
  /** A certificate already stored for this route's scope (uploading it again is a duplicate). */
  stored: string;
  /** A certificate never uploaded (a body built on it is valid). */
  fresh: string;
  /** Other certificates (CAs and leaves) and private keys to build chains and mixes from. */
  others: string[];
  keys: string[];
}

const derOf = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
const labelOf = (pem: string): string => /-----BEGIN ([^-]+)-----/.exec(pem)?.[1] ?? 'CERTIFICATE';

/** PEM text (certificate or key) with its armour or its DER damaged, mixed, relabelled, multiplied or inflated. */
export function hostilePem(m: PemMaterial, field: 'certificate' | 'key'): fc.Arbitrary<string> {
  const bases = field === 'certificate' ? [m.stored, m.fresh] : m.keys;
  const base = fc.constantFrom(...bases);
  const anyPem = fc.constantFrom(m.stored, m.fresh, ...m.others, ...m.keys);
  return fc.oneof(
    // The base64 payload corrupted by one character that is not base64 (whitespace would be ignored).
    fc.tuple(base, fc.nat(), fc.constantFrom('!', '*', '$', '\u0000', 'é', '=', '.', '\u00ff', '\ufffd', '"', '\\', '-'))
      .map(([pem, i, c]) => {
        const start = pem.indexOf('\n') + 1;
        const end = pem.lastIndexOf('-----END');
        const at = start + (i % Math.max(end - start - 1, 1));
        return pem.slice(0, at) + c + pem.slice(at);
      }),
    // Truncated DER (a prefix, re-armoured), DER with trailing bytes, DER with one byte changed.
    fc.tuple(base, fc.nat()).map(([pem, k]) => toPem(labelOf(pem), derOf(pem).subarray(0, k % derOf(pem).length))),
    fc.tuple(base, fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([pem, extra]) => toPem(labelOf(pem), Buffer.concat([derOf(pem), extra]))),
    fc.tuple(base, fc.nat(), fc.integer({ min: 1, max: 255 })).map(([pem, i, x]) => {
      const der = Buffer.from(derOf(pem));
      der[i % der.length] ^= x;
      return toPem(labelOf(pem), der);
    }),
    // Armour problems.
    base.map((pem) => pem.replace(/-----END [^-]+-----\s*$/, '')),
    base.map((pem) => pem.replace(/-----BEGIN [^-]+-----/, '')),
    fc.tuple(base, fc.constantFrom('X509 CERTIFICATE', 'TRUSTED CERTIFICATE', 'certificate', 'CERTIFICATE REQUEST', 'PRIVATE KEY', 'RSA PRIVATE KEY', 'ENCRYPTED PRIVATE KEY', 'PUBLIC KEY', ''))
      .map(([pem, label]) => pem.replace(/(-----(?:BEGIN|END) )[^-]+(-----)/g, `$1${label}$2`)),
    base.map((pem) => pem.replace(/-----END ([^-]+)-----/, '-----END SOMETHING ELSE-----')),
    base.map((pem) => pem.replace(/\n(?=[A-Za-z0-9+/])/, '\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n')),
    base.map((pem) => derOf(pem).toString('base64')),
    base.map((pem) => derOf(pem).toString('latin1')),
    // Garbage around a real block (tolerated by PEM, so the result is the stored certificate: a duplicate).
    fc.tuple(fc.constant(field === 'certificate' ? m.stored : m.keys[0]), shortHostileString, shortHostileString).map(([pem, a, b]) => `${a}\n${pem}\n${b}`),
    fc.tuple(base, fc.constantFrom('\r\n', '\r', '\n\n', ' ', '\t')).map(([pem, eol]) => pem.replace(/\n/g, eol)),
    // The wrong thing in the field, or several things.
    anyPem,
    fc.tuple(base, anyPem, anyPem).map(([a, b, c]) => a + b + c),
    fc.tuple(anyPem, base).map(([a, b]) => a + b),
    // Enormous chains: the stored certificate followed by many others, up to (and past) the field's limit.
    fc.tuple(fc.constantFrom(...m.others), fc.integer({ min: 10, max: 110 })).map(([other, n]) => (field === 'certificate' ? m.stored : m.keys[0]) + other.repeat(n)),
    fc.integer({ min: 100, max: 3000 }).map((n) => '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'.repeat(n)),
    fc.integer({ min: 100, max: 3000 }).map((n) => '-----BEGIN CERTIFICATE-----\n'.repeat(n)),
    fc.integer({ min: 2, max: 100 }).map((n) => `-----BEGIN ${'A'.repeat(n * 10)}-----\nAAAA\n-----END ${'A'.repeat(n * 10)}-----\n`),
    fc.tuple(base, hostileString).map(([pem, s]) => pem.replace(/\n(?=-----END)/, `\n${s}\n`)),
    hostileString,
  );
}

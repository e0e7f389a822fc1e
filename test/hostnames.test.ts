import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type HostnameProblem,
  isSubdomainOrEqual,
  isZoneApex,
  normalizeHostname,
  parentDomains,
} from '../src/domain/hostnames.js';

const label = (n: number, ch = 'a') => ch.repeat(n);
// 4 labels of 63 + 3 dots = 255; 3 of 63 + one of 61 + 3 dots = 253
const name253 = [label(63), label(63), label(63), label(61)].join('.');
const name254 = [label(63), label(63), label(63), label(62)].join('.');

const PROBLEMS: HostnameProblem[] = [
  'empty', 'too_long', 'label_too_long', 'invalid_characters', 'wildcard',
  'ip_address', 'single_label', 'empty_label', 'hyphen',
];

type Case = [input: unknown, expected: string | HostnameProblem, opts?: { allowWildcard?: boolean }];
const W = { allowWildcard: true };

const cases: Case[] = [
  // accepted and normalised
  ['example.com', 'example.com'],
  ['app.example.com', 'app.example.com'],
  ['App.Example.COM', 'app.example.com'],
  ['app.example.com.', 'app.example.com'],
  ['APP.EXAMPLE.COM.', 'app.example.com'],
  ['a.b', 'a.b'],
  ['a-b.example.com', 'a-b.example.com'],
  ['a--b.example.com', 'a--b.example.com'],
  ['123.example.com', '123.example.com'],
  ['1.2.3.example', '1.2.3.example'],
  ['_acme-challenge.example.com', '_acme-challenge.example.com'],
  ['_dmarc.example.com', '_dmarc.example.com'],
  ['a_.example.com', 'a_.example.com'],
  ['xn--bcher-kva.example.com', 'xn--bcher-kva.example.com'],
  ['XN--BCHER-KVA.example.com', 'xn--bcher-kva.example.com'],
  ['xn--zz.example.com', 'xn--zz.example.com'], // ASCII xn-- accepted as-is, not punycode-validated
  ['bücher.example.com', 'xn--bcher-kva.example.com'],
  ['BÜCHER.example.com', 'xn--bcher-kva.example.com'],
  ['bücher.example.com.', 'xn--bcher-kva.example.com'],
  ['例え.jp', 'xn--r8jz45g.jp'],
  ['bücher。example。com', 'xn--bcher-kva.example.com'], // IDNA ideographic full stop
  ['ｅｘａｍｐｌｅ.com', 'example.com'], // fullwidth letters are mapped to ASCII by UTS #46
  [`${label(63)}.example.com`, `${label(63)}.example.com`],
  [name253, name253],
  [name253 + '.', name253],
  ['*.example.com', '*.example.com', W],
  ['*.Sub.Example.com.', '*.sub.example.com', W],
  ['*.bücher.example', '*.xn--bcher-kva.example', W],

  // empty / empty_label
  ['', 'empty'],
  ['.', 'empty_label'],
  ['..', 'empty_label'],
  ['app.example.com..', 'empty_label'],
  ['.example.com', 'empty_label'],
  ['a..example.com', 'empty_label'],

  // lengths
  [name254, 'too_long'],
  [name254 + '.', 'too_long'],
  ['a'.repeat(256), 'too_long'],
  [name253 + '..', 'empty_label'], // 255 chars: within the input limit, then the empty label
  [name253 + '...', 'too_long'], // 256 chars: rejected by input length first
  [`${label(64)}.example.com`, 'label_too_long'],
  [`app.${label(64)}.com`, 'label_too_long'],
  ['日本語のドメイン名は長くなりがちです例えばこれはとても長い.example.com', 'label_too_long'], // 29 chars, 67 as A-label
  ['日本語のドメイン名は長くなりがちです例えばこれは.example.com', 'xn--r8jhis2a1c2bv8akik64a9a33aluymzkr542cg3sawu9ft4f682upo3b.example.com'],

  // invalid characters (no trimming)
  [' example.com', 'invalid_characters'],
  ['example.com ', 'invalid_characters'],
  ['exa mple.com', 'invalid_characters'],
  ['example.com\n', 'invalid_characters'],
  ['\texample.com', 'invalid_characters'],
  ['exam\u0000ple.com', 'invalid_characters'],
  ['ex@mple.com', 'invalid_characters'],
  ['example.com/path', 'invalid_characters'],
  ['example.com:443', 'invalid_characters'],
  ['https://example.com', 'invalid_characters'],
  ['ex%41mple.com', 'invalid_characters'],
  ['exa!mple.com', 'invalid_characters'],
  ['ü\u200b', 'single_label'],
  ['\u200b.example.com', 'invalid_characters'], // label that maps to nothing
  ['ab\u00ad.example.com', 'ab.example.com'], // soft hyphen is ignored by UTS #46 mapping
  ['a\u2488.example.com', 'invalid_characters'], // U+2488 "1." maps to a dot: refused
  ['xn--bü.com', 'invalid_characters'],
  ['bad\uFFFD.com', 'invalid_characters'],
  [42, 'invalid_characters'],
  [null, 'invalid_characters'],
  [undefined, 'invalid_characters'],
  [['example.com'], 'invalid_characters'],

  // hyphens
  ['-app.example.com', 'hyphen'],
  ['app-.example.com', 'hyphen'],
  ['app.example-.com', 'hyphen'],
  ['app.-example.com', 'hyphen'],
  ['-.example.com', 'hyphen'],

  // IP addresses
  ['192.0.2.1', 'ip_address'],
  ['192.0.2.1.', 'ip_address'],
  ['255.255.255.255', 'ip_address'],
  ['256.1.1.1', 'ip_address'], // numeric last label: URL parsers treat it as IPv4
  ['127.1', 'ip_address'],
  ['0x7f.0x1', 'ip_address'],
  ['example.123', 'ip_address'],
  ['123', 'ip_address'],
  ['::1', 'ip_address'],
  ['[::1]', 'ip_address'],
  ['2001:db8::1', 'ip_address'],
  ['[2001:db8::1]', 'ip_address'],
  ['::ffff:192.0.2.1', 'ip_address'],
  ['2001:db8::zz', 'invalid_characters'],

  // single label
  ['localhost', 'single_label'],
  ['com', 'single_label'],
  ['com.', 'single_label'],
  ['bücher', 'single_label'],
  ['*.com', 'single_label', W],
  ['*', 'single_label', W],

  // wildcards
  ['*.example.com', 'wildcard'],
  ['*', 'wildcard'],
  ['*.example.com', 'wildcard', { allowWildcard: false }],
  ['a.*.example.com', 'wildcard', W],
  ['*a.example.com', 'wildcard', W],
  ['a*.example.com', 'wildcard', W],
  ['**.example.com', 'wildcard', W],
  ['*.*.example.com', 'wildcard', W],
  ['example.*', 'wildcard', W],
];

test(`normalizeHostname table (${cases.length} cases)`, () => {
  assert.ok(cases.length >= 40);
  for (const [input, expected, opts] of cases) {
    const r = normalizeHostname(input, opts);
    const where = `${JSON.stringify(input)?.slice(0, 80)} ${opts ? JSON.stringify(opts) : ''}`;
    if ((PROBLEMS as string[]).includes(expected)) {
      assert.equal(r.ok, false, `${where}: expected ${expected}, got ${JSON.stringify(r)}`);
      if (!r.ok) {
        assert.equal(r.problem, expected, `${where}: ${r.message}`);
        assert.ok(r.message.length > 0 && r.message.length < 120);
      }
    } else {
      assert.deepEqual(r, { ok: true, hostname: expected }, where);
    }
  }
});

test('every problem kind is covered by the table', () => {
  const seen = new Set(cases.map(([, e]) => e));
  for (const p of PROBLEMS) assert.ok(seen.has(p), p);
});

test('messages are sentences naming the problem and do not echo the input', () => {
  const secret = 'ZZSECRETZZ';
  const inputs = [` ${secret}.com`, `${secret}`, `-${secret}.com`, `${secret}.${'x'.repeat(300)}`, `*.${secret}.com`];
  for (const input of inputs) {
    const r = normalizeHostname(input);
    assert.equal(r.ok, false);
    if (!r.ok) assert.ok(!r.message.includes(secret), r.message);
  }
  const r = normalizeHostname(name254);
  assert.ok(!r.ok && r.message === 'hostname is longer than 253 characters');
});

test('normalisation is idempotent', () => {
  for (const [input, , opts] of cases) {
    const r = normalizeHostname(input, opts);
    if (r.ok) assert.deepEqual(normalizeHostname(r.hostname, opts), r);
  }
});

test('parentDomains', () => {
  assert.deepEqual(parentDomains('a.b.example.com'), ['a.b.example.com', 'b.example.com', 'example.com', 'com']);
  assert.deepEqual(parentDomains('example.com'), ['example.com', 'com']);
  assert.deepEqual(parentDomains('com'), ['com']);
  assert.deepEqual(parentDomains('*.example.com'), ['*.example.com', 'example.com', 'com']);
  assert.deepEqual(parentDomains(''), []);
});

test('isSubdomainOrEqual', () => {
  const t: [string, string, boolean][] = [
    ['a.example.com', 'example.com', true],
    ['a.b.example.com', 'example.com', true],
    ['example.com', 'example.com', true],
    ['Example.COM', 'example.com', true],
    ['example.com.', 'example.com', true],
    ['a.example.com', 'example.com.', true],
    ['*.example.com', 'example.com', true],
    ['badexample.com', 'example.com', false],
    ['example.com', 'a.example.com', false],
    ['example.com.evil.net', 'example.com', false],
    ['xexample.com', 'example.com', false],
    ['com', 'example.com', false],
    ['example.co', 'example.com', false],
    ['example.com', '', false],
    ['', 'example.com', false],
    ['', '', false],
    ['example.com', 'com', true],
  ];
  for (const [h, a, want] of t) assert.equal(isSubdomainOrEqual(h, a), want, `${h} within ${a}`);
});

test('isZoneApex', () => {
  assert.equal(isZoneApex('example.com'), true);
  assert.equal(isZoneApex('example.co.uk'), true);
  assert.equal(isZoneApex('sub.example.com'), true);
  assert.equal(isZoneApex('com'), false);
  assert.equal(isZoneApex('*.example.com'), false);
  assert.equal(isZoneApex('192.0.2.1'), false);
  assert.equal(isZoneApex(''), false);
  assert.equal(isZoneApex('-bad.com'), false);
});

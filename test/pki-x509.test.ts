/**
 * parseCertificates without OpenSSL: certplane's DER reader stands in for OpenSSL's certificate decoder (d2i_X509,
 * what `new X509Certificate` runs), so it must refuse whatever that decoder refuses. Checked on certificates made by
 * the openssl CLI and by the test helper, on hand-made variants (each refused or accepted by both, or refused only
 * here because it is not DER), and on random structural mutations.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeLeaf } from './helpers/certs.js';
import { type DerNode, cloneDer, derAt, derToPem, encodeDer, opensslWorkdir, parseDer, pemToDer, prng, tlv } from './helpers/pki.js';
import { PkiError, parseCertificates } from '../src/pki/index.js';

type Verdict = 'ok' | 'refused';

function ours(der: Buffer): Verdict {
  try {
    const [p] = parseCertificates(derToPem('CERTIFICATE', der));
    assert.equal(p.x509.fingerprint256.replace(/:/g, '').toLowerCase(), p.fingerprintSha256, 'the lazy X509Certificate is this certificate');
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof PkiError && e.kind === 'cert_unparseable', `expected cert_unparseable, got ${String(e)}`);
    return 'refused';
  }
}

function openssl(der: Buffer): Verdict {
  try {
    new X509Certificate(der);
    return 'ok';
  } catch {
    return 'refused';
  }
}

const H = (hex: string): DerNode => parseDer(Buffer.from(hex, 'hex'));
const tbs = (c: DerNode): DerNode[] => derAt(c, 0).kids!;
/** The subject's CN value (the last RDN of the certificates made below). */
const cnValue = (c: DerNode): DerNode[] => derAt(c, 0, 5).kids!.at(-1)!.kids![0].kids!;
/** The Extension with this OID (DER contents, hex). */
function ext(c: DerNode, oidHex: string): DerNode[] {
  const found = derAt(c, 0, 7, 0).kids!.find((e) => e.kids![0].body.toString('hex') === oidHex);
  assert.ok(found, `extension ${oidHex}`);
  return found.kids!;
}
const KEY_USAGE = '551d0f';
const SAN = '551d11';
/** Sets the parameters of both signature AlgorithmIdentifiers (they must stay equal). */
function sigParams(c: DerNode, hex: string | DerNode): void {
  derAt(c, 0, 2).kids![1] = typeof hex === 'string' ? H(hex) : hex;
  derAt(c, 1).kids![1] = typeof hex === 'string' ? H(hex) : hex;
}
function setCn(hex: string): (c: DerNode) => void {
  return (c) => void (cnValue(c)[1] = H(hex));
}

/** Edits of an RSA leaf made by `openssl req` (v3, subject C/ST/O/OU/CN, extensions SKI, AKI, SAN, KU, EKU, BC). */
const REFUSED_BY_BOTH: [string, (c: DerNode) => void][] = [
  ['version INTEGER not minimal', (c) => void (tbs(c)[0].kids![0] = H('02020002'))],
  ['version [0] empty', (c) => void (tbs(c)[0].kids = [])],
  ['version [0] with two INTEGERs', (c) => void tbs(c)[0].kids!.push(H('020102'))],
  ['serial not minimal', (c) => void (tbs(c)[1].body = Buffer.concat([Buffer.from([0]), tbs(c)[1].body]))],
  ['serial negative, not minimal', (c) => void (tbs(c)[1] = H('0202ff80'))],
  ['SPKI algorithm not an OID', (c) => void (derAt(c, 0, 6, 0).kids![0] = H('020101'))],
  ['SPKI algorithm OID with a non-minimal arc', (c) => void (derAt(c, 0, 6, 0).kids![0] = H('060b2a8086864886f70d010101'))],
  ['SPKI NULL parameters with contents', (c) => void (derAt(c, 0, 6, 0).kids![1] = H('050100'))],
  ['SPKI AlgorithmIdentifier with three elements', (c) => void derAt(c, 0, 6, 0).kids!.push(H('0500'))],
  ['SPKI key as OCTET STRING', (c) => void (derAt(c, 0, 6, 1).tag = 0x04)],
  ['SPKI BIT STRING with 8 unused bits', (c) => void (derAt(c, 0, 6, 1).body[0] = 8)],
  ['SPKI BIT STRING empty', (c) => void (derAt(c, 0, 6, 1).body = Buffer.alloc(0))],
  ['SPKI with an extra element', (c) => void derAt(c, 0, 6).kids!.push(H('0500'))],
  ['SPKI without its key', (c) => void derAt(c, 0, 6).kids!.pop()],
  ['signature parameters NULL with contents', (c) => sigParams(c, '050100')],
  ['signature parameters INTEGER not minimal', (c) => sigParams(c, '02020001')],
  ['signature parameters ENUMERATED empty', (c) => sigParams(c, '0a00')],
  ['signature parameters BOOLEAN of two octets', (c) => sigParams(c, '01020000')],
  ['signature parameters BMPString of odd length', (c) => sigParams(c, '1e0141')],
  ['signature parameters UniversalString of 3 octets', (c) => sigParams(c, '1c03000041')],
  ['signature parameters empty OID', (c) => sigParams(c, '0600')],
  ['signature parameters BIT STRING with 9 unused bits', (c) => sigParams(c, '030209ff')],
  ['signature parameters with tag 0', (c) => sigParams(c, '0000')],
  ['signature parameters constructed NULL', (c) => sigParams(c, '2500')],
  ['signature BIT STRING with 8 unused bits', (c) => void (derAt(c, 2).body[0] = 8)],
  ['name value VisibleString', (c) => void (cnValue(c)[1].tag = 0x1a)],
  ['name value GeneralString', setCn('1b0141')],
  ['name value GraphicString', setCn('190141')],
  ['name value invalid UTF-8', setCn('0c02c328')],
  ['name value UTF-8 surrogate', setCn('0c03eda080')],
  ['name value overlong UTF-8', setCn('0c02c0af')],
  ['name value UTF-8 above U+10FFFF', setCn('0c04f4908080')],
  ['name value BMPString of odd length', setCn('1e03004100')],
  ['name value BMPString surrogate', setCn('1e02d800')],
  ['name value BMPString surrogate pair', setCn('1e04d83dde00')],
  ['name value UniversalString of 3 octets', setCn('1c03000041')],
  ['name value UniversalString above U+10FFFF', setCn('1c0400110000')],
  ['name value INTEGER', setCn('020101')],
  ['name value OCTET STRING', setCn('040141')],
  ['name value NULL', setCn('0500')],
  ['name value OID', setCn('06032a0304')],
  ['name value UTCTime', setCn('170d3236313230323133333633375a')],
  ['name value SET', setCn('3100')],
  ['name value BIT STRING with 9 unused bits', setCn('03020941')],
  ['name value [0]', setCn('800141')],
  ['Extension critical of two octets', (c) => void (ext(c, KEY_USAGE)[1] = H('01020000'))],
  ['Extension value as INTEGER', (c) => void (ext(c, SAN)[1].tag = 0x02)],
  ['Extension with four elements', (c) => void ext(c, SAN).push(H('0400'))],
  ['Extension with the value before critical', (c) => {
    const e = ext(c, KEY_USAGE);
    [e[1], e[2]] = [e[2], e[1]];
  }],
  ['tbsCertificate with an INTEGER at the end', (c) => void tbs(c).push(H('020101'))],
  ['tbsCertificate with NULL after the SPKI', (c) => void tbs(c).splice(7, 0, H('0500'))],
  ['unique identifiers in the wrong order', (c) => void tbs(c).splice(7, 0, H('82020000'), H('81020000'))],
  ['issuerUniqueID with 9 unused bits', (c) => void tbs(c).splice(7, 0, H('81020900'))],
  ['issuerUniqueID empty', (c) => void tbs(c).splice(7, 0, H('8100'))],
  ['issuerUniqueID after the extensions', (c) => void tbs(c).push(H('81020000'))],
  ['a [4] field', (c) => void tbs(c).push(H('a4020500'))],
  ['extensions twice', (c) => void tbs(c).push(tbs(c)[7])],
  ['extensions as a primitive [3]', (c) => void (tbs(c)[7] = { tag: 0x83, body: encodeDer(tbs(c)[7].kids![0]) })],
  ['garbage inside a valid outer SEQUENCE', (c) => void (c.kids = [{ tag: 0x30, body: Buffer.from('0205ffff0000', 'hex') }, derAt(c, 1), derAt(c, 2)])],
  ['a truncated tbsCertificate in a valid outer SEQUENCE', (c) => void (c.kids![0] = { tag: 0x30, body: encodeDer(derAt(c, 0)).subarray(4, 200) })],
];

const ACCEPTED_BY_BOTH: [string, (c: DerNode) => void][] = [
  ['version 5', (c) => void (tbs(c)[0].kids![0] = H('020105'))],
  ['serial negative', (c) => void (tbs(c)[1] = H('0201ff'))],
  ['serial zero', (c) => void (tbs(c)[1] = H('020100'))],
  ['serial of 21 octets', (c) => void (tbs(c)[1] = H('0215' + '11'.repeat(21)))],
  ['SPKI with an unknown algorithm', (c) => void (derAt(c, 0, 6, 0).kids![0] = H('06032a0304'))],
  ['SPKI key that is no RSA key', (c) => void (derAt(c, 0, 6, 1).body = Buffer.from('0030030201', 'hex'))],
  ['signature parameters: invalid UTF-8 (opaque to OpenSSL)', (c) => sigParams(c, '0c01ff')],
  ['signature parameters: a SEQUENCE holding garbage', (c) => sigParams(c, { tag: 0x30, body: Buffer.from('0205', 'hex') })],
  ['name value PrintableString with * and 8-bit octets', setCn('13032ae940')],
  ['name value IA5String with an 8-bit octet', setCn('1601e9')],
  ['name value T61String', setCn('1401e9')],
  ['name value NumericString with a letter', setCn('120141')],
  ['name value UTF-8 with NUL, BOM and U+FFFE', setCn('0c0700efbbbfefbfbe')],
  ['name value UniversalString U+FFFE', setCn('1c040000fffe')],
  ['name value SEQUENCE', setCn('3000')],
  ['name value BIT STRING', setCn('03020041')],
  ['name value ObjectDescriptor (an unknown type)', setCn('070141')],
  ['name with an empty RDN', (c) => void (derAt(c, 0, 5).kids!.at(-1)!.kids = [])],
  ['empty subject', (c) => void (derAt(c, 0, 5).kids = [])],
  ['multi-valued RDN', (c) => void derAt(c, 0, 5).kids!.at(-1)!.kids!.push(derAt(c, 0, 5, 0, 0))],
  ['Extension critical FALSE written out', (c) => void ext(c, SAN).splice(1, 0, H('010100'))],
  ['Extension critical as 0x01', (c) => void (ext(c, KEY_USAGE)[1] = H('010101'))],
  ['Extension SAN twice', (c) => void derAt(c, 0, 7, 0).kids!.push(derAt(c, 0, 7, 0).kids!.find((e) => e.kids![0].body.toString('hex') === SAN)!)],
  ['Extension values that are not DER', (c) => void (ext(c, SAN)[1].body = Buffer.from('ffff', 'hex'))],
  ['no extensions in [3]', (c) => void (derAt(c, 0, 7, 0).kids = [])],
  ['issuerUniqueID and subjectUniqueID', (c) => void tbs(c).splice(7, 0, H('81020000'), H('82020000'))],
];

/** Not DER (a constructed encoding of a string), which OpenSSL's BER decoder takes. */
const REFUSED_HERE_ONLY: [string, (c: DerNode) => void][] = [
  ['name value: constructed UTF8String', setCn('2c030c0141')],
  ['name value: constructed BIT STRING', setCn('230403020041')],
  ['signature parameters: constructed BIT STRING', (c) => sigParams(c, '230403020041')],
  ['constructed issuerUniqueID', (c) => void tbs(c).splice(7, 0, H('a104030200ff'))],
];

const cli = opensslWorkdir();
const seeds: { name: string; der: Buffer }[] = [];
let rsaLeaf: DerNode;

before(async () => {
  const made = (name: string, file: string): void => void seeds.push({ name, der: pemToDer(cli.run('x509', '-in', file)) });
  const leafExts = ['-addext', 'subjectAltName=DNS:leaf.example,IP:192.0.2.1,email:a@example.com', '-addext', 'keyUsage=critical,digitalSignature',
    '-addext', 'extendedKeyUsage=clientAuth', '-addext', 'basicConstraints=critical,CA:FALSE'];
  cli.run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rsa.key', '-out', 'rsa.pem', '-days', '3',
    '-subj', '/C=US/ST=CA/O=Test Org/OU=Unit/CN=leaf.example', ...leafExts);
  made('openssl RSA leaf', 'rsa.pem');
  rsaLeaf = parseDer(seeds[0].der);
  writeFileSync(join(cli.dir, 'ca.cnf'), [
    '[req]', 'distinguished_name=dn', '[dn]', '[ext]', 'basicConstraints=critical,CA:TRUE,pathlen:2', 'keyUsage=critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid:always', 'nameConstraints=permitted;DNS:example.com',
    'certificatePolicies=2.5.29.32.0', 'crlDistributionPoints=URI:http://crl.example/ca.crl', 'authorityInfoAccess=OCSP;URI:http://ocsp.example/',
    '1.2.3.4.5=ASN1:UTF8String:hello', '',
  ].join('\n'));
  cli.run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3',
    '-config', 'ca.cnf', '-extensions', 'ext', '-utf8', '-subj', '/C=DE/O=Örg ünïcödé/CN=CA');
  made('openssl EC P-384 CA, many extensions', 'ca.pem');
  cli.run('req', '-x509', '-newkey', 'ed25519', '-nodes', '-keyout', 'ed.key', '-out', 'ed.pem', '-days', '3', '-subj', '/CN=ed25519', ...leafExts);
  made('openssl Ed25519', 'ed.pem');
  cli.run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'pss.key', '-out', 'pss.pem', '-days', '3', '-subj', '/CN=pss',
    '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32', '-sha256');
  made('openssl RSA-PSS', 'pss.pem');
  cli.run('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521', '-nodes', '-keyout', 'v1.key', '-out', 'v1.csr',
    '-subj', '/CN=v1/emailAddress=a@example.com/serialNumber=123/DC=example');
  cli.run('x509', '-req', '-in', 'v1.csr', '-key', 'v1.key', '-out', 'v1.pem', '-days', '3');
  made('openssl v1 (no extensions)', 'v1.pem');
  const leaf = await makeLeaf({ keyType: 'p256', dnsNames: ['helper.example'] });
  seeds.push({ name: 'test helper P-256 leaf', der: pemToDer(leaf.certPem) });
});
after(() => cli.cleanup());

describe('the DER reader refuses what OpenSSL refuses', () => {
  test('the certificates it starts from parse, both ways', () => {
    for (const s of seeds) {
      assert.equal(openssl(s.der), 'ok', s.name);
      assert.equal(ours(s.der), 'ok', s.name);
    }
  });

  const cases: [string, [string, (c: DerNode) => void][], Verdict, Verdict][] = [
    ['refused by both', REFUSED_BY_BOTH, 'refused', 'refused'],
    ['accepted by both', ACCEPTED_BY_BOTH, 'ok', 'ok'],
    ['refused here only (not DER)', REFUSED_HERE_ONLY, 'refused', 'ok'],
  ];
  for (const [what, edits, want, wantOpenssl] of cases) {
    test(`hand-made variants ${what}`, () => {
      for (const [label, edit] of edits) {
        const c = cloneDer(rsaLeaf);
        edit(c);
        const der = encodeDer(c);
        assert.equal(openssl(der), wantOpenssl, `${label}: OpenSSL`);
        assert.equal(ours(der), want, label);
      }
    });
  }

  test('random structural mutations: whatever parses, OpenSSL decodes too', () => {
    const rnd = prng(0xdec0de);
    const ri = (n: number): number => Math.floor(rnd() * n);
    const tags = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x1a, 0x1c, 0x1e, 0x30, 0x31, 0xa0, 0xa3, 0x80, 0x81, 0x82];
    const samples = ['0500', '020100', '02020001', '0101ff', '010101', '3000', '3100', '0400', '0300', '030108', '0c02c328', '1e0141', '13012a', '81020000', '06032a0304', '060180'];
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 1500; i++) {
      const seed = seeds[i % seeds.length];
      const c = cloneDer(parseDer(seed.der));
      const all: DerNode[] = [];
      const walk = (n: DerNode): void => {
        all.push(n);
        n.kids?.forEach(walk);
      };
      walk(c);
      const constructed = all.filter((n) => n.kids);
      for (let k = 0, edits = 1 + ri(2); k < edits; k++) {
        const n = all[ri(all.length)];
        const parent = constructed[ri(constructed.length)];
        switch (ri(8)) {
          case 0: // flip a bit in a primitive
            if (!n.kids && n.body.length) n.body[ri(n.body.length)] ^= 1 << ri(8);
            break;
          case 1: // another tag for a primitive
            if (!n.kids) n.tag = tags[ri(tags.length)];
            break;
          case 2: // insert an element
            parent.kids!.splice(ri(parent.kids!.length + 1), 0, H(samples[ri(samples.length)]));
            break;
          case 3: // remove an element
            if (parent.kids!.length) parent.kids!.splice(ri(parent.kids!.length), 1);
            break;
          case 4: // repeat an element
            if (parent.kids!.length) {
              const j = ri(parent.kids!.length);
              parent.kids!.splice(j, 0, cloneDer(parent.kids![j]));
            }
            break;
          case 5: // swap two elements
            if (parent.kids!.length > 1) {
              const a = ri(parent.kids!.length);
              const b = ri(parent.kids!.length);
              [parent.kids![a], parent.kids![b]] = [parent.kids![b], parent.kids![a]];
            }
            break;
          case 6: // a redundant leading zero octet
            if (!n.kids) n.body = Buffer.concat([Buffer.from([0]), n.body]);
            break;
          default: // replace a primitive by another element
            if (!n.kids) Object.assign(n, H(samples[ri(samples.length)]));
        }
      }
      const der = encodeDer(c);
      const mine = ours(der);
      const theirs = openssl(der);
      outcomes.set(`${mine}/${theirs}`, (outcomes.get(`${mine}/${theirs}`) ?? 0) + 1);
      if (mine === 'ok') assert.equal(theirs, 'ok', `#${i} (${seed.name}) parses, OpenSSL refuses it: ${der.toString('hex')}`);
    }
    // The mutations reached both outcomes.
    assert.ok((outcomes.get('ok/ok') ?? 0) > 300, JSON.stringify([...outcomes]));
    assert.ok((outcomes.get('refused/refused') ?? 0) > 300, JSON.stringify([...outcomes]));
  });

  test('byte-level damage: truncated, cut, overwritten, with length-byte attacks', () => {
    const rnd = prng(0xb17e);
    const ri = (n: number): number => Math.floor(rnd() * n);
    for (let i = 0; i < 800; i++) {
      const src = seeds[i % seeds.length].der;
      let b = Buffer.from(src);
      switch (ri(4)) {
        case 0:
          b = b.subarray(0, ri(b.length));
          break;
        case 1:
          for (let k = 0, n = 1 + ri(3); k < n; k++) b[ri(b.length)] = ri(256);
          break;
        case 2:
          b[ri(b.length)] ^= 1 << ri(8);
          break;
        default:
          b[ri(b.length)] = [0x00, 0x80, 0x81, 0x82, 0x84, 0xff][ri(6)];
      }
      if (ours(b) === 'ok') assert.equal(openssl(b), 'ok', `#${i} parses, OpenSSL refuses it: ${b.toString('hex')}`);
    }
    // A truncated certificate inside a SEQUENCE whose length was fixed up.
    assert.equal(ours(tlv(0x30, seeds[0].der.subarray(4, 300))), 'refused');
  });
});

/**
 * Tools for the PKI suites (test/pki*.test.ts): an independent PEM decoder, a tiny DER encoder, a lenient DER tree
 * (parse, edit, encode again with correct lengths) to build well-formed but wrong certificates and keys, a
 * deterministic PRNG, and the openssl CLI in a scratch directory.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PkiError, type PkiErrorKind } from '../../src/pki/index.js';

/** Runs fn, which must throw PkiError(kind) with a fixed message (never echoing base64 input). */
export function assertPkiError(fn: () => unknown, kind: PkiErrorKind, label = ''): PkiError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof PkiError, `${label}: expected PkiError, got ${String(e)}`);
    assert.equal(e.kind, kind, `${label}: kind`);
    assert.equal(e.name, 'PkiError');
    // Messages are fixed strings: never echo (base64) input.
    assert.doesNotMatch(e.message, /[A-Za-z0-9+/]{40,}/, `${label}: message must not contain input`);
    return e;
  }
  assert.fail(`${label}: expected PkiError(${kind}), nothing was thrown`);
}

/** Independent PEM -> DER (first block, or the first block with `label`). */
export function pemToDer(pem: string, label = '[A-Z0-9 ]+'): Buffer {
  const m = new RegExp(`-----BEGIN (${label})-----([\\s\\S]*?)-----END \\1-----`).exec(pem);
  assert.ok(m, 'PEM block');
  return Buffer.from(m[2].replace(/\s+/g, ''), 'base64');
}

export function derToPem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;
}

/** Deterministic PRNG (mulberry32). */
export { seededRng as prng } from './random.js';

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Minimal DER encoder for hand-made structures. */
export function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const bytes: number[] = [arcs[0] * 40 + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const chunk: number[] = [];
    let v = arc;
    do {
      chunk.unshift((v & 0x7f) | (chunk.length ? 0x80 : 0));
      v = Math.floor(v / 128);
    } while (v > 0);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** A positive INTEGER, minimally encoded. */
export function derInteger(v: bigint): Buffer {
  let hex = v.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  const body = Buffer.from(hex, 'hex');
  return tlv(0x02, body[0] & 0x80 ? Buffer.concat([Buffer.from([0]), body]) : body);
}

/** One element of a DER tree: constructed elements have `kids`, primitive ones a `body`. */
export interface DerNode {
  tag: number;
  body: Buffer;
  kids?: DerNode[];
}

/** Parses DER into a tree (lenient about length encodings: only for inputs the tests made or took from real tools). */
export function parseDer(buf: Buffer): DerNode {
  const walk = (pos: number, end: number): DerNode[] => {
    const out: DerNode[] = [];
    while (pos < end) {
      const tag = buf[pos];
      let len = buf[pos + 1];
      let p = pos + 2;
      if (len & 0x80) {
        const n = len & 0x7f;
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + buf[p++];
      }
      assert.ok(p + len <= end, 'parseDer: truncated element');
      const node: DerNode = { tag, body: buf.subarray(p, p + len) };
      if (tag & 0x20) node.kids = walk(p, p + len);
      out.push(node);
      pos = p + len;
    }
    return out;
  };
  const [top] = walk(0, buf.length);
  return top;
}

export function encodeDer(node: DerNode): Buffer {
  return tlv(node.tag, node.kids ? Buffer.concat(node.kids.map(encodeDer)) : node.body);
}

/** A deep copy of a tree (bodies copied too, so editing one never changes another). */
export function cloneDer(node: DerNode): DerNode {
  return node.kids ? { tag: node.tag, body: Buffer.alloc(0), kids: node.kids.map(cloneDer) } : { tag: node.tag, body: Buffer.from(node.body) };
}

/** The element at `path` (child indexes from `root`). */
export function derAt(root: DerNode, ...path: number[]): DerNode {
  let n = root;
  for (const i of path) {
    assert.ok(n.kids && n.kids[i], `no element at ${path.join('/')}`);
    n = n.kids[i];
  }
  return n;
}

/** The openssl CLI, run in a scratch directory (removed by `cleanup`). */
export function opensslWorkdir(): { dir: string; run: (...args: string[]) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'certplane-pki-'));
  return {
    dir,
    run: (...args: string[]): string => {
      const r = spawnSync('openssl', args, { encoding: 'utf8', cwd: dir });
      assert.equal(r.status, 0, `openssl ${args.join(' ')} failed: ${r.error ?? r.stderr}`);
      return r.stdout;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  VaultError,
  checkVerificationToken,
  createKeyVault,
  loadOrCreateMasterKey,
  parseMasterKey,
  verificationToken,
} from '../src/crypto/vault.js';

const PEM = [
  '-----BEGIN PRIVATE KEY-----',
  ...Array.from({ length: 26 }, () => randomBytes(48).toString('base64')),
  '-----END PRIVATE KEY-----',
  '',
].join('\n');

const expectVaultError = (fn: () => unknown, kind?: VaultError['kind']) => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VaultError, `expected VaultError, got ${String(e)}`);
    if (kind) assert.equal(e.kind, kind);
    return true;
  });
};

const withTmp = (fn: (dir: string) => void) => {
  const dir = mkdtempSync(join(tmpdir(), 'certplane-vault-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

test('round-trips PEM-sized and edge-case strings', () => {
  const vault = createKeyVault(randomBytes(32));
  for (const pt of [PEM, '', 'ok', 'ünïcødé ✓ 🔑', 'x'.repeat(10_000)]) {
    const env = vault.seal('rec-1', pt);
    assert.match(env, /^[\x21-\x7e]+$/, 'envelope is printable');
    assert.equal(vault.open('rec-1', env), pt);
  }
});

test('envelope format: v1.<keyId>.<4 base64url segments>, keyId = first 16 hex of sha256(key)', async () => {
  const key = randomBytes(32);
  const vault = createKeyVault(key);
  const { createHash } = await import('node:crypto');
  assert.equal(vault.keyId, createHash('sha256').update(key).digest('hex').slice(0, 16));
  const parts = vault.seal('r', 'secret').split('.');
  assert.equal(parts.length, 6);
  assert.equal(parts[0], 'v1');
  assert.equal(parts[1], vault.keyId);
  for (const p of parts.slice(2)) assert.match(p, /^[A-Za-z0-9_-]+$/);
});

test('same plaintext seals to different envelopes', () => {
  const vault = createKeyVault(randomBytes(32));
  const a = vault.seal('r', PEM);
  const b = vault.seal('r', PEM);
  assert.notEqual(a, b);
  assert.equal(vault.open('r', a), PEM);
  assert.equal(vault.open('r', b), PEM);
});

test('envelope opened under another record id is tampered', () => {
  const vault = createKeyVault(randomBytes(32));
  const env = vault.seal('record-a', PEM);
  expectVaultError(() => vault.open('record-b', env), 'tampered');
  expectVaultError(() => vault.open('', env), 'tampered');
  expectVaultError(() => vault.open('record-a ', env), 'tampered');
});

test('a bit flip anywhere in any segment fails with a VaultError', () => {
  const vault = createKeyVault(randomBytes(32));
  const env = vault.seal('r', 'short secret value');
  const kinds = new Set<string>();
  for (let i = 0; i < env.length; i++) {
    for (let bit = 0; bit < 7; bit++) {
      const flipped = env.slice(0, i) + String.fromCharCode(env.charCodeAt(i) ^ (1 << bit)) + env.slice(i + 1);
      assert.throws(
        () => vault.open('r', flipped),
        (e: unknown) => {
          assert.ok(e instanceof VaultError, `position ${i} bit ${bit}: ${String(e)}`);
          kinds.add(e.kind);
          return true;
        },
      );
    }
  }
  // flips produce all three kinds: keyId segment -> wrong_key, bad structure -> malformed, bytes -> tampered
  assert.deepEqual([...kinds].sort(), ['malformed', 'tampered', 'wrong_key']);
});

test('byte-level tampering of each binary segment is tampered', () => {
  const vault = createKeyVault(randomBytes(32));
  const env = vault.seal('r', PEM);
  const parts = env.split('.');
  for (const idx of [2, 3, 4, 5]) {
    const bytes = Buffer.from(parts[idx], 'base64url');
    for (const pos of [0, bytes.length >> 1, bytes.length - 1]) {
      const copy = Buffer.from(bytes);
      copy[pos] ^= 0x01;
      const p2 = [...parts];
      p2[idx] = copy.toString('base64url');
      expectVaultError(() => vault.open('r', p2.join('.')), 'tampered');
    }
  }
});

test('malformed envelopes', () => {
  const vault = createKeyVault(randomBytes(32));
  const env = vault.seal('r', 'x');
  const parts = env.split('.');
  for (const bad of [
    '',
    'v1',
    'garbage',
    env + '.',
    env + '.AAAA',
    parts.slice(0, 5).join('.'),
    ['v2', ...parts.slice(1)].join('.'),
    [parts[0], 'XYZ', ...parts.slice(2)].join('.'),
    [...parts.slice(0, 2), parts[2] + '=', ...parts.slice(3)].join('.'),
    [...parts.slice(0, 2), 'AAAA', ...parts.slice(3)].join('.'), // IV too short
    [...parts.slice(0, 5), 'AAAA'].join('.'), // ciphertext shorter than a tag
    [...parts.slice(0, 5), ''].join('.'),
    env.replace(/\./g, ':'),
    ` ${env}`,
  ]) {
    expectVaultError(() => vault.open('r', bad), 'malformed');
  }
  expectVaultError(() => vault.open('r', 42 as unknown as string), 'malformed');
});

test('wrong master key is wrong_key', () => {
  const a = createKeyVault(randomBytes(32));
  const b = createKeyVault(randomBytes(32));
  assert.notEqual(a.keyId, b.keyId);
  expectVaultError(() => b.open('r', a.seal('r', PEM)), 'wrong_key');
});

test('same master key in another vault instance opens', () => {
  const key = randomBytes(32);
  const env = createKeyVault(key).seal('r', PEM);
  assert.equal(createKeyVault(Buffer.from(key)).open('r', env), PEM);
});

test('vault copies the key: wiping the caller buffer does not break it', () => {
  const key = randomBytes(32);
  const vault = createKeyVault(key);
  const env = vault.seal('r', 'v');
  key.fill(0);
  assert.equal(vault.open('r', env), 'v');
});

test('envelope and errors do not leak plaintext or key', () => {
  const key = randomBytes(32);
  const vault = createKeyVault(key);
  const secret = 'THIS-IS-A-VERY-SECRET-PRIVATE-KEY-VALUE-0123456789';
  const env = vault.seal('r', secret);
  assert.ok(!env.includes(secret));
  for (const enc of ['base64', 'base64url', 'hex'] as const) {
    const s = Buffer.from(secret).toString(enc);
    // any 12-char window of the encodings
    for (let i = 0; i + 12 <= s.length; i += 4) assert.ok(!env.includes(s.slice(i, i + 12)), `${enc} leak`);
    assert.ok(!env.includes(key.toString(enc)));
  }
  try {
    createKeyVault(randomBytes(32)).open('r', env);
    assert.fail('should throw');
  } catch (e) {
    assert.ok(e instanceof VaultError);
    assert.ok(!e.message.includes(secret));
    assert.ok(!e.message.includes(env));
  }
  const inspected = JSON.stringify(vault) + String(Object.values(vault));
  assert.ok(!inspected.includes(key.toString('hex')));
});

test('createKeyVault rejects keys that are not 32 bytes', () => {
  for (const k of [Buffer.alloc(0), Buffer.alloc(16), Buffer.alloc(31), Buffer.alloc(33), Buffer.alloc(64)]) {
    assert.throws(() => createKeyVault(k), /32 bytes/);
  }
  assert.throws(() => createKeyVault('0'.repeat(64) as unknown as Buffer), /32 bytes/);
});

test('parseMasterKey accepts hex and base64 of 32 bytes', () => {
  const key = randomBytes(32);
  assert.deepEqual(parseMasterKey(key.toString('hex')), key);
  assert.deepEqual(parseMasterKey(key.toString('hex').toUpperCase()), key);
  assert.deepEqual(parseMasterKey(`  ${key.toString('hex')}\n`), key);
  assert.deepEqual(parseMasterKey(key.toString('base64')), key);
  assert.deepEqual(parseMasterKey(key.toString('base64').replace(/=$/, '')), key);
  assert.deepEqual(parseMasterKey(`\t${key.toString('base64')}\r\n`), key);
  assert.deepEqual(parseMasterKey(key.toString('base64url')), key);
  // a key whose standard base64 contains '+' and '/'
  const k2 = Buffer.alloc(32, 0xfb);
  assert.match(k2.toString('base64'), /[+/]/);
  assert.deepEqual(parseMasterKey(k2.toString('base64')), k2);
});

test('parseMasterKey rejects everything else', () => {
  const msg = 'CERTPLANE_MASTER_KEY must be 32 bytes, as 64 hex characters or base64';
  const key = randomBytes(32);
  for (const bad of [
    '',
    '   ',
    'secret',
    key.toString('hex').slice(0, 62),
    key.toString('hex') + '00',
    'g'.repeat(64),
    randomBytes(31).toString('base64'),
    randomBytes(33).toString('base64'),
    randomBytes(16).toString('hex'),
    key.toString('base64') + '=',
    key.toString('base64').slice(0, 42) + '_/=', // mixed alphabets
    key.toString('hex').slice(0, 32) + ' ' + key.toString('hex').slice(32),
  ]) {
    assert.throws(() => parseMasterKey(bad), { message: msg }, JSON.stringify(bad));
  }
  assert.throws(() => parseMasterKey(undefined as unknown as string), { message: msg });
});

test('loadOrCreateMasterKey creates a 0600 key file, then reuses it', { skip: process.platform === 'win32' }, () => {
  withTmp((dir) => {
    const keyFile = join(dir, 'nested', 'deeper', 'master.key');
    const first = loadOrCreateMasterKey({ keyFile });
    assert.equal(first.source, 'created');
    assert.equal(first.key.length, 32);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'nested', 'deeper')).mode & 0o077, 0);
    assert.equal(readFileSync(keyFile, 'utf8'), first.key.toString('hex') + '\n');

    const second = loadOrCreateMasterKey({ keyFile });
    assert.equal(second.source, 'file');
    assert.deepEqual(second.key, first.key);

    const third = loadOrCreateMasterKey({ env: undefined, keyFile });
    assert.equal(third.source, 'file');
    assert.deepEqual(third.key, first.key);
  });
});

test('loadOrCreateMasterKey: env beats the file', () => {
  withTmp((dir) => {
    const keyFile = join(dir, 'master.key');
    const fileKey = loadOrCreateMasterKey({ keyFile }).key;
    const envKey = randomBytes(32);
    const r = loadOrCreateMasterKey({ env: envKey.toString('base64'), keyFile });
    assert.equal(r.source, 'env');
    assert.deepEqual(r.key, envKey);
    assert.notDeepEqual(r.key, fileKey);
    // env does not create a file when none exists
    const other = join(dir, 'none', 'master.key');
    assert.equal(loadOrCreateMasterKey({ env: envKey.toString('hex'), keyFile: other }).source, 'env');
    assert.throws(() => statSync(other), { code: 'ENOENT' });
    // an invalid env value is an error, not a silent fallback to the file
    assert.throws(() => loadOrCreateMasterKey({ env: 'nope', keyFile }), /CERTPLANE_MASTER_KEY must be 32 bytes/);
    // a blank env value counts as unset
    assert.equal(loadOrCreateMasterKey({ env: '  ', keyFile }).source, 'file');
  });
});

test('loadOrCreateMasterKey rejects group/world-readable key files', { skip: process.platform === 'win32' }, () => {
  withTmp((dir) => {
    const keyFile = join(dir, 'master.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      chmodSync(keyFile, mode);
      assert.throws(() => loadOrCreateMasterKey({ keyFile }), /chmod 600/);
    }
    chmodSync(keyFile, 0o600);
    assert.equal(loadOrCreateMasterKey({ keyFile }).source, 'file');
    chmodSync(keyFile, 0o400);
    assert.equal(loadOrCreateMasterKey({ keyFile }).source, 'file');
  });
});

test('loadOrCreateMasterKey rejects an invalid key file without echoing its content', () => {
  withTmp((dir) => {
    const keyFile = join(dir, 'master.key');
    writeFileSync(keyFile, 'not-a-key-SECRETISH\n', { mode: 0o600 });
    assert.throws(
      () => loadOrCreateMasterKey({ keyFile }),
      (e: unknown) => e instanceof Error && /invalid/.test(e.message) && !e.message.includes('SECRETISH'),
    );
  });
});

test('verification token round trip; false under another key', () => {
  const key = randomBytes(32);
  const token = verificationToken(createKeyVault(key));
  assert.equal(checkVerificationToken(createKeyVault(Buffer.from(key)), token), true);
  assert.equal(checkVerificationToken(createKeyVault(randomBytes(32)), token), false);
  // a corrupted token is not reported as a wrong key
  const parts = token.split('.');
  const bytes = Buffer.from(parts[5], 'base64url');
  bytes[0] ^= 1;
  parts[5] = bytes.toString('base64url');
  expectVaultError(() => checkVerificationToken(createKeyVault(key), parts.join('.')), 'tampered');
});


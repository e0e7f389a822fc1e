/** The repository's copies of the reference material must not drift from the project's shared originals. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { packageRoot } from '../src/util/paths.js';
import { REFERENCE_DIR } from './helpers/openapi.js';

const SHARED = join(packageRoot(), '..', 'shared', 'reference');

test('reference copies are present and identical to ../shared/reference when it exists', () => {
  const copies = readdirSync(REFERENCE_DIR).filter((f) => f !== 'README.md').sort();
  assert.deepEqual(copies, ['000_02f0f67a892d10e5.txt', '004_5539decefdd68d6c.txt', 'cloudflare-mtls-openapi.json']);
  if (!existsSync(SHARED)) return; // a clone on its own: the copies are the reference
  for (const f of copies) {
    assert.equal(readFileSync(join(REFERENCE_DIR, f), 'utf8'), readFileSync(join(SHARED, f), 'utf8'), `${f} differs from ${SHARED}`);
  }
});

/**
 * Regression: a read never sees rows of a write transaction that has not committed, on this run's store.
 *
 * On SQLite every transaction shares the one connection. A read that started while no write was open ran its
 * statements directly, and if a queued write began during one of the read's awaits, the rest of the read ran inside
 * that write's transaction and saw its uncommitted rows. The edge feed's long poll does exactly this: a commit wakes
 * it (onConfigChange), and it builds the feed, one await per hostname, while the next queued write (say a bulk PUT)
 * runs. The edge then received part of a bulk PUT under the previous version; if that PUT rolled back, or the process
 * was killed before it committed, the edge kept serving rows that never existed (the delta after that version never
 * names them again).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Store } from '../src/domain/ports.js';
import { tempDataDir } from './helpers/process.js';
import { onPostgres, openTestStore, storeKind } from './helpers/store.js';

const STEPS = 20;

describe(`reads and uncommitted writes (${storeKind})`, () => {
  const dir = tempDataDir();
  let store: Store;
  before(async () => {
    store = await openTestStore(dir);
  });
  after(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A read of one key, STEPS times with an await between: long enough to straddle the start of another job. */
  const readRepeatedly = (key: string) =>
    store.read(async (r) => {
      const seen: (string | null)[] = [];
      for (let i = 0; i < STEPS; i++) seen.push(await r.tenancy.getMeta(key));
      return seen;
    });

  /** A write that sets the key, keeps working, then fails: it rolls back, so nobody may ever have seen the value. */
  const writeThenRollBack = (key: string) =>
    store.write(async (r) => {
      await r.tenancy.setMeta(key, 'uncommitted');
      for (let i = 0; i < STEPS; i++) await r.tenancy.getMeta(key);
      throw new Error('rolled back on purpose');
    });

  test('a read woken by a commit does not see the next queued write, which then rolls back', async () => {
    const reads: Promise<(string | null)[]>[] = [];
    const unsubscribe = store.onConfigChange(() => reads.push(readRepeatedly('woken')));
    try {
      const first = store.write(async (r) => {
        await r.nextVersion(); // a configuration change: its commit wakes the listener
      });
      const second = writeThenRollBack('woken');
      await first;
      await assert.rejects(second, /rolled back on purpose/);
      assert.ok(reads.length >= 1, 'the commit woke the listener');
      for (const read of reads) assert.deepEqual(await read, Array(STEPS).fill(null));
    } finally {
      unsubscribe();
    }
  });

  test('a read and a write started together: the read sees the state before the write throughout', async () => {
    const read = readRepeatedly('together');
    const write = writeThenRollBack('together');
    assert.deepEqual(await read, Array(STEPS).fill(null));
    await assert.rejects(write, /rolled back on purpose/);
    assert.equal(await store.read((r) => r.tenancy.getMeta('together')), null);
  });

  test('a read started after a write was queued sees it committed, never half done', async () => {
    const write = store.write(async (r) => {
      await r.tenancy.setMeta('queued-a', 'one');
      for (let i = 0; i < STEPS; i++) await r.tenancy.getMeta('queued-a');
      await r.tenancy.setMeta('queued-b', 'two');
    });
    const read = store.read(async (r) => {
      const a = await r.tenancy.getMeta('queued-a');
      const b = await r.tenancy.getMeta('queued-b');
      return [a, b];
    });
    await write;
    const seen = await read;
    if (onPostgres) {
      // Each statement sees what is committed when it starts (READ COMMITTED): the read may straddle the commit, but
      // never sees the first row without the second.
      assert.notDeepEqual(seen, ['one', null]);
    } else {
      // A read behind a queued write waits for its commit.
      assert.deepEqual(seen, ['one', 'two']);
    }
  });
});

/**
 * Crash consistency: the real `certplane serve` process, on this run's database (SQLite file, or a fresh PostgreSQL
 * database), takes concurrent writes from several clients (bulk PUTs of 60 hostnames, certificate uploads and
 * deletes, Access CA creations, updates and deletes, settings PUTs) and is killed with SIGKILL at a random moment
 * while writes are in flight, round after round on the same data. After each restart everything is read back:
 * every write answered with success is there with the content its answer showed, no refused write is, no bulk PUT
 * is half applied, the limits and one-association-per-hostname hold, and the server answers without a 5xx.
 * See test/helpers/workload.ts for what exactly is checked, and docs/reliability.md for the figures.
 *
 * CERTPLANE_CRASH_SEED replays a run's choices (kill moments, PUT patterns, which write each client sends next);
 * CERTPLANE_CRASH_ROUNDS changes the number of rounds (default 20).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { startProcess, tempDataDir, type ServerProcess } from './helpers/process.js';
import { openTestStore, storeKind } from './helpers/store.js';
import { Workload, formatCounts, seedFrom, seededRng } from './helpers/workload.js';

const ROUNDS = Number(process.env.CERTPLANE_CRASH_ROUNDS || 20);
const SEED = seedFrom('CERTPLANE_CRASH_SEED');
const TOKEN = 'CrashTestToken_0123456789_abcdefghijklmn'; // 40 characters
/** Lowered from 50 so that the Access clients reach the limit within a round and it is tested across crashes. */
const ACCESS_LIMIT = 6;
const ENV = {
  CERTPLANE_BOOTSTRAP_TOKEN: TOKEN,
  CERTPLANE_DEPLOY_DELAY_MS: '200',
  CERTPLANE_DELETE_DELAY_MS: '200',
  CERTPLANE_DEPLOYER_INTERVAL_MS: '50',
  CERTPLANE_LIMIT_ACCESS_CERTIFICATES_PER_ACCOUNT: String(ACCESS_LIMIT),
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe(`SIGKILL under concurrent writes, ${ROUNDS} rounds (${storeKind})`, () => {
  const dir = tempDataDir();
  let server: ServerProcess | undefined;
  let wl: Workload | undefined;

  after(async () => {
    const stopping = wl?.stop();
    await server?.stop('SIGKILL');
    await stopping;
    rmSync(dir, { recursive: true, force: true });
  });

  test('every acknowledged write survives, nothing refused or half applied appears, invariants hold', async (t) => {
    t.diagnostic(`seed ${SEED} (CERTPLANE_CRASH_SEED=${SEED} replays the choices)`);
    const rng = seededRng(SEED);
    server = await startProcess({ dir, env: ENV });
    const banner = server.banner;
    assert.ok(banner, 'the first start creates the installation');
    wl = new Workload({
      token: TOKEN,
      zoneId: banner.zoneId,
      zoneName: banner.zoneName,
      accountId: banner.accountId,
      seed: SEED,
      target: () => server!.baseUrl,
      limits: { hostnameCertificatesPerZone: 10, associationsPerCertificate: 100, accessCertificatesPerAccount: ACCESS_LIMIT },
    });
    await wl.init();
    assert.deepEqual(wl.problems, []);

    let inFlightAtKill = 0;
    const killedAfter: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const acked0 = wl.figures.acked;
      wl.start();
      // The kill comes after a random number of acknowledged writes, then a random few milliseconds more: a moment
      // at random relative to the requests in flight, whatever the speed of the machine.
      const target = 4 + Math.floor(rng() * 21);
      const extraMs = Math.round(rng() * 40);
      const until = Date.now() + 60_000;
      while (wl.figures.acked - acked0 < target && wl.problems.length === 0) {
        assert.ok(Date.now() < until, `round ${round}: fewer than ${target} writes acknowledged within 60 s`);
        await sleep(2);
      }
      await sleep(extraMs);
      for (let i = 0; i < 200 && wl.writesInFlight === 0; i++) await sleep(1);
      inFlightAtKill += wl.writesInFlight;
      killedAfter.push(wl.figures.acked - acked0);
      wl.expectDisconnects = true;
      const settled = wl.stop(); // no new requests from here on
      const exit: { code: number | null; signal: NodeJS.Signals | null } = await server.stop('SIGKILL');
      assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
      await settled;
      wl.expectDisconnects = false;

      server = await startProcess({ dir, env: ENV });
      assert.equal(server.banner, null, 'a restart finds its installation');
      await wl.verify();
      assert.deepEqual(wl.problems, [], `round ${round} (seed ${SEED})`);
    }

    // The deployer finishes what was in flight at the last kill, then the final state is checked once more.
    await wl.waitQuiet();
    await wl.verify();
    assert.deepEqual(wl.problems, [], `after the last round (seed ${SEED})`);
    const last: ServerProcess = server;
    assert.deepEqual(await last.stop('SIGTERM'), { code: 0, signal: null }, last.stderr());
    server = undefined;
    const store = await openTestStore(dir);
    let events: number;
    try {
      events = await wl.checkLifecycle(store);
    } finally {
      await store.close();
    }
    assert.deepEqual(wl.problems, [], 'lifecycle audit trail');

    const f = wl.figures;
    t.diagnostic(
      `${storeKind}: ${ROUNDS} rounds, each killed after ${Math.min(...killedAfter)}-${Math.max(...killedAfter)} acknowledged writes; ` +
        `${f.writes} writes sent, ${f.acked} acknowledged, ${f.refused} refused (4xx), ${inFlightAtKill} in flight at the kills ` +
        `(${f.unknown} without an answer, ${f.unknownApplied} of those applied); ${f.verified} acknowledged writes verified ` +
        `(${f.verifiedExact} registers holding an acknowledged write's exact content); ${events} lifecycle transitions checked; ` +
        `peaks: ${f.peak.hostnameCertificates}/10 hostname certificates, ${f.peak.associationsPerCertificate}/100 associations on one ` +
        `certificate, ${f.peak.accessCertificates}/${ACCESS_LIMIT} Access CAs; answers: ${formatCounts(f.byStatus)}`,
    );
    assert.ok(f.acked >= ROUNDS * 4, `enough writes to mean something (${f.acked})`);
    assert.ok(inFlightAtKill >= ROUNDS, `writes were in flight at the kills (${inFlightAtKill})`);
    assert.equal(f.verified, f.acked, 'every acknowledged write was verified');
  });
});

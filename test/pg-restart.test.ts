/**
 * A node survives PostgreSQL restarting: while the database is down every request gets a Cloudflare-style 503
 * envelope (never a hang, a 500 or a crash), and requests succeed again once it is back, without restarting the node.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config.js';
import { createCertplane, type Certplane } from '../src/main.js';
import { checkResponse } from './helpers/openapi.js';
import { requirePostgresOrSkip, startCluster, testDatabaseUrl, type PgCluster } from './helpers/pg.js';
import { pollUntil } from './helpers/process.js';

const skip = requirePostgresOrSkip();

describe('PostgreSQL restarts under a running node', { skip }, () => {
  let cluster: PgCluster;
  let cp: Certplane;
  let base: string;
  const dir = mkdtempSync(join(tmpdir(), 'certplane-pg-restart-'));

  before(async () => {
    cluster = await startCluster(); // its own cluster: the shared one must not be stopped
    const url = await testDatabaseUrl({ adminUrl: cluster.url });
    cp = await createCertplane(
      loadConfig({ CERTPLANE_DATA_DIR: dir, CERTPLANE_DATABASE_URL: url, CERTPLANE_MASTER_KEY: randomBytes(32).toString('hex') }),
    );
    base = `${await cp.app.listen({ host: '127.0.0.1', port: 0 })}/client/v4`;
  });
  after(async () => {
    await cp?.close();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(method: string, path: string, body?: unknown) {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${cp.bootstrap!.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(20_000), // a hang fails the test instead of stalling it
    });
    const json = await res.json();
    checkResponse(method, path, res.status, json);
    return { status: res.status, body: json };
  }

  test('503 envelope while down, success again when back, same process', async () => {
    const settings = `/zones/${cp.bootstrap!.zoneId}/origin_tls_client_auth/settings`;
    assert.equal((await call('PUT', settings, { enabled: true })).status, 200);

    await cluster.stop({ keepData: true });
    for (const [method, body] of [['GET', undefined], ['PUT', { enabled: false }]] as const) {
      const down = await call(method, settings, body);
      assert.equal(down.status, 503, JSON.stringify(down.body));
      assert.deepEqual(down.body, {
        success: false,
        errors: [{ code: 10001, message: 'Service temporarily unavailable, please retry' }],
        messages: [],
        result: null,
      });
    }
    // The deployer keeps running against the missing database without taking the process down.
    await cp.deployer.tick().catch(() => undefined);

    await cluster.start();
    const back = await pollUntil('the node serves again', () => call('GET', settings), (r) => r.status === 200, 20_000);
    assert.deepEqual(back.body.result, { enabled: true }, 'the write before the outage is there; the one during it is not');
    assert.equal((await call('PUT', settings, { enabled: false })).status, 200);
    assert.deepEqual((await call('GET', settings)).body.result, { enabled: false });
  });
});

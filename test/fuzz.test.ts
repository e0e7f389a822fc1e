/**
 * Hostile input on every route (issue 7): for each route of the route table (and the edge feed's routes, which are
 * registered outside it), at least 2,000 generated malformed requests are sent as raw bytes over loopback, each
 * broken in one place the server must notice (credentials, a path parameter, the query, the body, the HTTP framing,
 * the method) plus noise that must not matter. Every answer must be a 4xx Cloudflare failure envelope; the server
 * must answer a health request after every batch; and the whole database (every table, read over a connection of
 * its own) must be unchanged after every batch of rejected requests.
 *
 * The database is seeded first with real objects (certificates, associations, Access CAs, settings, tokens, an edge
 * node) so the mutations are made around real ids and hostnames. The manual clock keeps the lifecycle still.
 *
 * Replay: every run uses one seed (printed; on failure with the route). CERTPLANE_FUZZ_SEED=<seed> replays it,
 * CERTPLANE_FUZZ_ROUTE=<part of a route name> runs only matching routes, CERTPLANE_FUZZ_RUNS=<n> changes the count,
 * CERTPLANE_FUZZ_BATCH=1 checks the stored data after every request (to name the one that changed it).
 * Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import { changedTables, postgresDigester, sqliteDigester, type DatabaseDigester, type Digest } from './helpers/fuzz-digest.js';
import { RawClient, type RawResponse } from './helpers/fuzz-http.js';
import { describeCase, fuzzCases, fuzzRoute, type FuzzCase, type FuzzRoute, type RouteEntry, type World } from './helpers/fuzz-routes.js';
import { ALL_PERMISSIONS, assertOk, startServer, type TestServer } from './helpers/harness.js';
import { onPostgres, storeKind } from './helpers/store.js';

const SEED = process.env.CERTPLANE_FUZZ_SEED ? Number(process.env.CERTPLANE_FUZZ_SEED) : Date.now() % 2 ** 31;
const RUNS = process.env.CERTPLANE_FUZZ_RUNS ? Number(process.env.CERTPLANE_FUZZ_RUNS) : 2000;
const ONLY = process.env.CERTPLANE_FUZZ_ROUTE;
/** Requests between two checks of the stored data and the server's health (CERTPLANE_FUZZ_BATCH=1 finds the one). */
const BATCH = process.env.CERTPLANE_FUZZ_BATCH ? Number(process.env.CERTPLANE_FUZZ_BATCH) : 200;

/** Routes the edge feed registers directly on Fastify (not through defineRoute). */
const EDGE_ROUTES: RouteEntry[] = [
  { method: 'GET', url: '/edge/v1/config' },
  { method: 'POST', url: '/edge/v1/ack' },
  { method: 'POST', url: '/edge/v1/health' },
];

/** Each route its own seed, derived from the run's seed and the route's name (not its position). */
const seedFor = (name: string) => (SEED ^ createHash('sha256').update(name).digest().readUInt32BE(0)) & 0x7fffffff;

/** "METHOD /path" for every route Fastify knows (HEAD routes, derived from GET, left out). */
function fastifyRoutes(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:[│ ] {3})*)[├└]── (.*?)(?: \(([^)]*)\))?$/.exec(line);
    if (!m) continue;
    const depth = [...m[1]].length / 4;
    stack[depth] = (depth > 0 ? stack[depth - 1] : '') + m[2];
    stack.length = depth + 1;
    for (const method of (m[3] ?? '').split(', ').filter((x) => x && x !== 'HEAD')) out.push(`${method} ${stack[depth]}`);
  }
  return out.sort();
}

const fingerprint = (c: Issued) => createHash('sha256').update(c.certDer).digest('hex');

/** Every answer: 4xx, JSON, Cloudflare's failure envelope with codes ≥ 1000. */
function checkRejection(res: RawResponse, what: string): { status: number; code: number } {
  const text = res.body.toString('utf8');
  const where = `${what}\n  answered ${res.status} ${JSON.stringify(res.headers)} ${text.slice(0, 500)}`;
  assert.ok(res.status >= 400 && res.status <= 499, `not a 4xx: ${where}`);
  assert.ok(!text.includes('PRIVATE KEY'), `an answer with a private key: ${where}`);
  assert.match(res.headers['content-type'] ?? '', /^application\/json\b/, `not JSON: ${where}`);
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`a body that is not JSON: ${where}`);
  }
  assert.equal(body.success, false, `success is not false: ${where}`);
  assert.equal(body.result, null, `result is not null: ${where}`);
  assert.deepEqual(body.messages, [], `messages is not []: ${where}`);
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `no errors: ${where}`);
  for (const e of body.errors) {
    assert.ok(Number.isInteger(e.code) && e.code >= 1000, `error code ${e.code}: ${where}`);
    assert.equal(typeof e.message, 'string', `error message: ${where}`);
  }
  return { status: res.status, code: body.errors[0].code };
}

describe(`fuzz: hostile input on every route (${storeKind})`, () => {
  let s: TestServer;
  let w: World;
  let digester: DatabaseDigester;
  let baseline: Digest;
  /** What each route's batches are compared with: the seeded data, or what a failed route left (so one failure does not fail every later route; the last test still compares with the seeded data). */
  let reference: Digest;
  let entries: RouteEntry[];
  const report: { route: string; requests: number; connections: number; ms: number; statuses: Record<string, number> }[] = [];
  /** One example request (site and label) per status/code answered, and how many requests each site broke. */
  const examples = new Map<string, string>();
  const sites = new Map<string, number>();

  before(async () => {
    s = await startServer();
    const t = s.cp.services.tenancy;
    const second = await t.createZone({ name: 'second.example.org', accountId: s.accountId });
    const otherAccount = await t.createAccount('Another account');
    const otherZone = await t.createZone({ name: 'other.example.net', accountId: otherAccount.id });

    const z = `/zones/${s.zoneId}`;
    const a = `/accounts/${s.accountId}`;
    const [zoneLeaf, hostLeaf, freshLeaf, accountCa, zoneCa, freshCa, otherCa] = await Promise.all([
      makeLeaf({ cn: 'fuzz zone pull' }),
      makeLeaf({ cn: 'fuzz hostname pull' }),
      makeLeaf({ cn: 'fuzz fresh leaf' }),
      makeCA({ cn: 'fuzz account CA' }),
      makeCA({ cn: 'fuzz zone CA' }),
      makeCA({ cn: 'fuzz fresh CA' }),
      makeCA({ cn: 'fuzz other CA' }),
    ]);
    const [otherLeaf, rsaLeaf, edLeaf] = await Promise.all([
      makeLeaf({ issuer: otherCa }),
      makeLeaf({ keyType: 'rsa2048' }),
      makeLeaf({ keyType: 'ed25519' }),
    ]);

    const zoneCert = assertOk(await s.request('POST', `${z}/origin_tls_client_auth`, { body: { certificate: zoneLeaf.certPem, private_key: zoneLeaf.keyPem } }));
    assertOk(await s.request('PUT', `${z}/origin_tls_client_auth/settings`, { body: { enabled: true } }));
    const hostCert = assertOk(await s.request('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, { body: { certificate: hostLeaf.certPem, private_key: hostLeaf.keyPem } }));
    assertOk(await s.request('PUT', `${z}/origin_tls_client_auth/hostnames`, {
      body: { config: [{ hostname: 'app.example.com', cert_id: hostCert.id, enabled: true }, { hostname: 'api.example.com', cert_id: hostCert.id, enabled: false }] },
    }));
    const accountCaRow = assertOk(await s.request('POST', `${a}/access/certificates`, { body: { name: 'Account CA', certificate: accountCa.certPem, associated_hostnames: ['app.example.com'] } }), 201);
    const zoneCaRow = assertOk(await s.request('POST', `${z}/access/certificates`, { body: { name: 'Zone CA', certificate: zoneCa.certPem, associated_hostnames: ['api.example.com'] } }), 201);
    const setting = (hostname: string) => ({ settings: [{ hostname, china_network: false, client_certificate_forwarding: true }] });
    assertOk(await s.request('PUT', `${a}/access/certificates/settings`, { body: setting('app.example.com') }), 202);
    assertOk(await s.request('PUT', `${z}/access/certificates/settings`, { body: setting('api.example.com') }), 202);
    const { credential } = await s.cp.edge.registerNode('fuzz edge');

    const expired = await s.makeToken(ALL_PERMISSIONS, [{ type: 'all' }], { expiresOn: new Date(s.clock.now().getTime() - 60_000) });
    const revoked = await t.createToken({ name: 'revoked', policies: [{ permissions: ALL_PERMISSIONS, scopes: [{ type: 'all' }] }] });
    await t.revokeToken(revoked.token.id);

    w = {
      port: Number(new URL(s.baseUrl).port),
      token: await s.makeToken(ALL_PERMISSIONS, [{ type: 'all' }]),
      readOnlyToken: await s.makeToken(['ssl:read', 'access-certificate:read'], [{ type: 'all' }]),
      otherAccountToken: await s.makeToken(ALL_PERMISSIONS, [{ type: 'account', id: otherAccount.id }]),
      deadTokens: [expired, revoked.secret],
      email: s.email,
      apiKey: s.apiKey,
      edgeCredential: credential,
      zoneId: s.zoneId,
      zoneName: s.zoneName,
      accountId: s.accountId,
      zoneIds: [s.zoneId, second.id, otherZone.id],
      accountIds: [s.accountId, otherAccount.id],
      accountZoneNames: [s.zoneName, second.name],
      certIds: [zoneCert.id, hostCert.id, accountCaRow.id, zoneCaRow.id],
      hostnameCertIds: [hostCert.id],
      associationHostnames: ['app.example.com', 'api.example.com'],
      zoneCert: { id: zoneCert.id, pem: zoneLeaf.certPem, key: zoneLeaf.keyPem },
      hostnameCert: { id: hostCert.id, pem: hostLeaf.certPem, key: hostLeaf.keyPem },
      accountCa: { id: accountCaRow.id, pem: accountCa.certPem, name: 'Account CA', hostnames: ['app.example.com'] },
      zoneCa: { id: zoneCaRow.id, pem: zoneCa.certPem, name: 'Zone CA', hostnames: ['api.example.com'] },
      freshLeaf: { pem: freshLeaf.certPem, key: freshLeaf.keyPem },
      freshCa: freshCa.certPem,
      otherPems: [otherCa.certPem, otherLeaf.certPem, rsaLeaf.certPem, edLeaf.certPem],
      otherKeys: [otherLeaf.keyPem, rsaLeaf.keyPem, rsaLeaf.keyPemAs('pkcs1'), edLeaf.keyPem, otherLeaf.keyPemAs('sec1'), otherLeaf.encryptedKeyPem('fuzz')],
      fingerprints: { zone: [fingerprint(zoneLeaf)], hostname: [fingerprint(hostLeaf)], account: [fingerprint(accountCa)], zoneAccess: [fingerprint(zoneCa)] },
    };

    // Everything deployed and still: nothing may move on its own while the fuzzer runs.
    await s.settle();
    await s.settle();
    const inFlight = (await s.cp.deployer.tick()).transitions;
    assert.equal(inFlight, 0, 'the seeded data has settled');

    digester = onPostgres ? await postgresDigester(s.config.databaseUrl!) : sqliteDigester(s.config.databasePath);
    baseline = reference = await digester.digest();
    entries = [...s.cp.app.routeSpecs.map((r) => ({ method: r.method, url: `/client/v4${r.url}`, body: r.body })), ...EDGE_ROUTES];
  });

  after(async () => {
    await digester?.close();
    await s?.close();
  });

  test('the fuzzed routes are every route the server has', () => {
    const fuzzed = entries.map((e) => `${e.method} ${e.url}`).sort();
    assert.deepEqual(fuzzed, fastifyRoutes(s.cp.app.printRoutes({ commonPrefix: false })));
    assert.equal(entries.filter((e) => e.url.includes('/origin_tls_client_auth')).length, 13, 'AOP routes');
    assert.equal(entries.filter((e) => e.url.includes('/access/certificates')).length, 14, 'Access routes');
    // Every route has a model (fuzzRoute throws for a parameter or body it does not know).
    for (const e of entries) fuzzRoute(e, entries, w);
  });

  test(`${RUNS} malformed requests per route are all refused with a 4xx envelope, and change nothing`, async (t) => {
    t.diagnostic(`seed ${SEED} (replay: CERTPLANE_FUZZ_SEED=${SEED} node scripts/run-tests.mjs fuzz)`);
    const started = Date.now();
    const client = new RawClient(w.port);
    const routes = entries.map((e) => fuzzRoute(e, entries, w)).filter((r) => !ONLY || r.name.includes(ONLY));
    assert.ok(routes.length > 0, `no route matches CERTPLANE_FUZZ_ROUTE=${ONLY}`);
    try {
      for (const route of routes) await t.test(route.name, () => fuzzOne(route, client));
    } finally {
      client.close();
    }
    const ms = Date.now() - started;
    const requests = report.reduce((n, r) => n + r.requests, 0);
    const connections = report.reduce((n, r) => n + r.connections, 0);
    t.diagnostic(`${storeKind}: ${requests} requests on ${report.length} routes (${connections} connections) in ${(ms / 1000).toFixed(1)} s`);
    const statuses: Record<string, number> = {};
    for (const r of report) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
    t.diagnostic(`answers (status/code×count): ${Object.entries(statuses).sort().map(([k, v]) => `${k}×${v}`).join(' ')}`);
    t.diagnostic(`broken in (site×requests): ${[...sites].sort().map(([k, v]) => `${k}×${v}`).join(', ')}`);
    for (const [k, v] of [...examples].sort()) t.diagnostic(`  ${k} e.g. ${v}`);
    assert.equal(report.length, routes.length);
    for (const r of report) assert.ok(r.requests >= RUNS, `${r.route}: ${r.requests} requests`);
  });

  test('the stored data is what was seeded', async () => {
    assert.equal(changedTables(baseline, await digester.digest()), '');
  });

  async function fuzzOne(route: FuzzRoute, client: RawClient): Promise<void> {
    const started = Date.now();
    const connectionsBefore = client.connections;
    const statuses: Record<string, number> = {};
    let n = 0;
    let batch: FuzzCase[] = [];

    const checkpoint = async () => {
      const k = Math.ceil(n / BATCH);
      assertOk(await s.request('GET', '/user/tokens/verify', { token: w.token }));
      const changed = changedTables(reference, await digester.digest());
      if (changed) {
        const list = batch.map((c, i) => `  #${n - batch.length + i + 1} ${describeCase(c).slice(0, 400)}`).join('\n');
        throw new Error(`${route.name}: batch ${k} (requests ${n - batch.length + 1}-${n}) changed the stored data: ${changed}\n${list}`);
      }
      batch = [];
    };

    const property = fc.asyncProperty(fuzzCases(route, w), async (c) => {
      n++;
      batch.push(c);
      sites.set(c.site, (sites.get(c.site) ?? 0) + 1);
      const what = `${route.name} request #${n} ${describeCase(c)}`;
      const answers = c.closing ? await client.exchangeClosing(c.bytes, what, c.halfClose) : [await client.exchange(c.bytes, what)];
      for (const res of answers) {
        const { status, code } = checkRejection(res, what);
        const key = `${status}/${code}`;
        statuses[key] = (statuses[key] ?? 0) + 1;
        if (!examples.has(key)) examples.set(key, `${route.name} [${c.site}: ${c.label.slice(0, 80)}]`);
      }
      if (n % BATCH === 0) await checkpoint();
    });
    try {
      await fc.assert(property, { numRuns: RUNS, seed: seedFor(route.name), endOnFailure: true, includeErrorInReport: true });
      if (n % BATCH !== 0) await checkpoint();
    } catch (err) {
      reference = await digester.digest();
      (err as Error).message = `${route.name} — replay: CERTPLANE_FUZZ_SEED=${SEED} CERTPLANE_FUZZ_ROUTE='${route.name}'\n${(err as Error).message}`;
      throw err;
    }
    report.push({ route: route.name, requests: n, connections: client.connections - connectionsBefore, ms: Date.now() - started, statuses });
  }
});

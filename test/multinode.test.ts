/**
 * Several API nodes on one PostgreSQL, hammered in parallel through real HTTP. Every request goes to the next node
 * in turn, so every conflicting pair of requests is served by different processes. Proves: limits hold exactly,
 * bulk PUTs never interleave, delete-vs-associate races end consistently, each lifecycle transition happens once
 * although every node runs the deployer, concurrent starts (migrations, bootstrap) are safe, and no conflict ever
 * surfaces as a 5xx.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { makeCA, makeLeaf, type Issued } from './helpers/certs.js';
import { requirePostgresOrSkip, testDatabaseUrl } from './helpers/pg.js';
import { pollUntil, startProcess, type ServerProcess } from './helpers/process.js';

const NODES = 3;
const skip = requirePostgresOrSkip();
const TOKEN = `Multinode_${randomBytes(15).toString('hex')}`;

describe('three API nodes on one PostgreSQL', { skip }, () => {
  let url: string;
  let nodes: ServerProcess[] = [];
  let zoneId: string;
  let accountId: string;
  let next = 0;
  const statuses: number[] = [];

  /** One request to the next node (round robin). */
  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const node = nodes[next++ % nodes.length];
    const res = await fetch(`${node.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    statuses.push(res.status);
    assert.ok(res.status < 500, `${method} ${path} answered ${res.status}: ${text}`);
    return { status: res.status, body: JSON.parse(text) };
  }

  const z = (p: string) => `/zones/${zoneId}${p}`;
  const codes = (rs: { status: number; body: any }[]) => {
    const tally = new Map<string, number>();
    for (const r of rs) {
      const key = r.status < 300 ? String(r.status) : `${r.status}/${r.body.errors[0].code}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
    return Object.fromEntries([...tally].sort());
  };
  const upload = (leaf: Issued) =>
    call('POST', z('/origin_tls_client_auth/hostnames/certificates'), { certificate: leaf.certPem, private_key: leaf.keyPem });
  const waitActive = (id: string) =>
    pollUntil(
      `certificate ${id} active`,
      () => call('GET', z(`/origin_tls_client_auth/hostnames/certificates/${id}`)),
      (r) => r.body.result?.status === 'active',
    );

  before(async () => {
    url = await testDatabaseUrl();
    const env = {
      CERTPLANE_DATABASE_URL: url,
      CERTPLANE_MASTER_KEY: randomBytes(32).toString('hex'),
      CERTPLANE_BOOTSTRAP_TOKEN: TOKEN,
      CERTPLANE_DEPLOY_DELAY_MS: '150',
      CERTPLANE_DELETE_DELAY_MS: '150',
      CERTPLANE_DEPLOYER_INTERVAL_MS: '20',
      CERTPLANE_DATABASE_POOL_MAX: '8',
    };
    // All nodes start at the same moment on an empty database: migrations and bootstrap race.
    nodes = await Promise.all(Array.from({ length: NODES }, () => startProcess({ env })));
    const banners = nodes.filter((n) => n.banner !== null);
    assert.equal(banners.length, 1, 'exactly one node bootstrapped the installation');
    zoneId = banners[0].banner!.zoneId;
    accountId = banners[0].banner!.accountId;
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  test('concurrent starts applied each migration once', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT name, count(*)::int AS n FROM schema_migrations GROUP BY name');
      assert.ok(rows.length >= 2);
      for (const r of rows) assert.equal(r.n, 1, r.name);
      const accounts = await client.query('SELECT count(*)::int AS n FROM accounts');
      assert.equal(accounts.rows[0].n, 1, 'one bootstrap account');
    } finally {
      await client.end();
    }
  });

  test('never 11 hostname certificates in a zone: 30 parallel uploads, exactly 10 succeed', async () => {
    const ca = await makeCA();
    const leaves = await Promise.all(Array.from({ length: 30 }, () => makeLeaf({ issuer: ca })));
    const results = await Promise.all(leaves.map(upload));
    assert.deepEqual(codes(results), { '200': 10, '400/1413': 20 });
    const list = await call('GET', z('/origin_tls_client_auth/hostnames/certificates'));
    assert.equal(list.body.result.length, 10);
    // Free the zone for the next tests: wait for them to be active, then delete them all.
    for (const r of results.filter((r) => r.status === 200)) await waitActive(r.body.result.id);
    const deletions = await Promise.all(
      results.filter((r) => r.status === 200).map((r) => call('DELETE', z(`/origin_tls_client_auth/hostnames/certificates/${r.body.result.id}`))),
    );
    assert.deepEqual(codes(deletions), { '200': 10 });
    await pollUntil(
      'deleted certificates leave the count',
      () => call('GET', z('/origin_tls_client_auth/hostnames/certificates')),
      (r) => r.body.result.every((c: any) => c.status === 'deleted') || r.body.result.length === 0,
    );
  });

  test('never 101 associations on one certificate: 150 parallel PUTs, exactly 100 succeed', async () => {
    const ca = await makeCA();
    const cert = (await upload(await makeLeaf({ issuer: ca }))).body.result;
    const results = await Promise.all(
      Array.from({ length: 150 }, (_, i) =>
        call('PUT', z('/origin_tls_client_auth/hostnames'), { config: [{ hostname: `h${i}.example.com`, cert_id: cert.id, enabled: true }] }),
      ),
    );
    assert.deepEqual(codes(results), { '200': 100, '400/1416': 50 });
    const all = await call('GET', z('/origin_tls_client_auth/hostnames?status=all&per_page=1000'));
    assert.equal(all.body.result.filter((a: any) => a.cert_id === cert.id && a.enabled === true).length, 100);
  });

  test('never 51 Access certificates in an account: 70 parallel uploads, exactly 50 succeed', async () => {
    const cas = await Promise.all(Array.from({ length: 70 }, () => makeCA()));
    const results = await Promise.all(
      cas.map((ca, i) =>
        call('POST', i % 2 ? `/accounts/${accountId}/access/certificates` : z('/access/certificates'), { name: `ca ${i}`, certificate: ca.certPem }),
      ),
    );
    assert.deepEqual(codes(results), { '201': 50, '400/12130': 20 });
    for (const r of results.filter((r) => r.status === 400)) {
      assert.equal(r.body.errors[0].message, 'access.api.error.invalid_request: maximum number of certificates has been reached');
    }
  });

  test('bulk PUTs on the same hostnames never interleave', async () => {
    const ca = await makeCA();
    const x = (await upload(await makeLeaf({ issuer: ca }))).body.result.id;
    const y = (await upload(await makeLeaf({ issuer: ca }))).body.result.id;
    const hostnames = Array.from({ length: 20 }, (_, i) => `bulk${i}.example.com`);
    for (let round = 0; round < 5; round++) {
      // Opposite orders invite deadlocks; the server must retry them, never answer 5xx.
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => {
          const [cert, order] = i % 2 ? [x, hostnames] : [y, [...hostnames].reverse()];
          return call('PUT', z('/origin_tls_client_auth/hostnames'), {
            config: order.map((hostname) => ({ hostname, cert_id: cert, enabled: true })),
          });
        }),
      );
      assert.deepEqual(codes(results), { '200': 12 });
      const states = await Promise.all(hostnames.map((h) => call('GET', z(`/origin_tls_client_auth/hostnames/${h}`))));
      const certs = new Set(states.map((s) => s.body.result.cert_id));
      assert.equal(certs.size, 1, `round ${round}: hostnames point at ${[...certs].join(' and ')}`);
    }
  });

  test('deleting a certificate while another node associates it ends in one consistent state', async () => {
    const ca = await makeCA();
    const outcomes = new Map<string, number>();
    for (let k = 0; k < 6; k++) {
      const id = (await upload(await makeLeaf({ issuer: ca }))).body.result.id;
      await waitActive(id);
      const [del, put] = await Promise.all([
        call('DELETE', z(`/origin_tls_client_auth/hostnames/certificates/${id}`)),
        call('PUT', z('/origin_tls_client_auth/hostnames'), { config: [{ hostname: `race${k}.example.com`, cert_id: id, enabled: true }] }),
      ]);
      const outcome = `${codes([del])} ${codes([put])}`.replace(/[{}"]/g, '');
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      const cert = (await call('GET', z(`/origin_tls_client_auth/hostnames/certificates/${id}`))).body.result;
      const assoc = await call('GET', z(`/origin_tls_client_auth/hostnames/race${k}.example.com`));
      if (del.status === 200) {
        // The delete won: the association was refused, and nothing points at the deleted certificate.
        assert.equal(put.status, 400);
        assert.equal(put.body.errors[0].code, 1415);
        assert.equal(assoc.status, 404);
        assert.ok(['pending_deletion', 'deleted'].includes(cert.status));
      } else {
        // The association won: the delete was refused as "in use".
        assert.equal(del.body.errors[0].code, 1433);
        assert.equal(put.status, 200);
        assert.equal(assoc.body.result.cert_id, id);
        assert.equal(cert.status, 'active');
      }
    }
    assert.ok([...outcomes.values()].reduce((a, b) => a + b, 0) === 6, JSON.stringify([...outcomes]));
  });

  test('every lifecycle transition happened exactly once, although every node runs the deployer', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await pollUntil(
        'nothing left in flight',
        async () =>
          (
            await client.query(
              `SELECT (SELECT count(*) FROM aop_certificates WHERE status IN ('initializing','pending_deployment','pending_deletion'))
                    + (SELECT count(*) FROM aop_associations WHERE status IN ('initializing','pending_deployment','pending_deletion')) AS n`,
            )
          ).rows[0].n,
        (n) => Number(n) === 0,
        30_000,
      );
      const dupes = await client.query(
        `SELECT subject_kind, subject_id, from_status, to_status, version, count(*)::int AS n
           FROM lifecycle_events GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1`,
      );
      assert.deepEqual(dupes.rows, []);
      const total = (await client.query('SELECT count(*)::int AS n FROM lifecycle_events')).rows[0].n;
      assert.ok(total > 100, `enough transitions to mean something (${total})`);
      // Every certificate that became active went through each step once, in order.
      const paths = await client.query(
        `SELECT subject_id, string_agg(from_status || '>' || to_status, ' ' ORDER BY id) AS path
           FROM lifecycle_events WHERE subject_kind = 'aop_certificate' GROUP BY subject_id`,
      );
      for (const r of paths.rows) {
        assert.match(r.path, /^initializing>pending_deployment pending_deployment>active( pending_deletion>deleted)?$/, r.subject_id);
      }
    } finally {
      await client.end();
    }
  });

  test('no request was ever answered with a 5xx', () => {
    assert.ok(statuses.length > 300);
    assert.deepEqual(statuses.filter((s) => s >= 500), []);
  });
});

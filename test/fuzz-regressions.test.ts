/**
 * What the fuzz suite (fuzz.test.ts) found, one test each, with the exact answer: requests Node's HTTP server used to
 * answer by itself (an empty 400 or 417, or no answer at all) or wrongly served, outside the envelope. Raw bytes over
 * loopback, because no HTTP client sends these. Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RawClient, serialize, type RawRequest, type RawResponse } from './helpers/fuzz-http.js';
import { startServer, type TestServer } from './helpers/harness.js';

/** The one answer, as Cloudflare's failure envelope with exactly this status and error. */
function assertEnvelope(res: RawResponse, status: number, code: number, message: string): void {
  const text = res.body.toString('utf8');
  assert.equal(res.status, status, text);
  assert.match(res.headers['content-type'] ?? '', /^application\/json; charset=utf-8$/);
  assert.deepEqual(JSON.parse(text), { success: false, errors: [{ code, message }], messages: [], result: null });
}

describe('hostile HTTP the fuzzer found', () => {
  let s: TestServer;
  let client: RawClient;
  let request: (extra?: Partial<RawRequest>) => RawRequest;

  before(async () => {
    s = await startServer();
    client = new RawClient(Number(new URL(s.baseUrl).port));
    request = (extra = {}) => ({
      method: 'GET',
      target: `/client/v4/zones/${s.zoneId}/origin_tls_client_auth/settings`,
      headers: [['host', 'localhost'], ['authorization', `Bearer ${s.token}`]],
      ...extra,
    });
  });
  after(async () => {
    client?.close();
    await s?.close();
  });

  test('an HTTP/1.1 request without Host: 400 6000 (was an empty 400 from Node)', async () => {
    const res = await client.exchange(serialize(request({ headers: [['authorization', `Bearer ${s.token}`]] })), 'no Host');
    assertEnvelope(res, 400, 6000, 'Bad request: an HTTP/1.1 request must have a Host header');
    // HTTP/1.0 has no Host requirement and is still served.
    const [old] = await client.exchangeClosing(serialize(request({ version: '1.0', headers: [['authorization', `Bearer ${s.token}`]] })), 'HTTP/1.0');
    assert.equal(old.status, 200, old.body.toString());
    assert.deepEqual(JSON.parse(old.body.toString()).result, { enabled: false });
  });

  test('Expect other than 100-continue: 417 6017 (was an empty 417 from Node)', async () => {
    const body = Buffer.from('{"enabled":true}');
    const put = (expect: string) =>
      request({
        method: 'PUT',
        headers: [...request().headers, ['expect', expect], ['content-type', 'application/json'], ['content-length', String(body.length)]],
        body,
      });
    const [res] = await client.exchangeClosing(serialize(put('200-ok')), 'Expect: 200-ok');
    assertEnvelope(res, 417, 6017, 'Expectation failed: only 100-continue is supported');
    // Nothing was written.
    assert.equal((await s.cp.services.tenancy.getZone(s.zoneId))?.aopEnabled, false);
    // 100-continue still works (the interim answer is skipped by the client).
    const ok = await client.exchange(serialize(put('100-continue')), 'Expect: 100-continue');
    assert.equal(ok.status, 200, ok.body.toString());
    assert.equal((await s.cp.services.tenancy.getZone(s.zoneId))?.aopEnabled, true);
  });

  test('CONNECT: 405 10405 (was the connection dropped without an answer)', async () => {
    for (const target of ['127.0.0.1:80', `/client/v4/zones/${s.zoneId}`]) {
      const answers = await client.exchangeClosing(serialize(request({ method: 'CONNECT', target })), `CONNECT ${target}`);
      assert.equal(answers.length, 1);
      assertEnvelope(answers[0], 405, 10405, 'Method not allowed for this endpoint: CONNECT');
    }
  });

  test('a request line without a version, or with HTTP/2.0: 400 6000 (both were served, headers and all)', async () => {
    const noVersion = serialize(request()).toString('latin1').replace(' HTTP/1.1\r\n', '\r\n');
    const [a] = await client.exchangeClosing(Buffer.from(noVersion, 'latin1'), 'HTTP/0.9 request line');
    assertEnvelope(a, 400, 6000, 'Bad request: HTTP/0.9 is not supported; use HTTP/1.1');
    const [b] = await client.exchangeClosing(serialize(request({ version: '2.0' })), 'HTTP/2.0 request line');
    assertEnvelope(b, 400, 6000, 'Bad request: HTTP/2.0 is not supported; use HTTP/1.1');
  });

  test('a Transfer-Encoding that does not end in chunked: 400 6000 before the route runs (an edge heartbeat was written)', async () => {
    const { credential, node } = await s.cp.edge.registerNode('fuzz regression edge');
    const cases: [string, string][] = [
      ['gzip', 'Bad request: the last Transfer-Encoding must be chunked'],
      ['identity', 'Bad request: the last Transfer-Encoding must be chunked'],
      // Node's parser refuses this one itself, before any route.
      ['chunked, gzip', 'Bad request'],
    ];
    for (const [te, message] of cases) {
      const answers = await client.exchangeClosing(
        serialize({ method: 'GET', target: '/edge/v1/config', headers: [['host', 'localhost'], ['authorization', `Bearer ${credential}`], ['transfer-encoding', te]], body: Buffer.from('xyz') }),
        `Transfer-Encoding: ${te}`,
      );
      assertEnvelope(answers[0], 400, 6000, message);
      // Node's own parser error follows on the same connection: an envelope too.
      for (const more of answers.slice(1)) assertEnvelope(more, 400, 6000, 'Bad request');
    }
    const seen = (await s.cp.edge.listNodes()).find((n) => n.id === node.id);
    assert.equal(seen?.lastSeenAt, null, 'the refused requests did not count as heartbeats');
  });
});

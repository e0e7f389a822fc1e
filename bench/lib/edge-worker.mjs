// One proxy candidate in its own process (so the load generator, the origin and the control plane never share its
// event loop). Started by bench/edge.mjs with an IPC channel; the first message configures it, it answers
// { type: 'ready', port, ... } and then serves until it is killed.
//
//   node bench/lib/edge-worker.mjs certplane   the certplane Node data plane, configured with DataPlane.apply()
//   node bench/lib/edge-worker.mjs raw         a plain node:https reverse proxy with a keep-alive https.Agent
//   node bench/lib/edge-worker.mjs agent       the certplane data plane driven by the edge agent over the real feed;
//                                              reports every applied version ({ type: 'applied' }) and every
//                                              acknowledgement ({ type: 'acked' }) with a wall-clock timestamp
import * as https from 'node:https';
import { send, serveWorker, startAgent, wallNow } from './worker-ipc.mjs';

const mode = process.argv[2];
const dist = process.env.CERTPLANE_BENCH_DIST_URL; // file: URL of the compiled certplane (set by bench/edge.mjs)

process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));

// Import the compiled certplane modules up front (before any message) so a concurrent rebuild of dist/ cannot bite
// later.
const mods =
  mode === 'certplane' || mode === 'agent'
    ? {
        node: await import(new URL('src/edge/node/index.js', dist).href),
        agent: mode === 'agent' ? await import(new URL('src/edge/agent.js', dist).href) : null,
        vault: mode === 'agent' ? await import(new URL('src/crypto/vault.js', dist).href) : null,
      }
    : null;

async function certplane(msg) {
  const dp = mods.node.createNodeDataPlane();
  const { port } = await dp.start({ host: '127.0.0.1', port: 0 });
  const result = await dp.apply(msg.snapshot);
  send({ type: 'ready', port, result });
}

async function raw(msg) {
  const o = msg.origin;
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: Infinity,
    maxFreeSockets: 256,
    scheduling: 'lifo',
    cert: o.clientCertPem,
    key: o.clientKeyPem,
    ca: o.caPem,
    servername: o.sni,
  });
  const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
  const server = https.createServer({ cert: msg.serverCertPem, key: msg.serverKeyPem }, (req, res) => {
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
    headers['x-forwarded-for'] = req.socket.remoteAddress;
    headers['x-forwarded-proto'] = 'https';
    const preq = https.request(
      { agent, host: o.address, port: o.port, method: req.method, path: req.url, headers, servername: o.sni },
      (pres) => {
        const out = {};
        for (const [k, v] of Object.entries(pres.headers)) if (!HOP.has(k)) out[k] = v;
        res.writeHead(pres.statusCode ?? 502, out);
        pres.pipe(res);
      },
    );
    preq.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-length': 0 });
      res.end();
    });
    req.pipe(preq);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  send({ type: 'ready', port: server.address().port });
}

async function agentMode(msg) {
  const inner = mods.node.createNodeDataPlane();
  // The effective origin client certificate of the watched hostname in a change: its id, null (none), or
  // 'untouched' (the change does not carry that hostname).
  const identityIn = (configs) => {
    const h = (configs ?? []).find((c) => c.hostname === msg.hostname);
    return h ? (h.originClientCertificate?.id ?? null) : 'untouched';
  };
  const report = (version, configs) => send({ type: 'applied', t: wallNow(), version, identity: identityIn(configs) });
  // A transparent wrapper: reports the moment apply()/applyDelta() resolve, i.e. the data plane says it is live.
  const dataPlane = {
    start: (o) => inner.start(o),
    async apply(s) {
      const r = await inner.apply(s);
      report(s.version, s.hostnames);
      return r;
    },
    async applyDelta(d) {
      const r = await inner.applyDelta(d);
      report(d.version, d.upsert);
      return r;
    },
    get version() {
      return inner.version;
    },
    stop: () => inner.stop(),
  };
  const { port } = await dataPlane.start({ host: '127.0.0.1', port: 0 });
  startAgent(mods, msg, dataPlane);
  send({ type: 'ready', port });
}

serveWorker(mode, { certplane, raw, agent: agentMode });

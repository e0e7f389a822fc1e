// The certplane HAProxy data plane in its own process (the "agent": Node, which spawns HAProxy as its child and drives
// it), started by bench/edge.mjs with the IPC protocol of worker-ipc.mjs.
//
//   node bench/lib/haproxy-worker.mjs serve   createHaproxyDataPlane({ threads }) configured with apply(snapshot);
//                                             reports the port, the HAProxy master's pid (the worker is its child),
//                                             the shape (direct | hop) and the Access mTLS self-test's verdict
//   node bench/lib/haproxy-worker.mjs scale   the 10,000-hostname measurement, driven step by step by the parent
//                                             (see scale() below and the scale part of bench/edge.mjs)
//   node bench/lib/haproxy-worker.mjs agent   the HAProxy data plane driven by the edge agent over the real feed;
//                                             reports each apply/applyDelta ({ type: 'applied', ms, hostnames }) and
//                                             each answered acknowledgement ({ type: 'acked', version, t })
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { send, serveWorker, startAgent, wallNow } from './worker-ipc.mjs';

const mode = process.argv[2];
const dist = process.env.CERTPLANE_BENCH_DIST_URL;

let dp = null;
const shutdown = async () => {
  await dp?.stop().catch(() => {});
  process.exit(0);
};
process.on('disconnect', shutdown);
process.on('SIGTERM', shutdown);

const haproxy = await import(new URL('src/edge/haproxy/index.js', dist).href);
const agentMods =
  mode === 'agent'
    ? { agent: await import(new URL('src/edge/agent.js', dist).href), vault: await import(new URL('src/crypto/vault.js', dist).href) }
    : null;
const { sendCommand } = await import(new URL('src/edge/haproxy/runtime.js', dist).href);

/**
 * Looks inside the data plane for what the benchmark needs and the interface does not expose: the supervised
 * HAProxy master (`proc.child`) and the shape (`mode`). Bench-only; if these private fields are renamed the
 * benchmark says so instead of measuring the wrong processes.
 */
function internals(d) {
  const proc = d.proc;
  if (!proc?.child?.pid || !d.mode) throw new Error('HAProxy data plane internals (proc.child, mode) not found: update bench/lib/haproxy-worker.mjs');
  return { masterPid: proc.child.pid, mode: d.mode };
}

/** The pid of the worker that answers on the admin socket (the current one, after any reload). */
async function workerPid(d) {
  const info = await sendCommand(join(d.directory, 'admin.sock'), 'show info');
  return Number(/^Pid: (\d+)/m.exec(info)?.[1]);
}

function rssKb(pid) {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return null;
  }
}

async function memory(d) {
  const { masterPid } = internals(d);
  const wpid = await workerPid(d);
  const mem = process.memoryUsage();
  return {
    masterRssKb: rssKb(masterPid),
    workerRssKb: rssKb(wpid),
    workerPid: wpid,
    agentRssKb: Math.round(mem.rss / 1024),
    agentHeapUsedKb: Math.round(mem.heapUsed / 1024),
    agentExternalKb: Math.round(mem.external / 1024),
  };
}

function sizeOf(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return { bytes: st.size, files: 1 };
  let bytes = 0;
  let files = 0;
  for (const f of readdirSync(path)) {
    const s = sizeOf(join(path, f));
    bytes += s.bytes;
    files += s.files;
  }
  return { bytes, files };
}

async function serve(msg) {
  dp = haproxy.createHaproxyDataPlane({ threads: msg.threads });
  const { port } = await dp.start({ host: '127.0.0.1', port: 0 });
  const result = await dp.apply(msg.snapshot);
  send({ type: 'ready', port, result, ...internals(dp), workerPid: await workerPid(dp), haproxy: dp.haproxy });
}

/**
 * Scale: the parent sends { cacheFile, count, adds, port, profiles, threads } and then one command at a time; each
 * answer carries wall-clock timestamps so the parent can line them up with its own TLS probes.
 */
async function scale(msg) {
  const all = JSON.parse(readFileSync(msg.cacheFile, 'utf8')).hosts;
  const config = (i) => {
    const h = all[i];
    const o = msg.profiles[i % msg.profiles.length];
    return {
      hostname: h.hostname,
      serverCertificate: { certPem: h.certPem, keyPem: h.keyPem },
      origin: o.origin,
      accessCAs: [],
      forwardClientCertificate: false,
      originClientCertificate: o.client,
    };
  };
  const initial = Array.from({ length: msg.count }, (_, i) => config(i));
  const commands = {
    // A data plane with no hostname, for the memory baseline (started, measured, stopped).
    async baseline() {
      const d = haproxy.createHaproxyDataPlane({ threads: msg.threads });
      await d.start({ host: '127.0.0.1', port: 0 });
      await d.apply({ version: 1, hostnames: [] });
      await new Promise((r) => setTimeout(r, 500));
      const mem = await memory(d);
      await d.stop();
      return { mem };
    },
    // start() + the first apply() of all `count` hostnames (the reload path), timed from the call to start().
    async start() {
      dp = haproxy.createHaproxyDataPlane({ threads: msg.threads });
      const memBefore = process.memoryUsage().rss;
      const t0 = wallNow();
      await dp.start({ host: '127.0.0.1', port: msg.port });
      const tStarted = wallNow();
      const result = await dp.apply({ version: 1, hostnames: initial });
      const tApplied = wallNow();
      return { t0, tStarted, tApplied, failed: result.failed.length, failedSample: result.failed.slice(0, 3), mode: internals(dp).mode, agentRssBeforeKb: Math.round(memBefore / 1024) };
    },
    async memory() {
      // Let the worker that start() began with exit (it has no connections) before reading RSS.
      await new Promise((r) => setTimeout(r, 1000));
      const L = dp.directory;
      const files = {};
      for (const [k, f] of Object.entries({ crtList: 'edge.crtlist', hostsMap: 'hosts.map', hopMap: 'hop.map', config: 'haproxy.cfg', certsDir: 'certs', casDir: 'cas' })) {
        files[k] = sizeOf(join(L, f));
      }
      return { mem: await memory(dp), files, hostnames: dp.applied?.size ?? null };
    },
    // The floor of the start figure: HAProxy itself loading the same files (`haproxy -c`: parse the configuration,
    // load every certificate and key, build every TLS context), timed from here.
    async haproxyLoad() {
      const t = performance.now();
      execFileSync(dp.haproxy.binary.path, ['-c', '-q', '-f', join(dp.directory, 'haproxy.cfg')], { stdio: 'ignore', timeout: 600_000 });
      return { ms: performance.now() - t };
    },
    // `adds` single-hostname applyDelta calls, one after the other, each timed from the call until it resolves. The
    // Runtime API client is wrapped (bench-only) to count the commands each add sends and the time spent in them.
    async adds() {
      const rt = dp.runtime;
      let calls = 0;
      let rtMs = 0;
      if (rt?.run) {
        const orig = rt.run.bind(rt);
        rt.run = async (...args) => {
          const t = performance.now();
          try {
            return await orig(...args);
          } finally {
            calls++;
            rtMs += performance.now() - t;
          }
        };
      }
      // Where an add's time goes: the data plane's own steps, wrapped the same way (bench-only; a renamed step is simply
      // not reported). runtimeChange includes cleanup, writeAll and removeUnusedFiles; verify is separate.
      const steps = ['runtimeChange', 'cleanup', 'writeAll', 'removeUnusedFiles', 'verify'];
      const stepMs = {};
      for (const name of steps) {
        const fn = dp[name];
        if (typeof fn !== 'function') continue;
        dp[name] = function (...args) {
          const t = performance.now();
          const done = () => (stepMs[name] = (stepMs[name] ?? 0) + performance.now() - t);
          const r = fn.apply(this, args);
          if (r && typeof r.then === 'function') return r.finally(done);
          done();
          return r;
        };
      }
      const samples = [];
      for (let k = 0; k < msg.adds; k++) {
        const cfg = config(msg.count + k);
        calls = 0;
        rtMs = 0;
        for (const name of steps) stepMs[name] = 0;
        const t = performance.now();
        const r = await dp.applyDelta({ version: 2 + k, upsert: [cfg], remove: [] });
        const ms = performance.now() - t;
        samples.push({ ms, failed: r.failed.length, runtimeCalls: calls, runtimeMs: rtMs, steps: { ...stepMs }, reason: r.failed[0]?.reason });
        await new Promise((res) => setTimeout(res, 5));
      }
      return { samples, mode: internals(dp).mode };
    },
  };
  send({ type: 'ready', hostnames: all.length });
  process.on('message', async (m) => {
    try {
      send({ type: 'result', id: m.id, result: await commands[m.command]() });
    } catch (e) {
      send({ type: 'result', id: m.id, error: e?.stack ?? String(e) });
    }
  });
}

async function agent(msg) {
  const inner = haproxy.createHaproxyDataPlane({ threads: msg.threads });
  dp = inner;
  const timed = (fn, kind) => async (arg) => {
    const t = performance.now();
    const r = await fn(arg);
    send({ type: 'applied', kind, version: arg.version, ms: performance.now() - t, hostnames: (arg.hostnames ?? arg.upsert).length, failed: r.failed.length, t: wallNow() });
    return r;
  };
  const dataPlane = {
    start: (o) => inner.start(o),
    apply: timed((s) => inner.apply(s), 'apply'),
    applyDelta: timed((d) => inner.applyDelta(d), 'applyDelta'),
    get version() {
      return inner.version;
    },
    stop: () => inner.stop(),
  };
  const t0 = wallNow();
  const { port } = await dataPlane.start({ host: '127.0.0.1', port: 0 });
  startAgent(agentMods, msg, dataPlane);
  send({ type: 'ready', port, t0 });
}

serveWorker(mode, { serve, scale, agent });

#!/usr/bin/env node
// Edge benchmark, in ONE run: (1) data-plane throughput of the certplane Node edge and of a bare node:https proxy
// against nginx doing the same job, (2) propagation of a configuration change from the API to two edges.
//
//   npm run bench:edge          build src/ into bench/.dist, then node bench/edge.mjs --dist bench/.dist   ~2 minutes
//   npm run bench:edge:quick    the same with --quick                                                     ~40 seconds
//   node bench/edge.mjs         measures the existing dist/ (after npm run build or build:all)
//
// Options: --quick (wrk -d3s, 50 changes; does not rewrite BENCHMARKS.md), --duration <s>, --rounds <n> (2),
// --threads <n> (wrk -t, 1), --changes <n>, --pin (edge on CPU 0, wrk + origin on CPU 1), --no-md (do not rewrite
// BENCHMARKS.md), --keep (keep the temp directory), --only throughput|propagation (one part, for development; never
// rewrites BENCHMARKS.md), --dist <dir> (the compiled certplane to measure; default dist/), --sni-localhost (use
// the fallback for machines where wrk cannot get a private /etc/hosts; see wrkTarget).
// Needs nginx and wrk (Debian: apt-get update && apt-get install -y nginx wrk) and a build of src/. Results are RATIOS
// to nginx measured in the same run: the machine is shared and noisy, absolute numbers from different runs are not
// comparable. See BENCHMARKS.md.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchCertificates } from './lib/certs.mjs';
import { edgeConf, originConf, startNginx } from './lib/nginx.mjs';
import { childPids, cpuSeconds, freePort, has, run, sleep, spawnTracked, stopChild } from './lib/proc.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const HOSTNAME = 'app.example.com';
const wallNow = () => performance.timeOrigin + performance.now();

// --- options -----------------------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name, def) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? Number(argv[i + 1]) : def;
};
const quick = flag('--quick');
const opts = {
  quick,
  durationS: value('--duration', quick ? 3 : 10),
  warmupS: quick ? 1 : 2,
  connections: 32,
  threads: value('--threads', 1),
  rounds: value('--rounds', 2),
  changes: value('--changes', quick ? 50 : 200),
  pin: flag('--pin'),
  writeMd: !flag('--no-md') && !quick && !argv.includes('--only'),
  keep: flag('--keep'),
  only: argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : null,
};
// The compiled certplane to measure: dist/ (npm run build), or --dist <dir> (the npm scripts build into bench/.dist so
// that benchmarking never deletes or replaces dist/ under a test suite running in the same checkout).
const distArg = argv.includes('--dist') ? argv[argv.indexOf('--dist') + 1] : null;
const distDir = distArg ? resolve(process.cwd(), distArg) : join(root, 'dist');
const distUrl = pathToFileURL(distDir + '/').href;

// --- prerequisites -----------------------------------------------------------------------------------------------

const missing = ['nginx', 'wrk'].filter((c) => !has(c));
if (missing.length) {
  console.error(
    `bench/edge: ${missing.join(' and ')} not found. The edge benchmark compares against nginx and drives load with wrk.\n` +
      `Install them (Debian/Ubuntu):  sudo apt-get update && sudo apt-get install -y nginx wrk\n` +
      `(nginx is only run from a temporary directory by this benchmark; the system service is not used.)`,
  );
  process.exit(2);
}
for (const f of ['src/edge/node/index.js', 'src/edge/agent.js', 'src/main.js', 'src/config.js']) {
  if (!existsSync(join(distDir, f))) {
    console.error(`bench/edge: ${join(distDir, f)} is missing: build first (npm run build), or use npm run bench:edge.`);
    process.exit(2);
  }
}
const cpuCount = availableParallelism();
const canPin = opts.pin && cpuCount >= 2 && has('taskset');
const CPU = canPin ? { candidate: '0', loadAndOrigin: '1' } : { candidate: null, loadAndOrigin: null };

// Load the control plane now (a concurrent rebuild of dist/ later in the run cannot break this process).
const { createCertplane } = await import(new URL('src/main.js', distUrl).href);
const { loadConfig } = await import(new URL('src/config.js', distUrl).href);

// --- machine -----------------------------------------------------------------------------------------------------

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const nginxV = run('nginx', ['-V']).out.split('\n');
  return {
    nproc: cpuCount,
    cpu: model,
    kernel: run('uname', ['-r']).out,
    node: process.version,
    nodeOpenssl: process.versions.openssl,
    nginx: nginxV[0].replace('nginx version: ', ''),
    nginxOpenssl: (nginxV.find((l) => l.startsWith('built with OpenSSL')) ?? '').replace('built with ', ''),
    wrk: run('wrk', ['-v']).out.split('\n')[0].replace(/ Copyright.*/, ''),
    loadavgStart: loadavg().map((x) => Math.round(x * 100) / 100),
    certplane: revision(),
  };
}

/** The commit measured, and whether src/ had uncommitted changes (read-only git). */
function revision() {
  const head = run('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  if (head.status !== 0) return 'unknown';
  const dirty = run('git', ['-C', root, 'status', '--porcelain', '--', 'src']).out !== '';
  return `${head.out}${dirty ? ' + uncommitted changes in src/' : ''}`;
}

// --- helpers -----------------------------------------------------------------------------------------------------

function log(msg) {
  process.stderr.write(`[bench:edge] ${msg}\n`);
}

/** One HTTPS request as a visitor would make it (SNI and Host = the hostname, the edge's certificate verified). */
function visit(port, { ca, agent = false, hostname = HOSTNAME, cert = null, timeoutMs = 5000 }) {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        servername: hostname,
        headers: { host: hostname },
        ca,
        agent,
        ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body, protocol: res.socket?.getProtocol?.() ?? null }));
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
function durMs(s) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s);
  if (!m) throw new Error(`cannot parse wrk duration ${s}`);
  return Number(m[1]) * UNIT_MS[m[2]];
}

function parseWrk(out) {
  const num = (re) => {
    const m = re.exec(out);
    return m ? m[1] : null;
  };
  const rps = num(/Requests\/sec:\s+([\d.]+)/);
  if (rps === null) throw new Error(`wrk output not understood:\n${out}`);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(rps),
    requests: Number(num(/(\d+) requests in/)),
    latencyAvgMs: durMs(num(/Latency\s+([\d.]+(?:us|ms|s|m))/)),
    p50Ms: durMs(num(/\s50%\s+([\d.]+(?:us|ms|s|m))/)),
    p75Ms: durMs(num(/\s75%\s+([\d.]+(?:us|ms|s|m))/)),
    p90Ms: durMs(num(/\s90%\s+([\d.]+(?:us|ms|s|m))/)),
    p99Ms: durMs(num(/\s99%\s+([\d.]+(?:us|ms|s|m))/)),
    non2xx: Number(num(/Non-2xx or 3xx responses:\s+(\d+)/) ?? 0),
    socketErrors: socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

/**
 * How wrk reaches the edge with the right SNI: wrk sends the URL's host as SNI, and the certplane edge (rightly)
 * refuses a ClientHello naming 127.0.0.1. Preferred: a private mount namespace in which /etc/hosts maps the
 * hostname to 127.0.0.1 (nothing changes outside wrk's process). Fallback without that privilege: the URL host is
 * `localhost` (the certplane edge then also serves `localhost` with the same configuration; Host stays the hostname).
 */
function wrkTarget(dir) {
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, `127.0.0.1 ${HOSTNAME} localhost\n`);
  const probe = flag('--sni-localhost')
    ? { status: 1, out: '' }
    : run('unshare', ['-m', 'sh', '-c', `mount --bind "${hosts}" /etc/hosts && getent hosts ${HOSTNAME}`]);
  if (probe.status === 0 && probe.out.includes('127.0.0.1')) {
    return { mode: 'namespace', urlHost: HOSTNAME, prefix: ['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hosts] };
  }
  return { mode: 'localhost', urlHost: 'localhost', prefix: [] };
}

/**
 * Runs wrk; resolves with its output and the CPU seconds it used (sampled from /proc every 100 ms while it runs:
 * the spawned pid becomes wrk itself, since taskset, unshare and sh all exec).
 */
function runWrk(target, port, seconds) {
  const args = [
    ...target.prefix,
    'wrk',
    `-t${opts.threads}`,
    `-c${opts.connections}`,
    `-d${seconds}s`,
    '--latency',
    '-H',
    `Host: ${HOSTNAME}`,
    `https://${target.urlHost}:${port}/`,
  ];
  const [cmd, ...rest] = CPU.loadAndOrigin ? ['taskset', '-c', CPU.loadAndOrigin, ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawnTracked(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let cpuS = 0;
    const sample = setInterval(() => {
      const c = cpuSeconds(child.pid);
      if (c !== null) cpuS = c;
    }, 100);
    child.stdout.on('data', (d) => {
      out += d;
      const c = cpuSeconds(child.pid); // the report is printed right before wrk exits
      if (c !== null) cpuS = c;
    });
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(sample);
      if (code === 0) resolve({ out, cpuS });
      else reject(new Error(`wrk exited with ${code}:\n${out}`));
    });
  });
}

/**
 * Whole-machine CPU use from /proc/stat: call without an argument for a sample, with a sample for the CPUs busy
 * (user+system+irq, in CPUs) and stolen by the hypervisor since then.
 */
function systemCpu(since) {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const now = { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal, total: f.slice(0, 8).reduce((a, b) => a + b, 0), t: Date.now() };
  if (!since) return now;
  const cpus = (ticks) => r2(ticks / ((now.total - since.total) / cpuCount));
  return { busyCpus: cpus(now.busy - since.busy), stealCpus: cpus(now.steal - since.steal) };
}

/** CPU seconds of a process and all its direct children (nginx master + worker). */
function treeCpu(pid) {
  let total = cpuSeconds(pid) ?? 0;
  for (const c of childPids(pid)) total += cpuSeconds(c) ?? 0;
  return total;
}

function startWorker(mode, message, { cpus = null } = {}) {
  const script = join(root, 'bench/lib/edge-worker.mjs');
  const env = { ...process.env, CERTPLANE_BENCH_DIST_URL: distUrl };
  const child = cpus
    ? spawnTracked('taskset', ['-c', cpus, process.execPath, script, mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env })
    : spawnTracked(process.execPath, [script, mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env });
  const ready = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${mode} worker not ready after 20 s`)), 20_000);
    child.on('message', (m) => {
      if (m.type === 'loaded') child.send(message);
      else if (m.type === 'ready') {
        clearTimeout(t);
        resolve(m);
      } else if (m.type === 'fatal') {
        clearTimeout(t);
        reject(new Error(`${mode} worker: ${m.message}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${mode} worker exited (${code}) before it was ready`));
    });
  });
  return { child, ready };
}

const pct = (sorted, p) => (sorted.length ? sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] : null);
function summary(values) {
  // null = not measured; Infinity (a change never served) is kept, so it counts against the percentiles.
  const v = values.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
  const mean = v.reduce((a, b) => a + b, 0) / (v.length || 1);
  return { n: v.length, p50: pct(v, 0.5), p90: pct(v, 0.9), p99: pct(v, 0.99), max: v.at(-1) ?? null, mean };
}

const r0 = (x) => (x === null || x === undefined ? null : Math.round(x));
const r1 = (x) => (x === null || x === undefined ? null : Math.round(x * 10) / 10);
const r2 = (x) => (x === null || x === undefined ? null : Math.round(x * 100) / 100);
const r3 = (x) => (x === null || x === undefined ? null : Math.round(x * 1000) / 1000);

// --- setup -------------------------------------------------------------------------------------------------------

const started = Date.now();
const info = machine();
const dir = mkdtempSync(join(tmpdir(), 'certplane-bench-edge-'));
const certs = await benchCertificates(HOSTNAME);
const files = {};
for (const [name, c] of Object.entries({ originCa: certs.originCa, aopCa: certs.aopCa, edgeCa: certs.edgeCa })) {
  files[name] = join(dir, `${name}.crt`);
  writeFileSync(files[name], c.certPem);
}
for (const [name, c] of Object.entries({ origin: certs.originServer, aop: certs.aopClient, edge: certs.edgeServer })) {
  files[`${name}Cert`] = join(dir, `${name}.crt`);
  files[`${name}Key`] = join(dir, `${name}.key`);
  writeFileSync(files[`${name}Cert`], c.certPem);
  writeFileSync(files[`${name}Key`], c.keyPem, { mode: 0o600 });
}
const target = wrkTarget(dir);
log(
  `${info.nproc} CPUs (${info.cpu}); ${canPin ? 'candidate edge pinned to CPU 0, wrk + origin to CPU 1' : 'no CPU pinning'}; ` +
    `wrk SNI via ${target.mode === 'namespace' ? 'a private /etc/hosts (mount namespace)' : 'localhost (no mount namespace available)'}`,
);

const originPort = await freePort();
const probePort = await freePort();
const statusPort = await freePort();
const origin = await startNginx(dir, 'origin', originConf(dir, { port: originPort, probePort, statusPort, files }), { port: originPort, cpus: CPU.loadAndOrigin });
/** Connections the origin has accepted so far (nginx stub_status). */
async function originAccepts() {
  // A new connection every time (agent: false), so each call adds exactly one accepted connection of its own.
  const text = await new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: statusPort, path: '/', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  const m = /server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)/.exec(text);
  if (!m) throw new Error(`unexpected stub_status output: ${text}`);
  return { accepts: Number(m[1]), requests: Number(m[3]) };
}

const results = {
  date: new Date().toISOString(),
  command: `node bench/edge.mjs${argv.length ? ' ' + argv.join(' ') : ''}`,
  machine: info,
  settings: { ...opts, cpuPinning: canPin ? CPU : null, wrkSni: target.mode },
  throughput: null,
  propagation: null,
};

try {
  // The origin must really refuse a request without a client certificate, or the checks below prove nothing.
  const bare = await visit(originPort, { ca: certs.originCa.certPem, hostname: 'origin.internal' }).catch((e) => ({ status: `error ${e.message}` }));
  const withCert = await visit(originPort, { ca: certs.originCa.certPem, hostname: 'origin.internal', cert: certs.aopClient });
  if (bare.status !== 400 || withCert.status !== 200 || withCert.headers['x-origin-client-verify'] !== 'SUCCESS') {
    throw new Error(`origin self-check failed: without a client certificate ${bare.status} (want 400), with one ${withCert.status} (want 200)`);
  }
  log('origin requires a client certificate: 400 without, 200 with (checked)');

  if (opts.only !== 'propagation') results.throughput = await throughput();
  if (opts.only !== 'throughput') results.propagation = await propagation();
} finally {
  await stopChild(origin);
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  else log(`kept ${dir}`);
}
results.settings.totalSeconds = Math.round((Date.now() - started) / 1000);
results.machine.loadavgEnd = loadavg().map((x) => Math.round(x * 100) / 100);

// --- 1. throughput -----------------------------------------------------------------------------------------------

async function throughput() {
  const snapshotHost = (hostname) => ({
    hostname,
    serverCertificate: { certPem: certs.edgeServer.certPem, keyPem: certs.edgeServer.keyPem },
    origin: { address: '127.0.0.1', port: originPort, tls: true, sni: 'origin.internal', caPem: certs.originCa.certPem },
    accessCAs: [],
    forwardClientCertificate: false,
    originClientCertificate: { id: 'bench-aop-client', certPem: certs.aopClient.certPem, keyPem: certs.aopClient.keyPem },
  });
  const candidates = [
    {
      key: 'nginx',
      label: 'nginx, 1 worker (baseline)',
      async start() {
        const port = await freePort();
        const child = await startNginx(dir, 'edge', edgeConf(dir, { port, originPort, hostname: HOSTNAME, files }), { port, cpus: CPU.candidate });
        return { port, pid: child.pid, stop: () => stopChild(child) };
      },
    },
    {
      key: 'certplane',
      label: 'certplane Node edge',
      async start() {
        const hostnames = [snapshotHost(HOSTNAME), ...(target.mode === 'localhost' ? [snapshotHost('localhost')] : [])];
        const w = startWorker('certplane', { snapshot: { version: 1, hostnames } }, { cpus: CPU.candidate });
        const ready = await w.ready;
        if (ready.result.failed.length) throw new Error(`certplane edge did not apply: ${JSON.stringify(ready.result.failed)}`);
        return { port: ready.port, pid: w.child.pid, stop: () => stopChild(w.child) };
      },
    },
    {
      key: 'raw',
      label: 'raw node:https proxy (Node ceiling)',
      async start() {
        const w = startWorker(
          'raw',
          {
            serverCertPem: certs.edgeServer.certPem,
            serverKeyPem: certs.edgeServer.keyPem,
            origin: {
              address: '127.0.0.1',
              port: originPort,
              sni: 'origin.internal',
              caPem: certs.originCa.certPem,
              clientCertPem: certs.aopClient.certPem,
              clientKeyPem: certs.aopClient.keyPem,
            },
          },
          { cpus: CPU.candidate },
        );
        const ready = await w.ready;
        return { port: ready.port, pid: w.child.pid, stop: () => stopChild(w.child) };
      },
    },
  ];

  const handles = new Map();
  try {
    for (const c of candidates) {
      const h = await c.start();
      handles.set(c.key, h);
      // Prove the path before measuring: 200 from the origin, which answered only because the edge presented the
      // AOP client certificate (the origin refuses requests without one), TLS 1.3 on both legs.
      const check = await visit(h.port, { ca: certs.edgeCa.certPem });
      const ok =
        check.status === 200 &&
        check.body === 'origin ok\n' &&
        check.headers['x-origin-client-verify'] === 'SUCCESS' &&
        check.headers['x-origin-tls'] === 'TLSv1.3' &&
        check.protocol === 'TLSv1.3';
      if (!ok) {
        throw new Error(
          `${c.label}: the check request did not go through the origin with the client certificate: ${check.status} ` +
            `${JSON.stringify(check.body)} verify=${check.headers['x-origin-client-verify']} origin-tls=${check.headers['x-origin-tls']} visitor-tls=${check.protocol}`,
        );
      }
      log(`throughput: ${c.label} answers 200 through the origin with the client certificate, TLS 1.3 on both legs (checked); warming up`);
      parseWrk((await runWrk(target, h.port, opts.warmupS)).out); // JIT, origin connection pools, TLS sessions
    }

    // Interleaved rounds (ABC, CBA, ...): every candidate sees the same share of the machine's noise and drift.
    const runs = [];
    for (let round = 0; round < opts.rounds; round++) {
      const order = round % 2 === 0 ? candidates : [...candidates].reverse();
      for (const c of order) {
        const h = handles.get(c.key);
        const accepts0 = await originAccepts();
        const cpu0 = treeCpu(h.pid);
        const origin0 = treeCpu(origin.pid);
        const sys0 = systemCpu();
        const t0 = Date.now();
        const { out, cpuS: wrkS } = await runWrk(target, h.port, opts.durationS);
        const wallS = (Date.now() - t0) / 1000;
        const sys = systemCpu(sys0);
        const cpuS = treeCpu(h.pid) - cpu0;
        const originS = treeCpu(origin.pid) - origin0;
        const accepts1 = await originAccepts();
        const w = parseWrk(out);
        const originConnections = accepts1.accepts - accepts0.accepts - 1; // minus the stub_status request itself
        if (w.non2xx || w.socketErrors) log(`  WARNING: ${w.non2xx} non-2xx responses, ${w.socketErrors} socket errors`);
        runs.push({
          round,
          key: c.key,
          ...w,
          wallS: r3(wallS),
          edgeCpuSeconds: r3(cpuS),
          originCpuSeconds: r3(originS),
          wrkCpuSeconds: r3(wrkS),
          machineBusyCpus: sys.busyCpus,
          // CPUs used by everything else on the machine meanwhile (other people's work, this benchmark's parent, the kernel's
          // share not charged to a process): the noise this round suffered.
          otherCpus: r2(sys.busyCpus - (cpuS + originS + wrkS) / wallS),
          machineStealCpus: sys.stealCpus,
          originConnections,
          wrkOutput: out,
        });
        log(
          `  round ${round + 1}/${opts.rounds} ${c.key}: ${Math.round(w.rps)} req/s, p50 ${fmtMs(w.p50Ms)}, p99 ${fmtMs(w.p99Ms)}, ` +
            `edge CPU ${r1((cpuS * 1e6) / w.requests)} µs/request (${Math.round((100 * cpuS) / wallS)} % of a core), ` +
            `wrk ${Math.round((100 * wrkS) / wallS)} %, origin ${Math.round((100 * originS) / wallS)} %, others ${Math.round(100 * (sys.busyCpus - (cpuS + originS + wrkS) / wallS))} % of a core, ` +
            `${originConnections} new origin connections`,
        );
      }
    }

    const agg = (key) => {
      const rs = runs.filter((r) => r.key === key);
      const requests = rs.reduce((a, r) => a + r.requests, 0);
      const avg = (k) => rs.reduce((a, r) => a + r[k], 0) / rs.length;
      return {
        requests,
        rps: avg('rps'),
        p50Ms: avg('p50Ms'),
        p99Ms: avg('p99Ms'),
        edgeCpuUsPerRequest: (rs.reduce((a, r) => a + r.edgeCpuSeconds, 0) * 1e6) / requests,
        edgeCpuShare: rs.reduce((a, r) => a + r.edgeCpuSeconds, 0) / rs.reduce((a, r) => a + r.wallS, 0),
        originCpuUsPerRequest: (rs.reduce((a, r) => a + r.originCpuSeconds, 0) * 1e6) / requests,
        originConnections: rs.reduce((a, r) => a + r.originConnections, 0),
        errors: rs.reduce((a, r) => a + r.non2xx + r.socketErrors, 0),
        wrkCpuUsPerRequest: (rs.reduce((a, r) => a + r.wrkCpuSeconds, 0) * 1e6) / requests,
        otherCpus: avg('otherCpus'),
        perRound: rs.map((r) => r.rps),
      };
    };
    const base = agg('nginx');
    const rows = candidates.map((c) => {
      const a = agg(c.key);
      const roundRatios = a.perRound.map((rps, i) => rps / base.perRound[i]);
      return {
        key: c.key,
        label: c.label,
        rps: r0(a.rps),
        rpsRatio: r2(a.rps / base.rps),
        rpsRatioPerRound: roundRatios.map(r2),
        p50Ms: r3(a.p50Ms),
        p50Ratio: r2(a.p50Ms / base.p50Ms),
        p99Ms: r3(a.p99Ms),
        p99Ratio: r2(a.p99Ms / base.p99Ms),
        edgeCpuUsPerRequest: r1(a.edgeCpuUsPerRequest),
        edgeCpuRatio: r2(a.edgeCpuUsPerRequest / base.edgeCpuUsPerRequest),
        edgeCpuShare: r2(a.edgeCpuShare),
        originCpuUsPerRequest: r1(a.originCpuUsPerRequest),
        originConnections: a.originConnections,
        wrkCpuUsPerRequest: r1(a.wrkCpuUsPerRequest),
        otherCpus: r2(a.otherCpus),
        requests: a.requests,
        errors: a.errors,
      };
    });
    const nginxRounds = base.perRound;
    return {
      nginxSpread: r3(Math.max(...nginxRounds) / Math.min(...nginxRounds) - 1),
      otherCpus: { min: r2(Math.min(...runs.map((r) => r.otherCpus))), max: r2(Math.max(...runs.map((r) => r.otherCpus))) },
      rows,
      runs,
    };
  } finally {
    for (const h of handles.values()) await h.stop();
  }
}

// --- 2. propagation ----------------------------------------------------------------------------------------------

async function propagation() {
  log(`propagation: control plane + 2 edge processes, ${opts.changes} changes`);
  const masterKey = randomBytes(32).toString('hex');
  const cpDir = join(dir, 'cp');
  mkdirSync(cpDir);
  const config = loadConfig({
    CERTPLANE_DATA_DIR: cpDir,
    CERTPLANE_BOOTSTRAP_ZONE: 'example.com',
    CERTPLANE_MASTER_KEY: masterKey,
    CERTPLANE_EDGE_GRACE_MS: '60000',
  });
  const cp = await createCertplane(config, { logger: false });
  const workers = [];
  const probeAgents = [];
  try {
    const address = await cp.app.listen({ host: '127.0.0.1', port: 0 });
    cp.deployer.start(config.deployerIntervalMs);
    const { token, zoneId } = cp.bootstrap;
    const api = async (method, path, body) => {
      const res = await fetch(`${address}/client/v4${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const json = await res.json();
      return { status: res.status, json };
    };
    const z = `/zones/${zoneId}`;

    // The hostname's origin is the probe server: it reports the SHA-1 fingerprint of the client certificate the edge
    // presented (empty when none).
    await cp.edge.addHostname({
      hostname: HOSTNAME,
      origin: { address: '127.0.0.1', port: probePort, tls: true, sni: 'origin.internal', caPem: certs.originCa.certPem },
      certificatePem: certs.edgeServer.certPem,
      keyPem: certs.edgeServer.keyPem,
    });
    const up = await api('POST', `${z}/origin_tls_client_auth/hostnames/certificates`, {
      certificate: certs.aopClient.certPem,
      private_key: certs.aopClient.keyPem,
    });
    if (!up.json.success) throw new Error(`uploading the AOP certificate failed: ${JSON.stringify(up.json.errors)}`);
    const certId = up.json.result.id;
    const put = (enabled) => api('PUT', `${z}/origin_tls_client_auth/hostnames`, { config: [{ hostname: HOSTNAME, cert_id: certId, enabled }] });
    const first = await put(true);
    if (first.status !== 200) throw new Error(`PUT association: ${first.status} ${JSON.stringify(first.json.errors)}`);
    const fingerprint = createHash('sha1').update(certs.aopClient.der).digest('hex');

    // Two edge nodes, each its own process: data plane + edge agent on the real feed.
    for (const name of ['bench edge 1', 'bench edge 2']) {
      const { credential } = await cp.edge.registerNode(name);
      const events = { applied: [], acked: [], errors: [] };
      const w = startWorker('agent', { controlPlane: address, credential, masterKey, hostname: HOSTNAME });
      w.child.on('message', (m) => {
        if (m.type === 'applied') events.applied.push(m);
        else if (m.type === 'acked') events.acked.push(m);
        else if (m.type === 'error') events.errors.push(m.message);
      });
      workers.push({ name, child: w.child, events, port: (await w.ready).port });
      probeAgents.push(new https.Agent({ keepAlive: true, maxSockets: 1 }));
    }

    const probe = async (i) => {
      const r = await visit(workers[i].port, { ca: certs.edgeCa.certPem, agent: probeAgents[i], timeoutMs: 2000 });
      if (r.status !== 200) return `HTTP ${r.status}`;
      return r.body.trim().toLowerCase();
    };
    /** Polls edge i until it serves `expected`; resolves with the wall-clock time of the first matching answer. */
    const until = async (i, expected, deadline) => {
      let polls = 0;
      let last = null;
      const answers = [];
      while (wallNow() < deadline) {
        polls++;
        const ts = wallNow();
        try {
          last = await probe(i);
        } catch (e) {
          last = e.message;
        }
        if (answers.length < 20) answers.push([r2(ts), r2(wallNow()), last === expected]);
        if (last === expected) return { t: wallNow(), polls, answers };
        await sleep(1);
      }
      return { t: null, polls, last, answers };
    };

    // Both edges serve the initial state (client certificate presented) before anything is measured.
    for (let i = 0; i < workers.length; i++) {
      const r = await until(i, fingerprint, wallNow() + 15_000);
      if (r.t === null) {
        throw new Error(`${workers[i].name} never served the initial configuration (last answer: ${r.last}; agent errors: ${workers[i].events.errors.slice(-3).join(' | ')})`);
      }
    }
    log('both edges present the AOP client certificate to the origin (checked); measuring');
    // This process also runs the control plane and the probes: its event-loop delay bounds how late a probe's answer
    // can be noticed (the measurement errs on the slow side, never the fast one).
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();

    const waitFor = async (fn, ms) => {
      const deadline = Date.now() + ms;
      for (;;) {
        const v = fn();
        if (v || Date.now() > deadline) return v;
        await sleep(2);
      }
    };
    const samples = [];
    let enabled = true;
    for (let k = 0; k < opts.changes; k++) {
      // A random pause de-correlates the change from the phase of the deployer's ticks and the feed's periodic
      // re-checks (the feed is woken by committed changes, but nothing here should depend on that).
      await sleep(Math.random() * 200);
      enabled = !enabled;
      const expected = enabled ? fingerprint : '';
      const identity = enabled ? certId : null;
      const tSend = wallNow();
      const res = await put(enabled);
      const t0 = wallNow();
      if (res.status !== 200) throw new Error(`PUT association #${k}: ${res.status} ${JSON.stringify(res.json.errors)}`);
      const served = await Promise.all(workers.map((_, i) => until(i, expected, t0 + 10_000)));
      const applied = await Promise.all(
        workers.map((w) => waitFor(() => w.events.applied.find((a) => a.t >= tSend && a.identity === identity), 2000)),
      );
      const acked = await Promise.all(
        workers.map((w, i) => waitFor(() => applied[i] && w.events.acked.find((a) => a.version >= applied[i].version && a.t >= applied[i].t), 5000)),
      );
      const all = (xs) => xs.every((x) => x && x.t !== null);
      samples.push({
        change: k,
        enabled,
        apiMs: r2(t0 - tSend),
        servedMs: all(served) ? r2(Math.max(...served.map((s) => s.t)) - t0) : null,
        servedPerEdgeMs: served.map((s) => (s.t === null ? null : r2(s.t - t0))),
        appliedMs: all(applied) ? r2(Math.max(...applied.map((a) => a.t)) - t0) : null,
        ackedMs: all(acked) ? r2(Math.max(...acked.map((a) => a.t)) - t0) : null,
        polls: served.map((s) => s.polls),
        probes: served.map((s) => s.answers.map(([a, b, ok]) => [r2(a - t0), r2(b - t0), ok])),
        appliedPerEdgeMs: applied.map((a) => (a ? r2(a.t - t0) : null)),
        version: applied[0]?.version ?? null,
      });
      if (!all(served)) log(`  change #${k}: not served by both edges within 10 s (last: ${served.map((s) => s.last).join(', ')})`);
    }
    const failed = samples.filter((s) => s.servedMs === null).length;
    const served = summary(samples.map((s) => (s.servedMs === null ? Infinity : s.servedMs)));
    const out = {
      changes: samples.length,
      notServedWithin10s: failed,
      servedMs: roundSummary(served),
      appliedMs: roundSummary(summary(samples.map((s) => s.appliedMs))),
      ackedMs: roundSummary(summary(samples.map((s) => s.ackedMs))),
      apiMs: roundSummary(summary(samples.map((s) => s.apiMs))),
      pollsPerChange: r1(samples.reduce((a, s) => a + s.polls[0] + s.polls[1], 0) / samples.length / 2),
      goalP99Below1s: failed === 0 && served.p99 < 1000,
      benchLoopDelayMs: { p50: r1(loopDelay.percentile(50) / 1e6), p99: r1(loopDelay.percentile(99) / 1e6), max: r1(loopDelay.max / 1e6) },
      agentErrors: workers.map((w) => w.events.errors.length),
      samples,
    };
    log(`  served by both edges: p50 ${out.servedMs.p50} ms, p99 ${out.servedMs.p99} ms, max ${out.servedMs.max} ms`);
    return out;
  } finally {
    for (const w of workers) await stopChild(w.child);
    for (const a of probeAgents) a.destroy();
    await cp.close();
  }
}

function roundSummary(s) {
  return { n: s.n, p50: r1(s.p50), p90: r1(s.p90), p99: r1(s.p99), max: s.max === Infinity ? null : r1(s.max), mean: r1(s.mean) };
}

// --- report ------------------------------------------------------------------------------------------------------

function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  return ms < 1 ? `${Math.round(ms * 1000)} µs` : `${r2(ms)} ms`;
}
const x = (ratio) => (ratio === null || ratio === undefined ? '–' : `${ratio.toFixed(2)}×`);

function markdown(res) {
  const m = res.machine;
  const t = res.throughput;
  const p = res.propagation;
  const s = res.settings;
  const lines = [];
  lines.push(
    `Run ${res.date} of certplane ${m.certplane} (${s.quick ? 'quick' : 'full'} mode, ${s.totalSeconds} s in all): \`${res.command}\`; ` +
      `raw results: \`${res.resultsFile}\`.`,
  );
  lines.push('');
  lines.push(
    `Machine: ${m.nproc} CPUs (${m.cpu}), Linux ${m.kernel}; Node ${m.node} (OpenSSL ${m.nodeOpenssl}); ${m.nginx} (${m.nginxOpenssl}); ${m.wrk}. ` +
      `Load average ${m.loadavgStart.join(' / ')} at the start, ${m.loadavgEnd.join(' / ')} at the end.`,
  );
  if (t) {
    lines.push('');
    lines.push(
      `**Throughput**: \`wrk -t${s.threads} -c${s.connections} -d${s.durationS}s --latency -H 'Host: ${HOSTNAME}'\`, ${s.rounds} interleaved rounds per edge ` +
        `(after a ${s.warmupS} s warm-up each), keep-alive TLS 1.3 on both legs, client certificate to an nginx origin (1 worker) that requires it. ` +
        (s.cpuPinning ? `Edge pinned to CPU ${s.cpuPinning.candidate}; wrk and the origin share CPU ${s.cpuPinning.loadAndOrigin}. ` : 'wrk, origin and edge share both CPUs (no pinning). ') +
        `req/s and latencies are means over the rounds; CPU per request is the edge process's user+system time divided by the requests it served. ` +
        `Noise: nginx's own rounds differed by ${(t.nginxSpread * 100).toFixed(0)} %; processes outside the benchmark used ` +
        `${t.otherCpus.min}–${t.otherCpus.max} of the ${m.nproc} CPUs during the rounds.`,
    );
    lines.push('');
    lines.push('| edge | req/s | vs nginx | (per round) | p50 | p99 | p50 vs nginx | p99 vs nginx | edge CPU / request | vs nginx | edge CPU use | origin CPU / request | errors |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of t.rows) {
      lines.push(
        `| ${r.label} | ${r.rps.toLocaleString('en-US')} | **${x(r.rpsRatio)}** | ${r.rpsRatioPerRound.map((v) => v.toFixed(2)).join(', ')} | ${fmtMs(r.p50Ms)} | ${fmtMs(r.p99Ms)} | ` +
          `${x(r.p50Ratio)} | ${x(r.p99Ratio)} | ${r.edgeCpuUsPerRequest} µs | **${x(r.edgeCpuRatio)}** | ${Math.round(r.edgeCpuShare * 100)} % of a core | ` +
          `${r.originCpuUsPerRequest} µs | ${r.errors} |`,
      );
    }
  }
  if (p) {
    lines.push('');
    lines.push(
      `**Propagation**: control plane in the benchmark process (SQLite, deployer running), 2 edge processes each running the Node data plane and ` +
        `the edge agent on the real feed; ${p.changes} \`PUT /zones/:zone/origin_tls_client_auth/hostnames\` toggling \`enabled\` with random ` +
        `0–200 ms pauses; measured from the API's 200 until both edges serve the change, seen on the wire: requests through each edge to an ` +
        `origin that answers with the fingerprint of the client certificate presented (${p.pollsPerChange.toFixed(1)} requests per edge per change on average; ` +
        `this process's event-loop delay, which can only make the figures later, p99 ${p.benchLoopDelayMs.p99} ms). ` +
        `Goal p99 < 1 s: **${p.goalP99Below1s ? 'met' : 'NOT met'}**` +
        (p.notServedWithin10s ? ` (${p.notServedWithin10s} changes not served within 10 s)` : '') +
        '.',
    );
    lines.push('');
    lines.push("| from the API's 200 until … | p50 | p90 | p99 | max | mean |");
    lines.push('|---|---:|---:|---:|---:|---:|');
    const row = (label, v) => lines.push(`| ${label} | ${v.p50} ms | ${v.p90} ms | ${v.p99} ms | ${v.max ?? '∞'} ms | ${v.mean} ms |`);
    row('**both edges serve it** (the origin sees the new client certificate through each edge)', p.servedMs);
    row('both data planes have applied it (`apply` resolved, reported by each edge process)', p.appliedMs);
    row('both edges have acknowledged it (ack POST answered)', p.ackedMs);
    row('for reference: the PUT itself, request sent to 200 received', p.apiMs);
  }
  return lines.join('\n');
}

const stamp = results.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
const resultsDir = join(root, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const resultsFile = join(resultsDir, `edge-${stamp}${quick ? '-quick' : ''}.json`);
results.resultsFile = relative(root, resultsFile);
writeFileSync(resultsFile, JSON.stringify(results, null, 2) + '\n');
const md = markdown(results);
process.stdout.write(md + '\n');

if (opts.writeMd) {
  const file = join(root, 'BENCHMARKS.md');
  const BEGIN = '<!-- bench:edge:results:begin (generated by bench/edge.mjs; edit the text outside these markers) -->';
  const END = '<!-- bench:edge:results:end -->';
  const block = `${BEGIN}\n${md}\n${END}`;
  let doc = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a >= 0 && b > a) doc = doc.slice(0, a) + block + doc.slice(b + END.length);
  else doc = `${doc.trimEnd()}\n\n## Edge (data plane)\n\nCommand: \`npm run bench:edge\`.\n\n${block}\n`;
  writeFileSync(file, doc);
  log(`BENCHMARKS.md updated; results in ${results.resultsFile}`);
} else {
  log(`results in ${results.resultsFile}${quick ? ' (quick mode: BENCHMARKS.md not rewritten)' : ''}`);
}
process.exit(0);

// wrk for the API benchmark: runs wrk with a Lua script (Bearer header, PUT/POST bodies, per-request paths) and
// parses its report (parseWrk: also used by the edge benchmark).
import { writeFileSync } from 'node:fs';
import { cpuSeconds, spawnTracked } from './proc.mjs';

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
function durMs(s) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s);
  if (!m) throw new Error(`cannot parse wrk duration ${s}`);
  return Number(m[1]) * UNIT_MS[m[2]];
}

export function parseWrk(out) {
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
    maxMs: durMs(num(/Latency\s+[\d.]+(?:us|ms|s|m)\s+[\d.]+(?:us|ms|s|m)\s+([\d.]+(?:us|ms|s|m))/)),
    non2xx: Number(num(/Non-2xx or 3xx responses:\s+(\d+)/) ?? 0),
    socketErrors: socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

/** A Lua string literal that needs no escaping (long bracket with a level the text cannot close). */
export function luaString(s) {
  let eq = '=';
  while (s.includes(`]${eq}]`)) eq += '=';
  return `[${eq}[${s}]${eq}]`;
}

/**
 * Writes a wrk script. `requests` is a list of { method, path, body? } cycled through in order from the offset
 * given as the script's argument, with the same headers on each.
 */
export function writeLuaScript(file, { headers, requests }) {
  const hdr = Object.entries(headers)
    .map(([k, v]) => `[ ${luaString(k)} ] = ${luaString(v)}`)
    .join(', ');
  const reqs = requests
    .map((r) => `{ ${luaString(r.method)}, ${luaString(r.path)}, ${r.body === undefined ? 'nil' : luaString(r.body)} }`)
    .join(',\n');
  writeFileSync(
    file,
    `local headers = { ${hdr} }
local reqs = {
${reqs}
}
local n = #reqs
local i = 0
local formatted = {}
-- The first script argument is where in the list to start (the previous run's end), so a warm-up and the run that
-- follows it do not repeat the same writes.
init = function(args)
  if args[1] then i = tonumber(args[1]) % n end
end
request = function()
  i = i % n + 1
  local f = formatted[i]
  if f == nil then
    local r = reqs[i]
    f = wrk.format(r[1], r[2], headers, r[3])
    -- Requests whose body changes the state are formatted once each and cycled; nothing is built per request.
    formatted[i] = f
  end
  return f
end
`,
  );
}

/**
 * Runs wrk against http://127.0.0.1:port with a script; resolves with the parsed report, its raw output and the CPU
 * seconds wrk used. `cpus`: taskset list or null.
 */
export function runWrk({ port, script, seconds, connections, threads, cpus = null, timeoutS = 10, args: scriptArgs = [] }) {
  const args = ['wrk', `-t${threads}`, `-c${connections}`, `-d${seconds}s`, `--timeout`, `${timeoutS}s`, '--latency', '-s', script, `http://127.0.0.1:${port}`, '--', ...scriptArgs];
  const [cmd, ...rest] = cpus ? ['taskset', '-c', cpus, ...args] : args;
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
      const c = cpuSeconds(child.pid);
      if (c !== null) cpuS = c;
    });
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(sample);
      if (code === 0) resolve({ ...parseWrk(out), out, wrkCpuS: cpuS });
      else reject(new Error(`wrk exited with ${code}:\n${out}`));
    });
  });
}

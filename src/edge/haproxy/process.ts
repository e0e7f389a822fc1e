/**
 * Finding, starting, reloading and stopping HAProxy. The edge runs it in master-worker mode (`-W -S <master socket>`)
 * in the foreground as a child of the certplane process: a reload is hitless (the new worker takes the listening
 * sockets over, the old one finishes its requests), and if HAProxy dies the data plane learns it at once.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { sendCommand } from './runtime.js';

const execFileP = promisify(execFile);

export interface HaproxyBinary {
  path: string;
  /** e.g. "2.6.12-1+deb12u4" */
  version: string;
  major: number;
  minor: number;
}

/** The oldest HAProxy the edge supports: runtime crt-list with verify/ca-file options, `add server`, `host_only`. */
export const MIN_VERSION = { major: 2, minor: 6 } as const;

/** Where the haproxy binary is: `CERTPLANE_HAPROXY`, else the first `haproxy` on PATH (or in /usr/sbin). */
export function findHaproxy(explicit?: string): string | null {
  const want = explicit ?? process.env.CERTPLANE_HAPROXY;
  if (want) return existsSync(want) ? want : null;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    if (d && existsSync(join(d, 'haproxy'))) return join(d, 'haproxy');
  }
  return null;
}

export async function detectHaproxy(explicit?: string): Promise<HaproxyBinary> {
  const path = findHaproxy(explicit);
  if (!path) throw new Error('haproxy not found (install it, or set CERTPLANE_HAPROXY to its path)');
  const { stdout } = await execFileP(path, ['-v'], { timeout: 10_000 });
  const m = /HA-?Proxy version (\d+)\.(\d+)(\S*)/i.exec(stdout);
  if (!m) throw new Error(`cannot read the version of ${path}: ${stdout.slice(0, 200)}`);
  const bin = { path, version: `${m[1]}.${m[2]}${m[3]}`, major: Number(m[1]), minor: Number(m[2]) };
  if (bin.major < MIN_VERSION.major || (bin.major === MIN_VERSION.major && bin.minor < MIN_VERSION.minor)) {
    throw new Error(`HAProxy ${bin.version} is too old: the edge needs ${MIN_VERSION.major}.${MIN_VERSION.minor} or later`);
  }
  return bin;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port nothing listens on right now (HAProxy needs a number: it cannot report the port it was given with 0). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The master's reload counters (`show proc`: "<pid> master <reloads> [failed: <n>] ..."), or null if it does not answer. */
async function masterCounts(masterSocket: string): Promise<{ reloads: number; failed: number } | null> {
  try {
    const out = await sendCommand(masterSocket, 'show proc', undefined, 2_000);
    const m = /^\d+\s+master\s+(\d+)\s+\[failed: (\d+)\]/m.exec(out);
    return m ? { reloads: Number(m[1]), failed: Number(m[2]) } : null;
  } catch {
    return null;
  }
}

/** The worker pid that answers on the admin socket, or null while none does. */
async function workerPid(adminSocket: string): Promise<number | null> {
  try {
    const info = await sendCommand(adminSocket, 'show info', undefined, 2_000);
    const m = /^Pid: (\d+)/m.exec(info);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export interface SupervisedHaproxy {
  readonly child: ChildProcess;
  /** The current worker's pid. */
  readonly workerPid: number;
  /** Hitless reload from the files; resolves once the new worker answers. */
  reload(): Promise<void>;
  /** Stops HAProxy (and with it every visitor connection). */
  stop(): Promise<void>;
}

/**
 * Starts HAProxy in master-worker mode and waits until its worker answers on the admin socket. `onExit` is called if
 * the master exits on its own (not through `stop()`).
 */
export async function startHaproxy(opts: {
  bin: string;
  cfgFile: string;
  masterSocket: string;
  adminSocket: string;
  onExit: (reason: string) => void;
  log?: (line: string) => void;
  startTimeoutMs?: number;
}): Promise<SupervisedHaproxy> {
  const child = spawn(opts.bin, ['-W', '-S', `${opts.masterSocket},mode,600`, '-f', opts.cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stopping = false;
  let exited: string | null = null;
  const tail: string[] = [];
  const onLine = (d: Buffer) => {
    for (const line of d.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 20) tail.shift();
      opts.log?.(line);
    }
  };
  child.stdout?.on('data', onLine);
  child.stderr?.on('data', onLine);
  const exitedP = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = `haproxy exited (${signal ?? `code ${code}`})${tail.length ? `: ${tail.slice(-5).join(' | ')}` : ''}`;
      resolve();
      if (!stopping) opts.onExit(exited);
    });
    child.once('error', (e) => {
      exited = `haproxy could not run: ${e.message}`;
      resolve();
      if (!stopping) opts.onExit(exited);
    });
  });

  const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
  let pid: number | null = null;
  while (pid === null) {
    if (exited) throw new Error(exited);
    if (Date.now() > deadline) {
      stopping = true;
      child.kill('SIGKILL');
      throw new Error(`haproxy did not start within ${opts.startTimeoutMs ?? 60_000} ms: ${tail.slice(-5).join(' | ')}`);
    }
    await sleep(20);
    pid = await workerPid(opts.adminSocket);
  }

  const h = {
    child,
    workerPid: pid,
    async reload(): Promise<void> {
      if (exited) throw new Error(exited);
      const before = h.workerPid;
      const until = Date.now() + (opts.startTimeoutMs ?? 60_000);
      // The master counts reloads and failed ones (`show proc`): a master that cannot load the new files keeps the
      // old worker and says so only there.
      let counts = await masterCounts(opts.masterSocket);
      for (let i = 0; !counts && i < 100; i++) {
        await sleep(20);
        counts = await masterCounts(opts.masterSocket);
      }
      await sendCommand(opts.masterSocket, 'reload', undefined, 5_000).catch(() => child.kill('SIGUSR2'));
      for (;;) {
        if (exited) throw new Error(exited);
        const now = await workerPid(opts.adminSocket);
        if (now !== null && now !== before) {
          h.workerPid = now;
          return;
        }
        const after = counts ? await masterCounts(opts.masterSocket) : null;
        if (counts && after && after.reloads > counts.reloads && after.failed > 0) {
          const why = tail.filter((l) => /ALERT/.test(l)).slice(-5).join(' | ');
          throw new Error(`haproxy could not load the new configuration; the previous one keeps serving${why ? `: ${why}` : ''}`);
        }
        if (Date.now() > until) throw new Error(`haproxy did not reload within ${opts.startTimeoutMs ?? 60_000} ms: ${tail.slice(-5).join(' | ')}`);
        await sleep(20);
      }
    },
    async stop(): Promise<void> {
      stopping = true;
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exitedP;
      clearTimeout(timer);
    },
  };
  return h;
}

/**
 * HAProxy's Runtime API (the admin stats socket) and its master CLI: one command per connection, payloads with the
 * `<<` syntax, every reply checked. Commands are serialized: HAProxy allows one open transaction per object type, and
 * a strict order is what makes a change safe (see data-plane.ts).
 */
import * as net from 'node:net';

export class RuntimeError extends Error {
  constructor(
    readonly command: string,
    readonly reply: string,
  ) {
    super(`haproxy runtime API: \`${command}\` answered: ${reply.trim().slice(0, 300) || '(nothing)'}`);
  }
}

/** Sends one command (with an optional payload) and returns the whole reply. */
export function sendCommand(socketPath: string, command: string, payload?: string, timeoutMs = 10_000): Promise<string> {
  if (/[\r\n]/.test(command)) return Promise.reject(new Error('a runtime command is one line'));
  const text = payload === undefined ? `${command}\n` : `${command} <<\n${payload.replace(/\n+$/, '')}\n\n`;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(socketPath);
    const timer = setTimeout(() => s.destroy(new Error(`haproxy runtime API: \`${command}\` timed out`)), timeoutMs);
    s.on('connect', () => s.end(text));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/** Replies HAProxy uses for a refused command (it answers in prose; success texts vary by command). */
const FAILURE = /^(Can't|Cannot|Unknown|No such|Unable|Error|Failed|Not enough|Missing|Permission denied|Operation not|Invalid|This command|Require)|\b(does not exist|not found|already exists|cannot|could not)\b/im;

export class RuntimeClient {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly socketPath: string) {}

  /** Runs a command and returns its reply; rejects with a RuntimeError when HAProxy refused it. */
  run(command: string, payload?: string, opts: { ok?: RegExp } = {}): Promise<string> {
    const next = this.queue.then(async () => {
      const reply = await sendCommand(this.socketPath, command, payload);
      if (opts.ok ? !opts.ok.test(reply) : FAILURE.test(reply)) throw new RuntimeError(command, reply);
      return reply;
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Uploads a certificate (and its key) into HAProxy's store under `name`: new, set, commit. */
  async putCertificate(name: string, pem: string, isNew: boolean): Promise<void> {
    if (isNew) await this.run(`new ssl cert ${name}`, undefined, { ok: /New empty certificate store/ });
    await this.run(`set ssl cert ${name}`, pem, { ok: /Transaction (created|updated)/ });
    await this.run(`commit ssl cert ${name}`, undefined, { ok: /Success!/ });
  }

  /** Uploads a CA bundle as a NEW CA file (never updated in place: see the HAProxy 2.6 notes in DESIGN.md). */
  async putCaFile(name: string, pem: string): Promise<void> {
    await this.run(`new ssl ca-file ${name}`, undefined, { ok: /New CA file created/ });
    await this.run(`set ssl ca-file ${name}`, pem, { ok: /transaction (created|updated)/i });
    await this.run(`commit ssl ca-file ${name}`, undefined, { ok: /Success!/ });
  }
}

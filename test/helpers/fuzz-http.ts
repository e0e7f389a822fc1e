/**
 * Raw HTTP/1.1 over loopback for the fuzz suite: requests are bytes (so invalid UTF-8, NUL bytes, duplicate or
 * missing headers, bad Content-Length and broken chunking really reach the server), answers are parsed by hand.
 *
 * Two ways to send:
 *  - `exchange` (keep-alive): one well-framed request on a reused connection, exactly one answer read back;
 *  - `exchangeClosing` (a fresh connection, half-closed by the client): for requests whose framing is itself
 *    broken, where the server may answer more than once (a truncated body leaves bytes that look like a second
 *    request) or only when it sees the end of the stream; every answer on the connection is returned.
 * A request that gets no answer at all, or only a partial one, is an error naming what was seen.
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

/** What a request is made of, before it becomes bytes. */
export interface RawRequest {
  method: string;
  /** The request-target exactly as sent (path and query, already percent-encoded or deliberately not). */
  target: string;
  /** Header lines in order, as [name, value]; values may hold any byte (latin1 strings or Buffers). */
  headers: [string, string | Buffer][];
  body?: Buffer;
  /** HTTP version in the request line (default 1.1). */
  version?: string;
}

const CRLF = Buffer.from('\r\n');

export function serialize(req: RawRequest): Buffer {
  const parts: Buffer[] = [Buffer.from(`${req.method} ${req.target} HTTP/${req.version ?? '1.1'}\r\n`, 'latin1')];
  for (const [name, value] of req.headers) {
    parts.push(Buffer.from(`${name}: `, 'latin1'), typeof value === 'string' ? Buffer.from(value, 'latin1') : value, CRLF);
  }
  parts.push(CRLF);
  if (req.body) parts.push(req.body);
  return Buffer.concat(parts);
}

/**
 * Parses as many complete answers as `buf` holds. Returns them and how many bytes they used; `partial` says
 * whether bytes of an incomplete answer follow. 1xx interim answers (100 Continue) are skipped.
 */
export function parseResponses(buf: Buffer, eof: boolean): { responses: RawResponse[]; used: number; partial: boolean } {
  const responses: RawResponse[] = [];
  let pos = 0;
  for (;;) {
    if (pos >= buf.length) return { responses, used: pos, partial: false };
    const headEnd = buf.indexOf('\r\n\r\n', pos, 'latin1');
    if (headEnd < 0) return { responses, used: pos, partial: true };
    const head = buf.subarray(pos, headEnd).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(head[0]);
    if (!m) throw new Error(`not an HTTP answer: ${JSON.stringify(head[0].slice(0, 200))}`);
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) throw new Error(`malformed answer header line: ${JSON.stringify(line.slice(0, 200))}`);
      const name = line.slice(0, i).trim().toLowerCase();
      const value = line.slice(i + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    let p = headEnd + 4;
    if (status >= 100 && status < 200) {
      pos = p;
      continue;
    }
    let body: Buffer;
    if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
      const chunks: Buffer[] = [];
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', p, 'latin1');
        if (lineEnd < 0) return { responses, used: pos, partial: true };
        const size = parseInt(buf.subarray(p, lineEnd).toString('latin1'), 16);
        if (!Number.isFinite(size)) throw new Error('malformed chunk size in answer');
        if (lineEnd + 2 + size + 2 > buf.length) return { responses, used: pos, partial: true };
        chunks.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
      body = Buffer.concat(chunks);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (p + n > buf.length) return { responses, used: pos, partial: true };
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      // Delimited by the end of the connection.
      if (!eof) return { responses, used: pos, partial: true };
      body = buf.subarray(p);
      p = buf.length;
    }
    responses.push({ status, headers, body: Buffer.from(body) });
    pos = p;
  }
}

export class NoAnswerError extends Error {
  override readonly name = 'NoAnswerError';
}

/** A connection that can carry several exchanges one after another. */
class Connection {
  readonly socket: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.socket = connect({ port, host: '127.0.0.1', noDelay: true });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    this.socket.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    this.socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    // A server that answers and closes before the whole request was written resets the connection: that is not a
    // failure when the answer arrived, so errors are kept and judged by the reader.
    this.socket.on('error', (err) => {
      this.failure = err;
      this.wake?.();
    });
  }

  get closed(): boolean {
    return this.ended || this.socket.destroyed;
  }

  /** Waits until `want` is satisfied by the bytes received (or the connection ends), at most `timeoutMs`. */
  async read(want: (buf: Buffer, eof: boolean) => boolean, timeoutMs: number, what: string): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (!want(this.buf, this.ended)) {
      if (this.ended) break;
      if (this.failure && this.buf.length === 0) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        this.socket.destroy();
        throw new NoAnswerError(`${what}: no complete answer within ${timeoutMs} ms (the server hangs); got ${preview(this.buf)}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          resolve();
        };
      });
    }
    if (!want(this.buf, this.ended) && this.buf.length === 0 && this.failure) {
      throw new NoAnswerError(`${what}: connection failed without an answer (${(this.failure as NodeJS.ErrnoException).code ?? this.failure.message})`);
    }
    return this.buf;
  }

  consume(n: number): void {
    this.buf = this.buf.subarray(n);
  }
}

const preview = (b: Buffer) => (b.length === 0 ? 'nothing' : JSON.stringify(b.subarray(0, 300).toString('latin1')));

/** Generous: only a real hang trips it (it is not a performance assertion). */
export const ANSWER_TIMEOUT_MS = 30_000;

export class RawClient {
  private conn: Connection | null = null;
  /** Connections opened, for the report. */
  connections = 0;

  constructor(readonly port: number) {}

  private async fresh(): Promise<Connection> {
    const c = new Connection(this.port);
    this.connections++;
    await c.ready;
    return c;
  }

  /** One well-framed request on the kept-alive connection; exactly one answer. */
  async exchange(bytes: Buffer, what: string): Promise<RawResponse> {
    if (!this.conn || this.conn.closed) this.conn = await this.fresh();
    const c = this.conn;
    c.socket.write(bytes);
    const buf = await c.read((b, eof) => parseResponses(b, eof).responses.length > 0, ANSWER_TIMEOUT_MS, what);
    const parsed = parseResponses(buf, c.closed);
    if (parsed.responses.length === 0) {
      c.socket.destroy();
      this.conn = null;
      throw new NoAnswerError(`${what}: the server closed the connection without an answer (got ${preview(buf)})`);
    }
    const res = parsed.responses[0];
    c.consume(parsed.used);
    if (parsed.responses.length > 1 || parsed.partial) {
      c.socket.destroy();
      this.conn = null;
      throw new Error(`${what}: more than one answer to one request (${preview(buf)})`);
    }
    if (/\bclose\b/i.test(res.headers.connection ?? '')) {
      c.socket.destroy();
      this.conn = null;
    }
    return res;
  }

  /**
   * A request with broken framing, on a connection of its own: returns every answer the server sent before closing
   * (at least one, or NoAnswerError). The client half-closes once the first answer is in, or at once with
   * `halfClose` (for requests the server can only judge at the end of the stream, like a body shorter than its
   * Content-Length). Not earlier: Node aborts the requests of a connection its client half-closes, so an answer
   * that takes a database round trip would be lost.
   */
  async exchangeClosing(bytes: Buffer, what: string, halfClose = false): Promise<RawResponse[]> {
    const c = await this.fresh();
    try {
      if (halfClose) c.socket.end(bytes);
      else {
        c.socket.write(bytes);
        await c.read((b, eof) => eof || parseResponses(b, eof).responses.length > 0, ANSWER_TIMEOUT_MS, what);
        c.socket.end();
      }
      const buf = await c.read((_b, eof) => eof, ANSWER_TIMEOUT_MS, what);
      const parsed = parseResponses(buf, true);
      if (parsed.responses.length === 0) {
        throw new NoAnswerError(`${what}: the server closed the connection without an answer (got ${preview(buf)})`);
      }
      if (parsed.partial) throw new Error(`${what}: a partial answer (${preview(buf.subarray(parsed.used))})`);
      return parsed.responses;
    } finally {
      c.socket.destroy();
    }
  }

  close(): void {
    this.conn?.socket.destroy();
    this.conn = null;
  }
}

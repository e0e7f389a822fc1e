/**
 * Answers kept ready to send (docs/decisions/0010-answers-from-memory.md).
 *
 * A GET on a zone's Authenticated Origin Pulls data is answered from the bytes the same URL was last answered with,
 * as long as the two versions it was built under (the tenancy version and the zone's data version, read fresh for
 * every request: `Store.versions`) are unchanged and the caller passes the same authentication and authorisation
 * checks as the full path makes. Anything else (another method, an unknown URL, changed data, a refused or
 * unrecognised credential) goes through the full path, which builds the answer and may keep it for the next caller.
 *
 * Only successful answers are kept; an entry is tagged with the versions read before its data was read, so an
 * answer can only ever be older than its tag (and then the next request misses), never newer. Memory is bounded by
 * bytes: the oldest entries go first.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Permission } from '../domain/model.js';
import type { DataVersions } from '../domain/ports.js';

export interface CachedAnswer {
  zoneId: string;
  permission: Permission;
  versions: DataVersions;
  /** The whole serialised envelope, as sent. */
  body: Buffer;
}

export interface AnswerCache {
  get(url: string): CachedAnswer | undefined;
  put(url: string, answer: CachedAnswer): void;
  readonly size: number;
  readonly bytes: number;
  /** Requests answered from memory so far (operators' metric; tests use it to prove the path was taken). */
  hits: number;
}

/** Bytes counted for an entry besides its body (key, object, map slot): keeps a flood of tiny answers bounded too. */
const ENTRY_OVERHEAD = 200;

export function createAnswerCache(maxBytes: number): AnswerCache {
  const entries = new Map<string, CachedAnswer>();
  let bytes = 0;
  const cost = (url: string, a: CachedAnswer) => a.body.length + url.length + ENTRY_OVERHEAD;
  return {
    hits: 0,
    get: (url) => entries.get(url),
    put(url, answer) {
      const size = cost(url, answer);
      if (size > maxBytes) return;
      const old = entries.get(url);
      if (old) {
        bytes -= cost(url, old);
        entries.delete(url);
      }
      // Map iteration is insertion order: the first keys are the oldest.
      for (const [k, v] of entries) {
        if (bytes + size <= maxBytes) break;
        bytes -= cost(k, v);
        entries.delete(k);
      }
      entries.set(url, answer);
      bytes += size;
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return bytes;
    },
  };
}

/** The headers of every JSON envelope sent outside Fastify (the ones the full path sends: type, no-store, length). */
export function answerHeaders(length: number): Record<string, string | number> {
  return { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': length };
}

/** Only a plain GET without a body can be answered from memory. */
export function canAnswerFromMemory(req: IncomingMessage): boolean {
  return (
    req.method === 'GET' && req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined
  );
}

export function sendAnswer(res: ServerResponse, answer: CachedAnswer): void {
  res.writeHead(200, answerHeaders(answer.body.length));
  res.end(answer.body);
}

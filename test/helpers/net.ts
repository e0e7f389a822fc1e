/** Small network helpers shared by the test harnesses. */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';

/** A port that was free a moment ago: bind a server to port 0 on loopback and read what the OS chose. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('could not read the bound port'))));
    });
  });
}

/** One request whose answer must be JSON (every certplane answer is); returns status, parsed body and raw text. */
export async function fetchJson(
  url: string,
  method: string,
  headers: Record<string, string>,
  payload: string | undefined,
): Promise<{ status: number; headers: Headers; body: any; text: string }> {
  const res = await fetch(url, { method, headers, body: payload });
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${method} ${url} answered non-JSON (${res.status}): ${text.slice(0, 200)}`);
  }
  return { status: res.status, headers: res.headers, body, text };
}

/**
 * PEM scanning (RFC 7468, with RFC 1421 headers tolerated). Linear in the input length: every "-----" occurrence is
 * inspected once and labels are bounded in length, so hostile input cannot make this quadratic.
 *
 * Markers may appear anywhere (not only at the start of a line), so text around blocks — comments, blank lines,
 * "\r\n" line ends, several blocks on one line — is tolerated. A BEGIN with no matching END before the next BEGIN (or
 * the end of the text) yields a block with `terminated: false`.
 */

export interface PemBlock {
  label: string;
  /** RFC 1421 header lines ("Proc-Type: 4,ENCRYPTED", "DEK-Info: ..."), trimmed. */
  headers: string[];
  /** The base64 payload with headers removed (whitespace not yet stripped). */
  body: string;
  terminated: boolean;
}

const DASHES = '-----';
const MAX_LABEL = 128;

function splitBody(raw: string): { headers: string[]; body: string } {
  if (raw.indexOf(':') < 0) return { headers: [], body: raw };
  const headers: string[] = [];
  const kept: string[] = [];
  for (const line of raw.split(/\r\n|\n|\r/)) {
    if (line.includes(':')) headers.push(line.trim());
    else kept.push(line);
  }
  return { headers, body: kept.join('\n') };
}

export function scanPem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  let open: { label: string; bodyStart: number } | null = null;
  const close = (bodyEnd: number, terminated: boolean): void => {
    if (!open) return;
    const { headers, body } = splitBody(text.slice(open.bodyStart, bodyEnd));
    blocks.push({ label: open.label, headers, body, terminated });
    open = null;
  };

  let pos = 0;
  for (;;) {
    const p = text.indexOf(DASHES, pos);
    if (p < 0) break;
    let kind: 'BEGIN' | 'END' | null = null;
    let labelStart = 0;
    if (text.startsWith('BEGIN ', p + 5)) {
      kind = 'BEGIN';
      labelStart = p + 11;
    } else if (text.startsWith('END ', p + 5)) {
      kind = 'END';
      labelStart = p + 9;
    }
    if (kind === null) {
      pos = p + 1;
      continue;
    }
    // The label runs up to the next "-----" on the same line, at most MAX_LABEL characters away.
    let labelEnd = -1;
    const limit = Math.min(text.length, labelStart + MAX_LABEL);
    for (let i = labelStart; i < limit; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x0a || c === 0x0d) break;
      if (c === 0x2d && text.startsWith(DASHES, i)) {
        labelEnd = i;
        break;
      }
    }
    if (labelEnd < 0) {
      pos = p + 1;
      continue;
    }
    const label = text.slice(labelStart, labelEnd).trim();
    const markerEnd = labelEnd + DASHES.length;
    if (kind === 'BEGIN') {
      close(p, false);
      open = { label, bodyStart: markerEnd };
    } else if (open && open.label === label) {
      close(p, true);
    }
    // A stray END (no open block, or another label) is ignored.
    pos = markerEnd;
  }
  close(text.length, false);
  return blocks;
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict standard base64 (padding required). Returns null when the payload is not valid base64 or is empty. */
export function decodeBase64Strict(body: string): Buffer | null {
  const s = body.replace(/[ \t\r\n\f\v]+/g, '');
  if (s.length === 0 || s.length % 4 !== 0 || !BASE64_RE.test(s)) return null;
  return Buffer.from(s, 'base64');
}

/** Canonical PEM: base64 in 64-character lines, trailing newline. */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  let out = `-----BEGIN ${label}-----\n`;
  for (let i = 0; i < b64.length; i += 64) out += b64.slice(i, i + 64) + '\n';
  return out + `-----END ${label}-----\n`;
}

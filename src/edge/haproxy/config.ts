/**
 * The HAProxy configuration certplane renders: the main file, the crt-list, and the maps. Pure functions of the
 * desired state, so the runtime changes (data-plane.ts) and a restart from the files serve exactly the same thing.
 *
 * Layout of one edge (all under one private directory, mode 0700):
 *
 *   haproxy.cfg        global + defaults + frontends + slot backends
 *   edge.crtlist       one line per hostname: `<cert> [verify optional ca-file <cas>] <hostname>`
 *   hosts.map          hostname → `<trust domain>|<origin backend>|<forward 0/1>|<origin SNI>` (also `hostname.`)
 *   hop.map            mTLS hostname → its hop slot (only with Access mTLS hostnames; see below)
 *   certs/, cas/       content-addressed PEM files (a changed certificate or CA set gets a new name, never an update)
 *   errors/            the edge's own error answers (JSON, like the Node edge)
 *
 * Two shapes, chosen by what is served:
 *  - direct: one TLS `bind` for visitors. Used while no hostname has Access CAs: the fastest path.
 *  - hop: a TCP frontend reads the SNI and passes each connection to the TLS frontend over a private unix socket
 *    (PROXY v2), through a per-hostname "hop slot" backend. HAProxy keeps no stream for an idle keep-alive HTTP
 *    connection, so without this an authenticated connection cannot be closed when its hostname's Access CAs are
 *    removed or replaced; with it, `shutdown sessions server` on the slot closes exactly those connections.
 *
 * HAProxy 2.6 cannot add a backend at runtime (`add backend` arrived in 3.4), so origin backends are pre-declared
 * empty slots filled with `add server`; the hop slots are pre-declared too. Running out of slots means a reload.
 */
import { join } from 'node:path';

export type Mode = 'direct' | 'hop';

export interface Layout {
  dir: string;
  cfgFile: string;
  crtList: string;
  hostsMap: string;
  hopMap: string;
  adminSocket: string;
  masterSocket: string;
  innerSocket: string;
  pidFile: string;
  certsDir: string;
  casDir: string;
  errorsDir: string;
}

export function layoutOf(dir: string): Layout {
  return {
    dir,
    cfgFile: join(dir, 'haproxy.cfg'),
    crtList: join(dir, 'edge.crtlist'),
    hostsMap: join(dir, 'hosts.map'),
    hopMap: join(dir, 'hop.map'),
    adminSocket: join(dir, 'admin.sock'),
    masterSocket: join(dir, 'master.sock'),
    innerSocket: join(dir, 'inner.sock'),
    pidFile: join(dir, 'haproxy.pid'),
    certsDir: join(dir, 'certs'),
    casDir: join(dir, 'cas'),
    errorsDir: join(dir, 'errors'),
  };
}

/** One hostname as HAProxy serves it. */
export interface EdgeEntry {
  hostname: string;
  /** Store name (= file path) of the visitor certificate + key. */
  certName: string;
  /** Store name of the Access CA bundle; null for a hostname without Access CAs. */
  caName: string | null;
  /** Trust domain: `p` (public) or `m` + a hash of the CA set; a change in progress uses a unique `x…` value. */
  td: string;
  /** Origin backend (slot) name. */
  backend: string;
  forward: boolean;
  /** SNI sent to the origin: a name, '' for none, '*' for the visitor's hostname (wildcard hostnames). */
  originSni: string;
  /** Hop slot index (hop mode, hostnames with Access CAs only). */
  hopSlot: number | null;
}

/** An origin backend: one server, one identity (so connections are never shared between identities). */
export interface OriginProfile {
  key: string;
  slot: number;
  /** `<address>:<port>` as HAProxy reads it. */
  address: string;
  /** Server keywords after the address (TLS, verification, client certificate, SNI). */
  args: string;
}

export interface RenderInput {
  layout: Layout;
  listen: { host: string; port: number };
  mode: Mode;
  /** Session resumption off (`tune.ssl.cachesize 0` + `no-tls-tickets`): see selftest.ts. */
  noResumption: boolean;
  /** nbthread; null = HAProxy's default (one per CPU it may run on). */
  threads: number | null;
  originSlots: number;
  hopSlots: number;
  profiles: OriginProfile[];
}

export const originBackend = (slot: number): string => `o${slot}`;
export const hopBackend = (slot: number): string => `h${slot}`;

/** A hosts.map value; a wildcard's origin SNI ('*': the visitor's hostname) is left empty and completed per request. */
export function mapValue(e: EdgeEntry): string {
  return `${e.td}|${e.backend}|${e.forward ? 1 : 0}|${e.originSni === '*' ? '' : e.originSni}`;
}

export function crtListLine(e: EdgeEntry): string {
  return `${e.certName}${e.caName ? ` [verify optional ca-file ${e.caName}]` : ''} ${e.hostname}`;
}

/** The crt-list, placeholder first (a TLS bind needs one certificate; its name is never a visitor's SNI). */
export function crtListText(placeholder: string, entries: Iterable<EdgeEntry>): string {
  const lines = [`${placeholder} certplane-placeholder.invalid`];
  for (const e of entries) lines.push(crtListLine(e));
  return lines.join('\n') + '\n';
}

export function hostsMapText(entries: Iterable<EdgeEntry>): string {
  const lines: string[] = [];
  for (const e of entries) {
    const v = mapValue(e);
    lines.push(`${e.hostname} ${v}`, `${e.hostname}. ${v}`);
  }
  return lines.join('\n') + (lines.length ? '\n' : '');
}

export function hopMapText(entries: Iterable<EdgeEntry>): string {
  const lines: string[] = [];
  for (const e of entries) if (e.hopSlot !== null) lines.push(`${e.hostname} ${hopBackend(e.hopSlot)}`);
  return lines.join('\n') + (lines.length ? '\n' : '');
}

export const ERRORS = {
  badGateway: { file: '502.http', status: 502, error: 'Bad Gateway', message: 'the edge could not get an answer from the origin' },
  misdirected: { file: '421.json', status: 421, error: 'Misdirected Request', message: 'this host is not served on this connection (Misdirected Request); open a new connection for it' },
  forbidden: { file: '403.json', status: 403, error: 'Forbidden', message: 'this hostname requires a valid client certificate issued by one of its Access CAs' },
} as const;

export function errorBody(e: { status: number; error: string; message: string }): string {
  return JSON.stringify({ status: e.status, error: e.error, message: e.message }) + '\n';
}

/** A complete HTTP response, as HAProxy's `errorfile` wants it. */
export function errorFileText(e: { status: number; error: string; message: string }): string {
  const body = errorBody(e);
  return (
    `HTTP/1.1 ${e.status} ${e.error}\r\ncontent-type: application/json; charset=utf-8\r\ncache-control: no-store\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

function bindAddress(host: string, port: number): string {
  return host.includes(':') ? `ipv6@${host}:${port}` : `${host}:${port}`;
}

export function renderConfig(i: RenderInput): string {
  const L = i.layout;
  const json = (name: string) => join(L.errorsDir, name);
  const tlsBindOptions =
    `ssl crt-list ${L.crtList} strict-sni alpn http/1.1 ssl-min-ver TLSv1.2 ca-ignore-err all crt-ignore-err all` +
    (i.noResumption ? ' no-tls-tickets' : '');
  const out: string[] = [];
  out.push(
    '# Rendered by certplane (src/edge/haproxy/config.ts). Edit the control plane, not this file.',
    'global',
    `  stats socket ${L.adminSocket} mode 600 level admin expose-fd listeners`,
    '  stats timeout 2m',
    `  pidfile ${L.pidFile}`,
    ...(i.threads ? [`  nbthread ${i.threads}`] : []),
    ...(i.noResumption ? ['  tune.ssl.cachesize 0'] : []),
    '  tune.ssl.default-dh-param 2048',
    // Each certificate is one file holding its chain and key: do not look for .key/.ocsp/.issuer/.sctl beside it.
    '  ssl-load-extra-files none',
    '  hard-stop-after 60s',
    '',
    'defaults',
    '  mode http',
    '  option http-keep-alive',
    '  timeout connect 10s',
    '  timeout client 120s',
    '  timeout server 100s',
    '  timeout http-request 60s',
    '  timeout http-keep-alive 30s',
    '  timeout client-fin 5s',
    `  errorfile 502 ${json(ERRORS.badGateway.file)}`,
    `  errorfile 503 ${json(ERRORS.badGateway.file)}`,
    `  errorfile 504 ${json(ERRORS.badGateway.file)}`,
    '',
  );
  if (i.mode === 'hop') {
    const hop = `unix@${L.innerSocket} send-proxy-v2 proxy-v2-options unique-id`;
    out.push(
      'frontend sni',
      '  mode tcp',
      `  bind ${bindAddress(i.listen.host, i.listen.port)}`,
      '  tcp-request inspect-delay 10s',
      // A TLS handshake record, and no longer than TLS allows: anything else is dropped at once.
      '  tcp-request content reject if !{ req.payload(0,2),hex -m str 1603 }',
      '  tcp-request content reject if { req.payload(3,1),hex -m reg ^([4-9A-F][1-9A-F]|[5-9A-F]0)$ }',
      '  tcp-request content set-var(sess.sni) req.ssl_sni,lower if { req.ssl_sni -m found }',
      `  tcp-request content set-var(sess.hop) var(sess.sni),map(${L.hopMap})`,
      `  tcp-request content set-var(sess.hop) var(sess.sni),regsub(^[^.]*,*),map(${L.hopMap}) if !{ var(sess.hop) -m found }`,
      '  tcp-request content accept',
      // The SNI this frontend read travels to the TLS frontend (PROXY v2 unique-id), which checks it is the one it used.
      '  unique-id-format %[var(sess.sni)]',
      '  use_backend %[var(sess.hop)] if { var(sess.hop) -m found }',
      '  use_backend hop_public if { var(sess.sni) -m found }',
      '  default_backend hop_unknown',
      '',
      'backend hop_public',
      '  mode tcp',
      `  server s ${hop}`,
      '',
      'backend hop_unknown',
      '  mode tcp',
      `  server s ${hop}`,
      '',
    );
    for (let s = 0; s < i.hopSlots; s++) out.push(`backend ${hopBackend(s)}`, '  mode tcp', `  server s ${hop}`, '');
  }
  out.push(
    'frontend edge',
    i.mode === 'hop' ? `  bind unix@${L.innerSocket} mode 600 accept-proxy ${tlsBindOptions}` : `  bind ${bindAddress(i.listen.host, i.listen.port)} ${tlsBindOptions}`,
    '  option forwardfor',
    '  http-request del-header cf-client-cert-der-base64',
    '  http-request del-header cf-client-cert-sha256',
    '  http-request set-header x-forwarded-proto https',
    // The hostname the request is for (its entry; a wildcard entry ends with an empty origin SNI, completed with the
    // visitor's hostname), and the one the connection was opened for (SNI): usually the same name; otherwise they must
    // be in the same trust domain, or 421. Every rule here runs on every request: few, and no lookup that the common
    // case does not need.
    '  http-request set-var(txn.h) req.hdr(host),host_only,lower',
    `  http-request set-var(txn.e) var(txn.h),map(${L.hostsMap})`,
    `  http-request set-var(txn.e) var(txn.h),regsub(^[^.]*,*),map(${L.hostsMap}),concat(,txn.h,) if !{ var(txn.e) -m found }`,
    `  http-request return status 421 content-type "application/json; charset=utf-8" file ${json(ERRORS.misdirected.file)} if !{ var(txn.e) -m found }`,
    '  http-request set-var(txn.s) ssl_fc_sni,lower',
    // Set only when the names differ (then the rules below run; otherwise each is one variable lookup).
    '  http-request set-var(txn.other) var(txn.s),strcmp(txn.h) if !{ var(txn.s),strcmp(txn.h) eq 0 }',
    ...(i.mode === 'hop' ? ['  http-request set-var(txn.etd) var(txn.e),field(1,|)'] : ['  http-request set-var(txn.etd) var(txn.e),field(1,|) if { var(txn.other) -m found }']),
    `  http-request set-var(txn.std) var(txn.s),map(${L.hostsMap}),field(1,|) if { var(txn.other) -m found }`,
    `  http-request set-var(txn.std) var(txn.s),regsub(^[^.]*,*),map(${L.hostsMap}),field(1,|) if { var(txn.other) -m found } !{ var(txn.std) -m found }`,
    `  http-request return status 421 content-type "application/json; charset=utf-8" file ${json(ERRORS.misdirected.file)} if { var(txn.other) -m found } !{ var(txn.etd),strcmp(txn.std) eq 0 }`,
  );
  if (i.mode === 'hop') {
    out.push(
      '  acl mtls var(txn.etd) -m beg m',
      '  acl forward var(txn.e),field(3,|) -m str 1',
      // A connection the SNI frontend routed by another name than the one TLS used never passes as authenticated.
      '  http-request set-var(txn.pp) fc_pp_unique_id if mtls',
      `  http-request return status 421 content-type "application/json; charset=utf-8" file ${json(ERRORS.misdirected.file)} if mtls { var(txn.pp) -m len gt 0 } !{ var(txn.pp),strcmp(txn.s) eq 0 }`,
      `  http-request return status 403 content-type "application/json; charset=utf-8" file ${json(ERRORS.forbidden.file)} if mtls !{ ssl_c_used }`,
      `  http-request return status 403 content-type "application/json; charset=utf-8" file ${json(ERRORS.forbidden.file)} if mtls !{ ssl_c_verify 0 }`,
      '  http-request set-header cf-client-cert-der-base64 %[ssl_c_der,base64] if mtls forward',
      '  http-request set-header cf-client-cert-sha256 %[ssl_c_der,sha2(256),hex,lower] if mtls forward',
    );
  }
  out.push(
    '  use_backend %[var(txn.e),field(2,|)]',
    '',
  );
  const bySlot = new Map(i.profiles.map((p) => [p.slot, p]));
  for (let s = 0; s < i.originSlots; s++) {
    const p = bySlot.get(s);
    out.push(`backend ${originBackend(s)}`, '  http-reuse always', ...(p ? [`  server s ${p.address}${p.args ? ' ' + p.args : ''}`] : []), '');
  }
  return out.join('\n');
}

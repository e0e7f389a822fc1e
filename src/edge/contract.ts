/**
 * The data-plane contract: what an edge node is given and what it reports back.
 *
 * The control plane (or the `certplane edge` feed client) builds an `EdgeSnapshot` of everything an edge serves and
 * later `EdgeDelta`s on top of it; the edge applies them and answers with an `ApplyResult` naming the version now live
 * and each hostname it could not apply (and why). Implementations: the in-process Node one (`src/edge/node/`), and
 * later HAProxy. Both must pass the conformance suite in `test/edge/conformance.ts`.
 *
 * Semantics every implementation follows:
 *  - Hostnames are lowercase FQDNs without a trailing dot (implementations normalise defensively).
 *  - A per-hostname failure (unparseable certificate or key, a key that does not match its certificate, an Access CA
 *    that does not parse, ...) is reported in `failed` and never stops the other hostnames from applying. A hostname
 *    that fails keeps its previous configuration if it had one, and is not served if it is new.
 *  - Changes apply to new connections and new requests without a restart and without dropping established
 *    connections, except that removing or replacing a hostname's Access CAs closes the connections that were
 *    authenticated (presented a client certificate) under the old CA set.
 */

/** A certificate and its private key, both PEM. `certPem` may hold a chain, leaf first. */
export interface PemPair {
  certPem: string;
  keyPem: string;
}

export interface OriginConfig {
  /** Host name or IP address the edge connects to. */
  address: string;
  port: number;
  /** true = HTTPS to the origin, false = plain HTTP. */
  tls: boolean;
  /** SNI (and name checked against the origin's certificate) sent to the origin; default: the visitor hostname. */
  sni?: string;
  /** Verify the origin's certificate against this PEM bundle; absent = do not verify (development). */
  caPem?: string;
}

export interface HostnameConfig {
  /** Lowercase FQDN the edge serves. */
  hostname: string;
  /** Visitor-facing certificate for this hostname (selected by SNI). */
  serverCertificate: PemPair;
  origin: OriginConfig;
  /** Access mTLS CAs (a PEM may hold a chain). Empty = never ask visitors of this hostname for a certificate. */
  accessCAs: { id: string; pem: string }[];
  /** Access setting `client_certificate_forwarding`: forward the verified visitor certificate to the origin. */
  forwardClientCertificate: boolean;
  /** Authenticated Origin Pulls: the effective client certificate presented to the origin; null = none. */
  originClientCertificate: (PemPair & { id: string }) | null;
}

export interface EdgeSnapshot {
  version: number;
  hostnames: HostnameConfig[];
}

export interface EdgeDelta {
  version: number;
  upsert: HostnameConfig[];
  /** Hostnames to stop serving. */
  remove: string[];
}

export interface ApplyResult {
  /** The version now live. */
  version: number;
  failed: { hostname: string; reason: string }[];
}

export interface DataPlane {
  /** Starts listening for visitors (TLS) on host:port (port 0 = any); resolves with the bound port. */
  start(opts: { host: string; port: number }): Promise<{ port: number }>;
  /** Replaces the whole configuration with `snapshot` (diffing internally). Resolves once the new config is live. */
  apply(snapshot: EdgeSnapshot): Promise<ApplyResult>;
  /**
   * Applies a delta on top of the current configuration. `delta.version` must be greater than the current version
   * (otherwise the promise rejects and nothing changes); same result semantics as `apply`.
   */
  applyDelta(delta: EdgeDelta): Promise<ApplyResult>;
  /** Last applied version (0 before any). */
  readonly version: number;
  /** Closes listeners, visitor connections and origin connections. */
  stop(): Promise<void>;
}

export type DataPlaneFactory = () => Promise<DataPlane>;

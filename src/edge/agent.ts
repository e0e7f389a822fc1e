/**
 * The edge agent: keeps a data plane in step with the control plane. It long-polls the feed for what changed after
 * the version it has, opens the sealed keys with the installation's master key, applies the change to the data
 * plane, and acknowledges the version once it is live (naming what failed). After a restart it starts from a full
 * snapshot; a missed change is never lost because every poll asks for everything after the version it last applied.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Sealer } from '../domain/ports.js';
import type { FeedHostname, FeedResponse } from '../domain/edge.js';
import type { ApplyResult, DataPlane, HostnameConfig } from './contract.js';

export interface EdgeAgentOptions {
  /** Control plane origin, e.g. http://127.0.0.1:8080 */
  controlPlane: string;
  /** The edge node's credential (`certplane edge register`). */
  credential: string;
  dataPlane: DataPlane;
  /** Opens the sealed private keys the feed carries (same master key as the control plane). */
  vault: Pick<Sealer, 'open'>;
  /** Long-poll duration, seconds (default 20; below the control plane's edge grace period). */
  waitSeconds?: number;
  onError?: (err: unknown) => void;
  onApplied?: (result: ApplyResult) => void;
}

export interface EdgeAgent {
  /** The version live on the data plane and acknowledged. */
  readonly version: number;
  /** Resolves once a version ≥ `version` is live and acknowledged. */
  synced(version: number): Promise<void>;
  /**
   * Tells the control plane whether the data plane serves (`POST /edge/v1/health`). The latest report is retried until
   * the control plane has it; resolves once it has.
   */
  reportHealth(health: { healthy: boolean; reason?: string }): Promise<void>;
  stop(): Promise<void>;
}

export function startEdgeAgent(opts: EdgeAgentOptions): EdgeAgent {
  const wait = opts.waitSeconds ?? 20;
  let version = 0;
  /** Until the first snapshot is applied the agent asks for everything. */
  let haveSnapshot = false;
  let stopped = false;
  /** Aborts the request in flight when the agent stops (one controller per request: no listener build-up). */
  let inFlight: AbortController | null = null;
  const waiters: { version: number; resolve: () => void }[] = [];

  // The agent's own connections to the control plane (kept alive between polls), all closed when it stops: a control
  // plane shutting down in the same process (`serve --edge`) must not wait for idle connections it cannot see end.
  const base = new URL(opts.controlPlane);
  const client = base.protocol === 'https:' ? https : http;
  const pool = new client.Agent({ keepAlive: true, maxSockets: 4 });

  function request(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<{ status: number; json: any }> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = client.request(
        new URL(`${opts.controlPlane}${path}`),
        {
          method,
          agent: pool,
          signal,
          headers: {
            authorization: `Bearer ${opts.credential}`,
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
            } catch {
              reject(new Error(`control plane ${method} ${path}: ${res.statusCode} (not JSON)`));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  async function call(method: string, path: string, body?: unknown): Promise<any> {
    const controller = new AbortController();
    inFlight = controller;
    const { status, json } = (await request(method, path, body, controller.signal)) as {
      status: number;
      json: { success: boolean; result: unknown; errors: { code: number; message: string }[] };
    };
    if (!json.success) throw new Error(`control plane ${method} ${path}: ${status} ${json.errors.map((e) => `${e.code} ${e.message}`).join('; ')}`);
    return json.result;
  }

  /** Feed entries → data-plane configuration; entries whose keys do not open are reported as failed. */
  function convert(hostnames: FeedHostname[]): { configs: HostnameConfig[]; failed: { hostname: string; reason: string }[] } {
    const configs: HostnameConfig[] = [];
    const failed: { hostname: string; reason: string }[] = [];
    for (const h of hostnames) {
      try {
        configs.push({
          hostname: h.hostname,
          serverCertificate: { certPem: h.server_certificate.cert_pem, keyPem: opts.vault.open(h.server_certificate.record_id, h.server_certificate.key_sealed) },
          origin: { address: h.origin.address, port: h.origin.port, tls: h.origin.tls, sni: h.origin.sni ?? undefined, caPem: h.origin.ca_pem ?? undefined },
          accessCAs: h.access_cas,
          forwardClientCertificate: h.forward_client_certificate,
          originClientCertificate: h.origin_client_certificate
            ? {
                id: h.origin_client_certificate.id,
                certPem: h.origin_client_certificate.cert_pem,
                keyPem: opts.vault.open(h.origin_client_certificate.record_id, h.origin_client_certificate.key_sealed),
              }
            : null,
        });
      } catch (e) {
        failed.push({ hostname: h.hostname, reason: `cannot open its private key: ${(e as Error).message}` });
      }
    }
    return { configs, failed };
  }

  async function once(): Promise<void> {
    const query = haveSnapshot ? `after=${version}&wait=${wait}` : `wait=0`;
    const feed = (await call('GET', `/edge/v1/config?${query}`)) as FeedResponse;
    if (!feed.full && feed.version === version) return; // nothing new
    const { configs, failed } = convert(feed.hostnames);
    const result = feed.full
      ? await opts.dataPlane.apply({ version: feed.version, hostnames: configs })
      : // A hostname whose keys did not open keeps its previous configuration (it is reported as failed).
        await opts.dataPlane.applyDelta({ version: feed.version, upsert: configs, remove: feed.remove });
    const allFailed = [...failed, ...result.failed];
    await call('POST', '/edge/v1/ack', { version: feed.version, failed: allFailed });
    version = feed.version;
    haveSnapshot = true;
    opts.onApplied?.({ version: feed.version, failed: allFailed });
    for (const w of waiters.filter((w) => w.version <= version)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  }

  /** The health report not yet delivered (only the latest one matters). */
  let pendingHealth: { healthy: boolean; reason: string | null } | null = null;
  let healthSender: Promise<void> | null = null;
  function sendHealth(): Promise<void> {
    healthSender ??= (async () => {
      let backoff = 250;
      while (pendingHealth && !stopped) {
        const report = pendingHealth;
        try {
          const { status, json } = await request('POST', '/edge/v1/health', report);
          if (!json.success) throw new Error(`control plane POST /edge/v1/health: ${status} ${(json.errors as { code: number; message: string }[]).map((e) => `${e.code} ${e.message}`).join('; ')}`);
          if (pendingHealth === report) pendingHealth = null;
          backoff = 250;
        } catch (err) {
          opts.onError?.(err);
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 5_000);
        }
      }
      healthSender = null;
    })();
    return healthSender;
  }

  const loop = (async () => {
    let backoff = 250;
    while (!stopped) {
      try {
        await once();
        backoff = 250;
      } catch (err) {
        if (stopped) break;
        opts.onError?.(err);
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5_000);
      }
    }
  })();

  return {
    get version() {
      return version;
    },
    synced(v) {
      if (version >= v) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ version: v, resolve }));
    },
    reportHealth(h) {
      pendingHealth = { healthy: h.healthy, reason: h.healthy ? null : (h.reason ?? 'the data plane is not serving') };
      return sendHealth();
    },
    async stop() {
      stopped = true;
      inFlight?.abort();
      await loop;
      await healthSender?.catch(() => undefined);
      pool.destroy();
    },
  };
}

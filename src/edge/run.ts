/**
 * An edge node as the CLI runs it: a data plane listening for visitors (the in-process Node one, or HAProxy driven by
 * certplane), kept in step with the control plane by the edge agent. Used by `certplane edge` and by
 * `certplane serve --edge`.
 */
import { startEdgeAgent, type EdgeAgent, type EdgeAgentOptions } from './agent.js';
import type { DataPlane } from './contract.js';
import { createHaproxyDataPlane, type HaproxyDataPlane } from './haproxy/index.js';
import { createNodeDataPlane } from './node/index.js';

export type EdgeEngine = 'node' | 'haproxy';
export const EDGE_ENGINES: readonly EdgeEngine[] = ['node', 'haproxy'];

export interface RunningEdge {
  /** The port visitors connect to. */
  port: number;
  engine: EdgeEngine;
  /** For HAProxy: the version and what the session-isolation self-test decided. */
  description: string;
  stop(): Promise<void>;
}

export async function runEdge(
  opts: Omit<EdgeAgentOptions, 'dataPlane'> & {
    host: string;
    port: number;
    engine?: EdgeEngine;
    /** HAProxy: private working directory (default: a new one in memory, /dev/shm). */
    haproxyDir?: string;
    /** HAProxy: threads (default: HAProxy's own, one per CPU). */
    haproxyThreads?: number;
  },
): Promise<RunningEdge> {
  const engine = opts.engine ?? 'node';
  let agent: EdgeAgent | null = null;
  // HAProxy can die and be restarted under the data plane: the control plane hears about it at once.
  let lastHealth: { healthy: boolean; reason?: string } | null = null;
  const onHealth = (h: { healthy: boolean; reason?: string }) => {
    lastHealth = h;
    void agent?.reportHealth(h);
  };
  let dataPlane: DataPlane;
  let description = 'in-process Node edge';
  if (engine === 'haproxy') {
    const hp: HaproxyDataPlane = createHaproxyDataPlane({ dir: opts.haproxyDir, threads: opts.haproxyThreads, onHealth });
    dataPlane = hp;
  } else {
    dataPlane = createNodeDataPlane();
  }
  const { port } = await dataPlane.start({ host: opts.host, port: opts.port });
  if (engine === 'haproxy') {
    const info = (dataPlane as HaproxyDataPlane).haproxy!;
    description = `HAProxy ${info.binary.version}: ${info.isolation.detail}`;
  }
  agent = startEdgeAgent({ ...opts, controlPlane: opts.controlPlane.replace(/\/+$/, ''), dataPlane });
  if (lastHealth) void agent.reportHealth(lastHealth);
  return {
    port,
    engine,
    description,
    async stop() {
      await agent!.stop();
      await dataPlane.stop();
    },
  };
}

/**
 * An edge node as the CLI runs it: the in-process Node data plane listening for visitors, kept in step with the
 * control plane by the edge agent. Used by `certplane edge` and by `certplane serve --edge`.
 */
import { startEdgeAgent, type EdgeAgentOptions } from './agent.js';
import { createNodeDataPlane } from './node/index.js';

export interface RunningEdge {
  /** The port visitors connect to. */
  port: number;
  stop(): Promise<void>;
}

export async function runNodeEdge(
  opts: Omit<EdgeAgentOptions, 'dataPlane'> & { host: string; port: number },
): Promise<RunningEdge> {
  const dataPlane = createNodeDataPlane();
  const { port } = await dataPlane.start({ host: opts.host, port: opts.port });
  const agent = startEdgeAgent({ ...opts, controlPlane: opts.controlPlane.replace(/\/+$/, ''), dataPlane });
  return {
    port,
    async stop() {
      await agent.stop();
      await dataPlane.stop();
    },
  };
}

/**
 * The edge feed (`/edge/v1`, certplane's own protocol, not Cloudflare's): edges authenticate with their own
 * credential, long-poll for the configuration after the version they have, and acknowledge each version once it is
 * live on every worker, naming what failed, and report whether their data plane serves (an edge that does not is not
 * live). Every request counts as a heartbeat.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { EdgeService } from '../../domain/edge.js';
import type { EdgeNode } from '../../domain/model.js';
import type { Store } from '../../domain/ports.js';
import { ok } from '../envelope.js';
import { ApiError, validationError } from '../errors.js';
import { compileBody } from '../validate.js';

const AckBody = Type.Object(
  {
    version: Type.Integer({ minimum: 0 }),
    failed: Type.Array(Type.Object({ hostname: Type.String({ maxLength: 255 }), reason: Type.String({ maxLength: 2000 }) }, { additionalProperties: false }), {
      maxItems: 100_000,
    }),
  },
  { additionalProperties: false },
);

const HealthBody = Type.Object(
  { healthy: Type.Boolean(), reason: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])) },
  { additionalProperties: false },
);

/** Without a wake-up, a waiting edge's request re-checks this often. */
const RECHECK_MS = 1_000;
const MAX_WAIT_S = 30;

export function registerEdgeRoutes(app: FastifyInstance, edge: EdgeService, store: Store): void {
  const validateAck = compileBody<Static<typeof AckBody>>(AckBody, 'generic');
  const validateHealth = compileBody<Static<typeof HealthBody>>(HealthBody, 'generic');
  let closing = false;
  // preClose, not onClose: the server waits for in-flight requests before onClose runs, so waiting long polls must
  // learn about the shutdown first (they answer within RECHECK_MS) or every close would wait for their whole wait.
  app.addHook('preClose', async () => {
    closing = true;
  });

  async function node(req: FastifyRequest): Promise<EdgeNode> {
    const m = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
    const n = m ? await edge.authenticateNode(m[1]) : null;
    if (!n) throw new ApiError('edge.unauthorized');
    return n;
  }

  const intParam = (v: unknown, name: string, max: number): number => {
    if (v === undefined || v === '') return 0;
    if (typeof v !== 'string' || !/^\d{1,15}$/.test(v) || Number(v) > max) {
      throw validationError('generic', `${name} must be a whole number from 0 to ${max}`);
    }
    return Number(v);
  };

  app.get('/edge/v1/config', async (req, reply) => {
    const n = await node(req);
    const q = req.query as Record<string, unknown>;
    // No `after`: the edge has nothing yet and gets a full snapshot.
    const after = q.after === undefined ? null : intParam(q.after, 'after', Number.MAX_SAFE_INTEGER);
    const waitS = intParam(q.wait, 'wait', MAX_WAIT_S);
    await edge.seen(n.id);
    const deadline = Date.now() + waitS * 1000;
    let feed = await edge.feed(after);
    // Long poll: an edge that is up to date waits here until something changes (or the wait ends).
    while (!feed.full && feed.version === after && Date.now() < deadline && !closing && !req.raw.destroyed) {
      // Woken by a committed change (this node's, or any node's through PostgreSQL NOTIFY), or re-check after a
      // while in case a wake-up was missed.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(RECHECK_MS, Math.max(0, deadline - Date.now())));
        const unsubscribe = store.onConfigChange(done);
        function done() {
          clearTimeout(timer);
          unsubscribe();
          resolve();
        }
      });
      feed = await edge.feed(after);
    }
    // Shutting down: this connection must not stay open idle after the answer (the server is no longer closing
    // idle connections by then).
    if (closing) reply.header('connection', 'close');
    return reply.header('cache-control', 'no-store').send(ok(feed));
  });

  app.post('/edge/v1/ack', async (req, reply) => {
    const n = await node(req);
    const body = validateAck(req.body);
    const updated = await edge.acknowledge(n.id, body.version, body.failed);
    return reply.send(ok({ id: updated.id, acked_version: updated.ackedVersion }));
  });

  // The edge's data plane stopped or started serving (e.g. HAProxy died and is being restarted).
  app.post('/edge/v1/health', async (req, reply) => {
    const n = await node(req);
    const body = validateHealth(req.body);
    const updated = await edge.reportHealth(n.id, body.healthy, body.reason ?? null);
    return reply.send(ok({ id: updated.id, healthy: updated.healthy, reason: updated.healthReason }));
  });
}

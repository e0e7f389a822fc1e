// The ceilings for the API benchmark: `node bench/lib/api-ceiling.mjs <port> [node|fastify]` reads each request (body
// included) and answers with bytes held in memory: the same status, headers and JSON envelope certplane answered for
// the scenario being measured (set over IPC before each run).
// - node (the ceiling): a bare node:http server, what Node's HTTP stack costs before any routing, auth, storage or JSON.
// - fastify (the framework floor): Fastify 5 as certplane configures it (one catch-all route, an async onRequest
//   hook, a string body parser for every content type, an onSend hook), still answering from memory: what the
//   framework adds before certplane does anything.
// Reports { type: 'ready' } over IPC.
import * as http from 'node:http';

const [portArg, mode = 'node'] = process.argv.slice(2);
let answer = { status: 200, body: Buffer.from('{"success":true,"errors":[],"messages":[],"result":null}') };
process.on('message', (m) => {
  if (m.type === 'answer') {
    answer = { status: m.status, body: Buffer.from(m.body) };
    process.send({ type: 'answer-set' });
  }
});
const ready = () => process.send({ type: 'ready' });

if (mode === 'fastify') {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false, routerOptions: { maxParamLength: 1024, ignoreTrailingSlash: true } });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, text, done) => done(null, text));
  app.addHook('onSend', (_req, reply, payload, done) => {
    reply.header('cache-control', 'no-store');
    done(null, payload);
  });
  app.route({
    method: ['GET', 'PUT', 'POST'],
    url: '/*',
    onRequest: async () => undefined,
    handler: async (_req, reply) =>
      reply.code(answer.status).header('content-type', 'application/json; charset=utf-8').send(answer.body),
  });
  await app.listen({ host: '127.0.0.1', port: Number(portArg) });
  ready();
} else {
  const send = (res) => {
    res.writeHead(answer.status, {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'content-length': answer.body.length,
    });
    res.end(answer.body);
  };
  const server = http.createServer((req, res) => {
    // A request without a body is answered at once: waiting for the 'end' of an empty body costs a GET 10-20 % of
    // this server's CPU (measured 2026-12-03), and certplane's answer-from-memory step does not wait for it either.
    if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) return send(res);
    req.on('data', () => undefined);
    req.on('end', () => send(res));
  });
  server.keepAliveTimeout = 72_000;
  server.listen(Number(portArg), '127.0.0.1', ready);
}

// The ceiling for the API benchmark: a bare node:http server that reads each request (body included) and answers
// with bytes held in memory: the same status, headers and JSON envelope certplane answered for the scenario being
// measured (set over IPC before each run). What Node's HTTP stack costs before any routing, auth, storage or JSON.
// `node bench/lib/api-ceiling.mjs <port>`; reports { type: 'ready' } over IPC.
import * as http from 'node:http';

let answer = { status: 200, body: Buffer.from('{"success":true,"errors":[],"messages":[],"result":null}') };

const server = http.createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(answer.status, {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'content-length': answer.body.length,
    });
    res.end(answer.body);
  });
});
server.keepAliveTimeout = 72_000;
process.on('message', (m) => {
  if (m.type === 'answer') {
    answer = { status: m.status, body: Buffer.from(m.body) };
    process.send({ type: 'answer-set' });
  }
});
server.listen(Number(process.argv[2]), '127.0.0.1', () => process.send({ type: 'ready' }));

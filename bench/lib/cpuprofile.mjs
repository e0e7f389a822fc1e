#!/usr/bin/env node
// Summarises a V8 CPU profile (node --cpu-prof; `node bench/api.mjs --cpu-prof` writes one per certplane server):
// self time per function and per area (certplane's own code, Fastify, better-sqlite3/pg, JSON, GC, idle).
//   node bench/lib/cpuprofile.mjs <file.cpuprofile> [top=25]
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map();
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
}

function area(cf) {
  const u = cf.url ?? '';
  if (cf.functionName === '(idle)') return 'idle';
  if (cf.functionName === '(garbage collector)') return 'GC';
  if (cf.functionName === '(program)') return 'program (native, not JS)';
  if (u.includes('better-sqlite3') || /^(get|all|run|iterate)$/.test(cf.functionName) && u === '') return 'better-sqlite3 (native calls)';
  if (u.includes('node_modules/pg')) return 'pg driver';
  if (u.includes('node_modules/fastify') || u.includes('node_modules/find-my-way') || u.includes('node_modules/avvio') || u.includes('node_modules/light-my-request')) return 'Fastify';
  if (u.includes('node_modules/pino') || u.includes('node_modules/fast-json-stringify')) return 'Fastify (logging / serialisation)';
  if (u.includes('/src/')) return `certplane ${u.replace(/.*\/src\//, 'src/')}`;
  if (u.startsWith('node:')) return u;
  if (cf.functionName === 'stringify' || cf.functionName === 'parse') return 'JSON';
  return u ? u.replace(/.*node_modules\//, '') : `(native) ${cf.functionName || '(anonymous)'}`;
}

const total = [...self.values()].reduce((a, b) => a + b, 0);
let idle = 0;
const fns = new Map();
const areas = new Map();
for (const [id, t] of self) {
  const cf = byId.get(id).callFrame;
  if (cf.functionName === '(idle)') idle += t;
  const key = `${cf.functionName || '(anonymous)'} ${(cf.url ?? '').replace(/.*\/(node_modules|src)\//, '$1/')}:${cf.lineNumber + 1}`;
  fns.set(key, (fns.get(key) ?? 0) + t);
  const a = area(cf);
  areas.set(a, (areas.get(a) ?? 0) + t);
}
const busy = total - idle;
const pct = (t) => `${((t / busy) * 100).toFixed(1).padStart(5)} %`;
const top = Number(topArg ?? 25);
console.log(`${file}\ntotal ${(total / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s (percentages are of busy time)\n\nby area:`);
for (const [a, t] of [...areas].filter(([a]) => a !== 'idle').sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`${pct(t)}  ${a}`);
console.log('\nby function (self time):');
for (const [k, t] of [...fns].filter(([k]) => !k.startsWith('(idle)')).sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`${pct(t)}  ${k}`);

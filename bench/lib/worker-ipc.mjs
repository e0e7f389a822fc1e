// What every benchmark worker process shares (bench/lib/edge-worker.mjs, bench/lib/haproxy-worker.mjs): the IPC
// protocol with bench/edge.mjs — { type: 'loaded' }, then the first message configures the chosen mode, which answers
// { type: 'ready', ... } (or { type: 'fatal' }) — and the edge agent wired to a data plane with its reports.
import { performance } from 'node:perf_hooks';

export const wallNow = () => performance.timeOrigin + performance.now();
export const send = (msg) => process.send?.(msg);

/** Runs `modes[mode]` with the first message received; says 'loaded' so the parent sends it. */
export function serveWorker(mode, modes) {
  process.once('message', (msg) => {
    const run = Object.hasOwn(modes, mode) ? modes[mode] : null;
    if (!run) {
      send({ type: 'fatal', message: `unknown mode ${mode}` });
      process.exit(2);
    }
    run(msg).catch((e) => {
      send({ type: 'fatal', message: e?.stack ?? String(e) });
      process.exit(1);
    });
  });
  send({ type: 'loaded' });
}

/**
 * Starts the edge agent on `dataPlane` (already started) over the real feed; reports every error ({ type: 'error' })
 * and every acknowledgement once the control plane has answered it ({ type: 'acked', t, version, failed }).
 * `mods` = { agent: src/edge/agent.js, vault: src/crypto/vault.js }; msg = { controlPlane, credential, masterKey }.
 */
export function startAgent(mods, msg, dataPlane) {
  const vault = mods.vault.createKeyVault(mods.vault.parseMasterKey(msg.masterKey));
  return mods.agent.startEdgeAgent({
    controlPlane: msg.controlPlane,
    credential: msg.credential,
    dataPlane,
    vault,
    onError: (err) => send({ type: 'error', message: String(err?.message ?? err) }),
    onApplied: (r) => send({ type: 'acked', t: wallNow(), version: r.version, failed: r.failed }),
  });
}

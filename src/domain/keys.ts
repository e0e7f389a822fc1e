/**
 * Master-key rotation: re-seals every stored private key (AOP certificates, the edge's visitor-facing keys) with the
 * current master key. Safe to run while the API
 * serves (each batch is its own short transaction; a key being re-sealed is never unreadable, because the vault
 * still knows the previous keys) and safe to run again (rows already sealed with the current key are skipped).
 */
import { serverKeyRecordId } from './edge.js';
import type { Sealer, Store } from './ports.js';

export const VAULT_CHECK_META = 'vault.verification';

export interface RotationReport {
  examined: number;
  resealed: number;
}

/**
 * `verificationToken` is a fresh token sealed with the current key: stored last, so that from then on only the
 * current key (or a later one) opens this database.
 */
export async function rotateSealedKeys(
  store: Store,
  vault: Sealer,
  verificationToken: string,
  batch = 100,
): Promise<RotationReport> {
  const report: RotationReport = { examined: 0, resealed: 0 };
  let after = '';
  for (;;) {
    const page = await store.read((r) => r.aop.listCertificatesAfter(after, batch));
    if (page.length === 0) break;
    after = page[page.length - 1].id;
    report.examined += page.length;
    const stale = page.filter((c) => vault.keyIdOf(c.privateKeySealed) !== vault.keyId).map((c) => c.id);
    if (stale.length === 0) continue;
    report.resealed += await store.write(async (r) => {
      let n = 0;
      for (const id of stale) {
        // Re-read inside the transaction: the row may have changed (or been purged) since the page was read.
        const before = await r.aop.findCertificateById(id);
        if (!before) continue;
        // The zone's lock keeps API requests and the deployer from writing the row between this read and the update.
        await r.locks.zone(before.zoneId);
        const cert = await r.aop.findCertificateById(id);
        if (!cert || vault.keyIdOf(cert.privateKeySealed) === vault.keyId) continue;
        const plaintext = vault.open(cert.id, cert.privateKeySealed);
        await r.aop.updateCertificate({ ...cert, privateKeySealed: vault.seal(cert.id, plaintext) });
        n++;
      }
      return n;
    });
  }
  // The edge's visitor-facing keys are sealed the same way.
  const hostnames = await store.read((r) => r.edge.listHostnames());
  report.examined += hostnames.length;
  for (const h of hostnames.filter((h) => vault.keyIdOf(h.serverKeySealed) !== vault.keyId)) {
    report.resealed += await store.write(async (r) => {
      await r.locks.zone(h.zoneId);
      const current = await r.edge.getHostname(h.hostname);
      if (!current || vault.keyIdOf(current.serverKeySealed) === vault.keyId) return 0;
      const recordId = serverKeyRecordId(current.hostname);
      await r.edge.upsertHostname({ ...current, serverKeySealed: vault.seal(recordId, vault.open(recordId, current.serverKeySealed)) });
      return 1;
    });
  }
  await store.write((r) => r.tenancy.setMeta(VAULT_CHECK_META, verificationToken));
  return report;
}

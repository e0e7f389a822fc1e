// Seeds a certplane database for the API benchmark through the storage layer and the domain services, never over
// HTTP: `node bench/lib/api-seed.mjs <job.json>`, with the server's CERTPLANE_* environment (database, master key,
// bootstrap token). Writes a manifest (ids the load scripts need) to job.manifest and exits.
//
// Shape, for `size` associations (a multiple of 1000): size/1000 zones (bench-z0.com … ), each with 10 hostname
// certificates (Cloudflare's limit) and 1,000 active associations h0…h999.bench-zN.com, 100 per certificate (also
// Cloudflare's limit), so every zone is as full as Cloudflare allows; plus `uploadZones` empty zones that the upload
// scenario spreads its certificates over. bench-z0.com is the bootstrap zone, the one the scenarios use.
import { readFileSync, writeFileSync } from 'node:fs';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const dist = job.distUrl;
const { createCertplane } = await import(new URL('src/main.js', dist).href);
const { loadConfig } = await import(new URL('src/config.js', dist).href);
const { bumpVersion } = await import(new URL('src/domain/shared.js', dist).href);

const PER_ZONE = 1000;
const CERTS_PER_ZONE = 10;
const t0 = Date.now();
const cp = await createCertplane(loadConfig(process.env));
if (!cp.bootstrap) throw new Error('api-seed: the database was not empty');
const { store, services } = cp;
const { tenancy, aop } = services;
const accountId = cp.bootstrap.accountId;
const certs = JSON.parse(readFileSync(job.certsFile, 'utf8')).slice(0, CERTS_PER_ZONE);

const zoneCount = job.size / PER_ZONE;
const zones = [await tenancy.getZone(cp.bootstrap.zoneId)];
for (let i = 1; i < zoneCount; i++) zones.push(await tenancy.createZone({ name: `bench-z${i}.com`, accountId }));
const uploadZones = [];
for (let i = 0; i < job.uploadZones; i++) uploadZones.push(await tenancy.createZone({ name: `bench-up${i}.com`, accountId }));

/** Seeds one zone: its certificates through the AOP service (parse, key check, sealing), made active, then its associations. */
async function seedZone(zone) {
  const ids = [];
  for (const c of certs) ids.push((await aop.uploadCertificate(zone, 'hostname', { certificate: c.certPem, private_key: c.keyPem })).id);
  await store.write(async (r) => {
    const version = await bumpVersion(r, 'zone', zone.id);
    const now = new Date();
    for (const id of ids) {
      const cert = await r.aop.getCertificate(zone.id, 'hostname', id);
      await r.aop.updateCertificate({ ...cert, status: 'active', statusChangedAt: now, version });
    }
    // The bulk statement a PUT uses: one round trip for the zone's associations on PostgreSQL.
    await r.aop.upsertAssociations(
      Array.from({ length: PER_ZONE }, (_, j) => ({
        zoneId: zone.id,
        hostname: `h${j}.${zone.name}`,
        certId: ids[Math.floor(j / (PER_ZONE / CERTS_PER_ZONE))],
        enabled: true,
        status: 'active',
        statusChangedAt: now,
        version,
        createdAt: now,
        updatedAt: now,
      })),
    );
  });
  return ids;
}

// PostgreSQL: a few zones at once (one transaction per zone, each on its own pooled connection); SQLite has one writer.
const parallel = store.dialect === 'postgres' ? 4 : 1;
let next = 0;
let hotCertIds = null;
let lastReport = Date.now();
await Promise.all(
  Array.from({ length: parallel }, async () => {
    while (next < zones.length) {
      const i = next++;
      const ids = await seedZone(zones[i]);
      if (i === 0) hotCertIds = ids;
      if (Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        process.stderr.write(`api-seed: ${i + 1}/${zones.length} zones (${Math.round((Date.now() - t0) / 1000)} s)\n`);
      }
    }
  }),
);
await cp.close();

writeFileSync(
  job.manifest,
  JSON.stringify(
    {
      size: job.size,
      zones: zones.length,
      perZone: PER_ZONE,
      accountId,
      hotZone: { id: zones[0].id, name: zones[0].name },
      hotCertIds,
      uploadZoneIds: uploadZones.map((z) => z.id),
      seededInS: (Date.now() - t0) / 1000,
    },
    null,
    2,
  ),
);

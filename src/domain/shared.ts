/** Small helpers shared by the domain services. */
import { DomainError } from './errors.js';
import { normalizeHostname, parentDomains } from './hostnames.js';
import type { Zone } from './model.js';
import type { ConfigChange } from './model.js';
import type { Repos } from './ports.js';

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const HEX32_RE = /^[0-9a-f]{32}$/;

export const isUuid = (s: string): boolean => UUID_RE.test(s);

/** Normalises a hostname or throws `hostname_invalid` pointing at the field. */
export function requireHostname(input: unknown, pointer?: string): string {
  const r = normalizeHostname(input);
  if (!r.ok) throw new DomainError('hostname_invalid', r.message, pointer);
  return r.hostname;
}

/**
 * The zone that owns a hostname: the longest zone apex that the hostname is equal to or under. `byName` remembers
 * names already looked up in the same transaction: the hostnames of one request share their parents (a PUT of 100
 * hostnames under one zone looks that zone's name up once, not 100 times).
 */
export async function owningZone(r: Repos, hostname: string, byName?: Map<string, Zone | null>): Promise<Zone | null> {
  for (const candidate of parentDomains(hostname)) {
    let zone = byName?.get(candidate);
    if (zone === undefined) {
      zone = await r.tenancy.getZoneByName(candidate);
      byName?.set(candidate, zone);
    }
    if (zone) return zone;
  }
  return null;
}

/**
 * Allocates the next configuration version for a change of `scope` and records it in the change log, which is
 * what edges read their deltas from. Every write the data plane must learn about goes through here.
 */
export async function bumpVersion(r: Repos, scopeType: ConfigChange['scopeType'], scopeId: string): Promise<number> {
  const version = await r.nextVersion();
  await r.edge.recordChange({ version, scopeType, scopeId });
  return version;
}

/** Query strings are parsed explicitly (never coerced by a schema library), with clear errors. */
import type { LifecycleStatus, PageRequest } from '../domain/model.js';
import { LIFECYCLE_STATUSES } from '../domain/model.js';
import { validationError, type ErrorFamily } from './errors.js';

type Query = Record<string, string | string[] | undefined>;

function single(query: Query, name: string, family: ErrorFamily): string | undefined {
  const v = query[name];
  if (Array.isArray(v)) throw validationError(family, `query parameter ${name} must be given once`);
  return v;
}

function integer(query: Query, name: string, family: ErrorFamily, def: number, min: number, max: number): number {
  const raw = single(query, name, family);
  if (raw === undefined || raw === '') return def;
  if (!/^\d{1,9}$/.test(raw)) throw validationError(family, `${name} must be a whole number`);
  const n = Number(raw);
  if (n < min || n > max) throw validationError(family, `${name} must be between ${min} and ${max}`);
  return n;
}

export function pageRequest(
  query: Query,
  family: ErrorFamily,
  defaults: { perPage: number; maxPerPage: number },
): PageRequest {
  return {
    page: integer(query, 'page', family, 1, 1, 1_000_000),
    perPage: integer(query, 'per_page', family, defaults.perPage, 1, defaults.maxPerPage),
  };
}

/** `status` filter of the association list: comma-separated statuses or "all"; defaults to "active". */
export function statusFilter(query: Query, family: ErrorFamily): LifecycleStatus[] | undefined {
  const raw = single(query, 'status', family);
  if (raw === undefined || raw === '') return ['active'];
  const parts = raw.split(',').map((s) => s.trim().toLowerCase());
  if (parts.includes('all')) return undefined;
  for (const p of parts) {
    if (!(LIFECYCLE_STATUSES as readonly string[]).includes(p) || p === 'initializing') {
      throw validationError(
        family,
        `status must be "all" or a comma-separated list of: active, pending_deployment, pending_deletion, deleted, deployment_timed_out, deletion_timed_out`,
      );
    }
  }
  return [...new Set(parts)] as LifecycleStatus[];
}

export function stringParam(query: Query, name: string, family: ErrorFamily): string | undefined {
  return single(query, name, family);
}

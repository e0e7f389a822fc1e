/**
 * The one place that builds Cloudflare's v4 response envelope. Handlers return domain values; the server turns them
 * into `ok(...)`, and every error (domain, auth, routing, parsing) into `fail(...)` through the catalogue.
 */
export interface ResultInfo {
  page: number;
  per_page: number;
  count: number;
  total_count: number;
  total_pages: number;
}

export interface WireMessage {
  code: number;
  message: string;
  type?: string | null;
  documentation_url?: string;
  source?: { pointer: string };
  error_chain?: WireMessage[];
}

export interface Envelope<T = unknown> {
  success: boolean;
  errors: WireMessage[];
  messages: WireMessage[];
  result: T | null;
  result_info?: ResultInfo;
}

export function ok<T>(result: T, resultInfo?: ResultInfo, messages: WireMessage[] = []): Envelope<T> {
  const body: Envelope<T> = { success: true, errors: [], messages, result };
  if (resultInfo) body.result_info = resultInfo;
  return body;
}

export function fail(errors: WireMessage[]): Envelope<null> {
  return { success: false, errors, messages: [], result: null };
}

export function resultInfo(page: number, perPage: number, count: number, totalCount: number): ResultInfo {
  return {
    page,
    per_page: perPage,
    count,
    total_count: totalCount,
    total_pages: Math.ceil(totalCount / perPage),
  };
}

/** result_info of a list that is never paginated (everything on page 1). */
export const singlePage = (count: number): ResultInfo => resultInfo(1, Math.max(count, 1), count, count);

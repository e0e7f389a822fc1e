/**
 * Checks responses against the response schema of their operation in Cloudflare's OpenAPI document
 * (reference/cloudflare-mtls-openapi.json, a copy of ../shared/reference's). Every response the test client receives goes through
 * `checkResponse`. Deliberate, documented deviations are listed in DEVIATIONS, each with its reason; any other
 * schema error fails the test that produced the response.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** The repository's copy of the reference material (see reference/README.md). */
export const REFERENCE_DIR = join(packageRoot(), 'reference');

export const OPENAPI_PATH = join(REFERENCE_DIR, 'cloudflare-mtls-openapi.json');
const doc = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8'));
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
ajv.addSchema(doc, 'openapi');

export interface Operation {
  method: string;
  template: string;
  regex: RegExp;
  statics: number;
}

const API = '/client/v4';

export const OPERATIONS: Operation[] = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
  ([template, ops]) =>
    Object.keys(ops)
      .filter((m) => ['get', 'put', 'post', 'delete', 'patch'].includes(m))
      .map((m) => {
        const segs = template.split('/').filter(Boolean);
        const regex = new RegExp(
          '^/' +
            segs
              .map((s) =>
                s === '{accounts_or_zones}' ? '(?:accounts|zones)' : s.startsWith('{') ? '[^/]+' : s.replace(/[.]/g, '\\.'),
              )
              .join('/') +
            '/?$',
        );
        return { method: m.toUpperCase(), template, regex, statics: segs.filter((s) => !s.startsWith('{')).length };
      }),
);

export function findOperation(method: string, path: string): Operation | undefined {
  const p = path.split('?')[0].replace(API, '');
  return OPERATIONS.filter((o) => o.method === method && o.regex.test(p)).sort((a, b) => b.statics - a.statics)[0];
}

/**
 * Deliberate deviations from the published schema. Each is also listed in docs/compatibility.md.
 * `path` is matched against the Ajv error's instancePath, `keyword` against its keyword.
 */
export const DEVIATIONS: { operation: RegExp; status: RegExp; path: RegExp; keyword: string; why: string }[] = [
  {
    operation: /./,
    status: /^4/,
    path: /^\/result$/,
    keyword: 'type',
    why: 'Failure schemas declare `result` as an object/array with `enum: [null]`; the envelope convention (and the live API) is `result: null`, which only the enum admits.',
  },
  {
    operation: /./,
    status: /^2/,
    path: /^\/result(\/\d+)?\/(id|cert_id)$/,
    keyword: 'maxLength',
    why: 'Certificate ids are UUIDs (36 characters), as the live API returns; the schema reuses the 32-character Identifier.',
  },
  {
    operation: /origin_tls_client_auth\/hostnames\/certificates/,
    status: /^2/,
    path: /^\/result$/,
    keyword: 'enum',
    why: 'The schema of a hostname certificate result carries `enum: [null]` (a generator artefact); the live API returns the object.',
  },
  {
    operation: /^GET \/zones\/\{zone_id\}\/origin_tls_client_auth$/,
    status: /^200$/,
    path: /^\/result$/,
    keyword: 'type',
    why: 'Observed: Cloudflare answers `result: null`, not `[]`, for a zone without zone-level certificates.',
  },
  {
    operation: /./,
    status: /^429$/,
    path: /^\/errors\/0\/code$/,
    keyword: 'minimum',
    why: 'Observed: the rate-limit answer is code 971 ("Please wait and consider throttling your request speed"), below the schema\'s minimum of 1000.',
  },
];

const validators = new Map<string, ValidateFunction>();

function validatorFor(op: Operation, status: string): ValidateFunction | undefined {
  const key = `${op.method} ${op.template} ${status}`;
  let v = validators.get(key);
  if (!v) {
    const responses = doc.paths[op.template][op.method.toLowerCase()].responses;
    if (!responses[status]) return undefined;
    const pointer = ['paths', op.template, op.method.toLowerCase(), 'responses', status, 'content', 'application/json', 'schema']
      .map((s) => encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1')))
      .join('/');
    v = ajv.compile({ $ref: `openapi#/${pointer}` });
    validators.set(key, v);
  }
  return v;
}

/** The envelope every failure must have, whatever the route (routes outside the schema included). */
const failureEnvelope = ajv.compile({
  type: 'object',
  required: ['success', 'errors', 'messages', 'result'],
  properties: {
    success: { const: false },
    result: { type: 'null' },
    messages: { type: 'array' },
    errors: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['code', 'message'],
        // 971 is the rate-limit code Cloudflare answers (observed), although its schema says at least 1000.
        properties: { code: { type: 'integer', anyOf: [{ minimum: 1000 }, { const: 971 }] }, message: { type: 'string', minLength: 1 } },
      },
    },
  },
});

export const seen = new Set<string>();

export function checkResponse(method: string, path: string, status: number, body: unknown): void {
  if (status >= 400) assert.ok(failureEnvelope(body), `${method} ${path}: failure envelope: ${ajv.errorsText(failureEnvelope.errors)}`);
  // The schema describes 2xx and 4XX only; a 5xx (database unavailable) is checked as a failure envelope above.
  if (status >= 500) return;
  const op = findOperation(method, path);
  if (!op) return; // supporting routes (/zones, /user/tokens/verify) are not in the mTLS schema
  const statusKey = status >= 400 && status < 500 ? '4XX' : String(status);
  const validate = validatorFor(op, statusKey);
  assert.ok(validate, `${method} ${op.template}: the schema defines no ${statusKey} response (got ${status})`);
  seen.add(`${op.method} ${op.template} ${statusKey}`);
  if (validate(body)) return;
  const opName = `${op.method} ${op.template}`;
  const remaining = (validate.errors ?? []).filter(
    (e: ErrorObject) =>
      !DEVIATIONS.some(
        (d) => d.operation.test(opName) && d.status.test(String(status)) && d.path.test(e.instancePath) && d.keyword === e.keyword,
      ) && !(e.keyword === 'if' || e.keyword === 'anyOf' || e.keyword === 'oneOf'),
  );
  assert.deepEqual(
    remaining.map((e) => `${e.instancePath} ${e.message}`),
    [],
    `${opName} ${status} does not match Cloudflare's schema: ${JSON.stringify(body).slice(0, 500)}`,
  );
}

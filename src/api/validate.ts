/**
 * Request-body validation: TypeBox schemas compiled once with Ajv (no type coercion, no stripping of unknown
 * fields). A failure becomes the product's own validation error with a JSON pointer to the offending field.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { TSchema } from '@sinclair/typebox';
import { validationError, type ErrorFamily } from './errors.js';

const ajv = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: false });

function describe(e: ErrorObject): { detail: string; pointer: string } {
  const pointer = e.instancePath || '';
  const field = pointer ? pointer.slice(1).replace(/\//g, '.') : 'body';
  switch (e.keyword) {
    case 'required':
      return {
        detail: `missing required field "${(e.params as { missingProperty: string }).missingProperty}"`,
        pointer: `${pointer}/${(e.params as { missingProperty: string }).missingProperty}`,
      };
    case 'additionalProperties':
      return {
        detail: `unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`,
        pointer: `${pointer}/${(e.params as { additionalProperty: string }).additionalProperty}`,
      };
    case 'type':
      return { detail: `${field} must be ${withArticle((e.params as { type: string }).type)}`, pointer: pointer || '/' };
    default:
      return { detail: `${field} ${e.message ?? 'is invalid'}`, pointer: pointer || '/' };
  }
}

const withArticle = (t: string) => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);

export type Validator<T> = (body: unknown) => T;

export function compileBody<T>(schema: TSchema, family: ErrorFamily): Validator<T> {
  const check: ValidateFunction = ajv.compile(schema);
  return (body: unknown): T => {
    if (!check(body)) {
      const { detail, pointer } = describe(check.errors![0]);
      throw validationError(family, detail, pointer);
    }
    return body as T;
  };
}

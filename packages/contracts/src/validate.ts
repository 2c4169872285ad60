import type { TSchema, Static } from 'typebox';
import Value from 'typebox/value';
import { GraftError } from './errors.ts';

/**
 * Checks `value` against a contract schema outside HTTP (worker payloads, multipart JSON fields,
 * files): applies defaults, then throws `invalid_request` naming the first field at fault.
 */
export function parseWith<T extends TSchema>(schema: T, value: unknown, what = 'value'): Static<T> {
  const withDefaults = Value.Default(schema, Value.Clone(value));
  if (Value.Check(schema, withDefaults)) return withDefaults as Static<T>;
  const errors = [...Value.Errors(schema, withDefaults)];
  // `additionalProperties: false` also yields a bare "schema is false" error at the field: skip it.
  const first = errors.find((e) => e.keyword !== 'boolean') ?? errors[0];
  const params = (first?.params ?? {}) as { additionalProperties?: string[]; requiredProperties?: string[] };
  const child = params.additionalProperties?.[0] ?? params.requiredProperties?.[0];
  const path = [first?.instancePath.replace(/^\//, '').replaceAll('/', '.'), child].filter(Boolean).join('.');
  const message =
    first?.keyword === 'additionalProperties' ? 'is not a known field' : first?.keyword === 'required' ? 'is required' : (first?.message ?? 'is invalid');
  throw new GraftError('invalid_request', `${what}${path ? `.${path}` : ''} ${message}`, path || undefined);
}

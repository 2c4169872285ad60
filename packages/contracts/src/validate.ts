import type { TSchema, Static } from 'typebox';
import Value from 'typebox/value';
import { GraftError } from './errors.ts';

/**
 * Checks `value` against a contract schema outside HTTP (worker payloads, env, files): applies
 * defaults, then throws `invalid_request` naming the first field at fault.
 */
export function parseWith<T extends TSchema>(schema: T, value: unknown, what = 'value'): Static<T> {
  const withDefaults = Value.Default(schema, Value.Clone(value));
  if (Value.Check(schema, withDefaults)) return withDefaults as Static<T>;
  const first = [...Value.Errors(schema, withDefaults)].find((e) => e.keyword !== 'boolean') ?? [...Value.Errors(schema, withDefaults)][0];
  const param = first?.instancePath.replace(/^\//, '').replaceAll('/', '.') || undefined;
  throw new GraftError('invalid_request', `${what}${param ? `.${param}` : ''}: ${first?.message ?? 'is invalid'}`, param);
}

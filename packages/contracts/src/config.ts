import { Type, type Static, type TObject } from 'typebox';
import Value from 'typebox/value';
import { Literals } from './common.ts';

/** Settings both processes read from the environment (each app adds its own). */
export const CommonEnv = {
  DATABASE_URL: Type.String({ default: 'postgresql://postgres@127.0.0.1:5432/graft', description: 'PostgreSQL connection URL.' }),
  REDIS_URL: Type.String({ default: 'redis://127.0.0.1:6379', description: 'Redis connection URL (BullMQ).' }),
  QUEUE_PREFIX: Type.String({ default: 'graft', pattern: '^[A-Za-z0-9:_-]+$', description: 'Prefix of every Redis key graft writes.' }),
  STORAGE_DIR: Type.String({ default: '.data/storage', description: 'Directory for dataset archives and model artifacts.' }),
  LOG_LEVEL: Literals(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
};

/**
 * Reads and validates an app's environment: unknown variables are ignored, defaults applied,
 * strings converted to the declared types; a bad value stops the process with a message naming it.
 */
export function loadEnv<T extends TObject>(schema: T, env: NodeJS.ProcessEnv = process.env): Static<T> {
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) if (env[key] !== undefined && env[key] !== '') picked[key] = env[key];
  const value = Value.Convert(schema, Value.Default(schema, picked));
  if (!Value.Check(schema, value)) {
    const problems = [...Value.Errors(schema, value)].map((e) => `${e.instancePath.slice(1) || '(env)'}: ${e.message}`);
    throw new Error(`invalid configuration: ${problems.join('; ')}`);
  }
  return value as Static<T>;
}

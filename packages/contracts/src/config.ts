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
  ...StorageEnv(),
  OUTBOUND_ALLOWLIST: Type.String({
    default: '',
    description: 'Addresses graft may fetch from beyond public ones (local mirrors): IPs or CIDR ranges, optionally :port, comma-separated (e.g. 10.0.0.5:8080,[fd00::/8]).',
  }),
  PG_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 5_000, description: 'Opening a Postgres connection gives up after this long (a request then answers 503).' }),
  PG_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 15_000, description: 'One SQL statement gives up after this long, on the server and, for a server that stopped answering, in the client.' }),
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 5_000, description: 'A Redis command of a request path gives up after this long (no offline queue: a request fails fast while Redis is away).' }),
  RECONCILE_INTERVAL_MS: Type.Integer({ minimum: 100, default: 30_000, description: 'How often the reconciler compares Postgres with the queue (one run at a time across every API and worker process).' }),
  JOB_HEARTBEAT_TTL_MS: Type.Integer({ minimum: 1_000, default: 20_000, description: 'A running job whose worker has not refreshed its heartbeat for this long (seen twice by the reconciler) is taken as lost and re-queued.' }),
  MIGRATE_ON_START: Type.Boolean({ default: true, description: 'Apply pending migrations when the process starts (off where a one-shot migrate step runs them).' }),
};

/** Where files live: the local directory (default) or an S3-compatible bucket (STORAGE_DIR is then staging and caches). */
function StorageEnv() {
  return {
    STORAGE_DRIVER: Literals(['local', 's3'], { default: 'local', description: 'local: files under STORAGE_DIR; s3: objects in S3_BUCKET.' }),
    S3_BUCKET: Type.String({ default: '', pattern: '^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', description: 'Bucket (required with STORAGE_DRIVER=s3).' }),
    S3_PREFIX: Type.String({ default: '', pattern: '^$|^[A-Za-z0-9!_.*()/-]*[^/]$', description: 'Key prefix inside the bucket (no trailing slash).' }),
    S3_REGION: Type.String({ default: 'us-east-1' }),
    S3_ENDPOINT: Type.String({ default: '', description: 'Endpoint of an S3-compatible service (MinIO, Ceph, R2...); empty = AWS.' }),
    S3_PUBLIC_ENDPOINT: Type.String({ default: '', description: 'Endpoint clients reach for presigned URLs (default S3_ENDPOINT).' }),
    S3_FORCE_PATH_STYLE: Type.Boolean({ default: false, description: 'Path-style URLs (most self-hosted S3 services want it).' }),
    S3_ACCESS_KEY_ID: Type.String({ default: '', description: 'Credentials; empty = the AWS default chain (env, profile, instance role).' }),
    S3_SECRET_ACCESS_KEY: Type.String({ default: '' }),
    S3_CREATE_BUCKET: Type.Boolean({ default: false, description: 'Create the bucket at start when it does not exist.' }),
    S3_PRESIGNED_DOWNLOADS: Type.Boolean({ default: false, description: 'Model downloads answer 302 to a presigned URL instead of streaming through the API.' }),
    S3_PRESIGN_EXPIRES_SECONDS: Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600, default: 900 }),
    STORAGE_CACHE_MAX_BYTES: Type.Integer({ minimum: 0, default: 10 * 2 ** 30, description: 'With s3: bound of the local cache of pulled datasets and bases (least recently used evicted).' }),
  };
}

/**
 * Reads and validates an app's environment: unknown variables are ignored, defaults applied,
 * strings converted to the declared types; a bad value stops the process with a message naming it.
 */
export function loadEnv<T extends TObject>(schema: T, env: Record<string, string | undefined> = process.env): Static<T> {
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) if (env[key] !== undefined && env[key] !== '') picked[key] = env[key];
  const value = Value.Convert(schema, Value.Default(schema, picked));
  if (!Value.Check(schema, value)) {
    const problems = [...Value.Errors(schema, value)].map((e) => `${e.instancePath.slice(1) || '(env)'}: ${e.message}`);
    throw new Error(`invalid configuration: ${problems.join('; ')}`);
  }
  return value as Static<T>;
}

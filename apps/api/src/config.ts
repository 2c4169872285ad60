import { ARCHIVE_LIMITS, CommonEnv, Literals, loadEnv, type ArchiveLimits } from '@graft/contracts';
import { parseAllowList } from '@graft/outbound';
import { fileURLToPath } from 'node:url';
import { authModeOf } from './auth-mode.ts';
import { Type, type Static } from 'typebox';

/** Where the set-up builds the dashboard (apps/dashboard/dist). */
const DASHBOARD_DIST = fileURLToPath(new URL('../../dashboard/dist', import.meta.url));

export const ApiEnv = Type.Object({
  ...CommonEnv,
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ default: '127.0.0.1' }),
  AUTH: Literals(['auto', 'keys', 'none'], {
    default: 'auto',
    description: 'keys: every /v1 request needs `Authorization: Bearer <key>`; none: no keys, every request is tenant `default` (only when HOST is loopback); auto: none on a loopback HOST, keys otherwise.',
  }),
  AUTH_CACHE_MS: Type.Integer({ minimum: 0, default: 30_000, description: 'A verified API key is trusted this long without reading Postgres again: a revoked key still works for at most this long on each API process.' }),
  RATE_LIMIT: Literals(['auto', 'on', 'off'], { default: 'auto', description: 'Per-tenant request rate limits on /v1: auto = on with API keys, off in development mode (AUTH=none).' }),
  RATE_LIMIT_READS_PER_MINUTE: Type.Integer({ minimum: 0, default: 1200, description: 'GET requests a tenant may make per minute, in bursts of as many (token bucket in Redis; 0: unlimited).' }),
  RATE_LIMIT_WRITES_PER_MINUTE: Type.Integer({ minimum: 0, default: 120, description: 'POST and DELETE requests a tenant may make per minute, in bursts of as many (0: unlimited).' }),
  MAX_ACTIVE_JOBS_PER_TENANT: Type.Integer({ minimum: 0, default: 100, description: 'Jobs a tenant may have queued or running at once; past it POST /v1/fine-tunes answers 429 quota_exceeded (0: unlimited).' }),
  MAX_STORAGE_BYTES_PER_TENANT: Type.Integer({ minimum: 0, default: 100 * 2 ** 30, description: 'Bytes a tenant may store (datasets, registered bases, models, checkpoints); past it uploads and new jobs answer 429 quota_exceeded (0: unlimited).' }),
  MAX_UPLOAD_BYTES: Type.Integer({ minimum: 1024, default: 256 * 1024 * 1024, description: 'Largest dataset archive accepted (413 beyond).' }),
  SSE_HEARTBEAT_MS: Type.Integer({ minimum: 100, default: 15_000, description: 'Server-Sent Events: a comment line after this long without a message (keeps proxies from closing the stream).' }),
  FEED_POLL_MS: Type.Integer({ minimum: 100, default: 5_000, description: 'Server-Sent Events: a watched job is read this often even without a Redis nudge (a lost nudge only delays).' }),
  ARCHIVE_MAX_ENTRIES: Type.Integer({ minimum: 1, default: ARCHIVE_LIMITS.maxEntries, description: 'Entries an uploaded zip may hold.' }),
  ARCHIVE_MAX_INFLATED_BYTES: Type.Integer({ minimum: 1024, default: ARCHIVE_LIMITS.maxInflatedBytes, description: 'Bytes one upload may inflate to (zip or gzip; 413 beyond).' }),
  ARCHIVE_MAX_RATIO: Type.Number({ minimum: 1, default: ARCHIVE_LIMITS.maxRatio, description: 'Inflated ÷ compressed bytes allowed per zip entry and per upload (422 unsafe_archive beyond).' }),
  DATASET_CHECK_TIMEOUT_MS: Type.Integer({ minimum: 1000, default: 600_000, description: 'Time limit of one dataset upload check (its child process is killed past it: 422 dataset_check_failed).' }),
  DATASET_CHECK_IDLE_MS: Type.Integer({ minimum: 0, default: 0, description: 'How long a dataset check process stays for the next check once idle (0: a fresh process per check, ended when it answers).' }),
  DATASET_CHECK_SPARE_MS: Type.Integer({ minimum: 0, default: 60_000, description: 'With DATASET_CHECK_IDLE_MS=0: a fresh check process is started ahead and kept this long for the next upload, so a check does not wait for a process to start (0: none).' }),
  DATASET_CHECK_MAX_RSS_MB: Type.Integer({ minimum: 128, default: 1024, description: 'Memory bound of a dataset check process (resident set, read from /proc on Linux; V8 heap bound at half of it): killed past it, 422 dataset_check_failed.' }),
  INSPECT_CONCURRENCY: Type.Integer({ minimum: 1, default: 2, description: 'Base-model inspections (child processes) running at once.' }),
  INSPECT_QUEUE: Type.Integer({ minimum: 0, default: 4, description: 'Registrations waiting for an inspection slot; beyond, 503 inspector_busy with Retry-After.' }),
  OUTBOUND_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 120_000, description: 'Bound of one outbound request (a hosted model.json or one weight file), body included.' }),
  PREDICT_THREADS: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Worker threads that run predictions (each keeps its own warm models).' }),
  PREDICT_CACHE_MAX_BYTES: Type.Integer({ minimum: 0, default: 512 * 1024 * 1024, description: 'Bound of the loaded models, over all prediction threads (model zip sizes; least recently used unloaded first).' }),
  DASHBOARD_DIR: Type.String({ default: DASHBOARD_DIST, description: 'The built web dashboard served at / (empty: none).' }),
  PREDICT_TIMEOUT_MS: Type.Integer({ minimum: 1, maximum: 600_000, default: 30_000, description: 'Time limit of one prediction request once its thread is ready: waiting for the thread, loading the model and inference (504 beyond).' }),
});
export type ApiConfig = Static<typeof ApiEnv>;

export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const config = loadEnv(ApiEnv, env);
  try {
    parseAllowList(config.OUTBOUND_ALLOWLIST); // a typo stops the process instead of allowing nothing (or more)
  } catch (err) {
    throw new Error(`invalid configuration: OUTBOUND_ALLOWLIST: ${(err as Error).message}`);
  }
  try {
    authModeOf(config);
  } catch (err) {
    throw new Error(`invalid configuration: ${(err as Error).message}`);
  }
  return config;
}

/** The archive bounds of this configuration. */
export const archiveLimitsOf = (config: ApiConfig): ArchiveLimits => ({
  ...ARCHIVE_LIMITS,
  maxEntries: config.ARCHIVE_MAX_ENTRIES,
  maxInflatedBytes: config.ARCHIVE_MAX_INFLATED_BYTES,
  maxRatio: config.ARCHIVE_MAX_RATIO,
});

/** The bounds of one dataset check process under this configuration. */
export const datasetCheckLimitsOf = (config: ApiConfig) => ({
  timeoutMs: config.DATASET_CHECK_TIMEOUT_MS,
  maxRssMb: config.DATASET_CHECK_MAX_RSS_MB,
  maxOldSpaceMb: Math.max(64, Math.floor(config.DATASET_CHECK_MAX_RSS_MB / 2)),
});

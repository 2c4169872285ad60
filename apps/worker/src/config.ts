import { CommonEnv, Literals, loadEnv } from '@graft/contracts';
import { hostname } from 'node:os';
import { Type, type Static } from 'typebox';

export const WorkerEnv = Type.Object({
  ...CommonEnv,
  WORKER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Jobs trained at once (each in its own process).' }),
  WORKER_ID: Type.String({ default: `${hostname()}-${process.pid}`, description: 'Name shown in /readyz and in logs.' }),
  WORKER_SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 30_000, description: 'On SIGTERM, how long running jobs may finish before they are handed back to the queue.' }),
  WORKER_METRICS_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 9464, description: 'Port of the worker\'s /healthz and /metrics (0: any free port, logged).' }),
  WORKER_METRICS_HOST: Type.String({ default: '127.0.0.1', description: 'Address that port listens on (0.0.0.0 in containers).' }),
  WORKER_LOCK_MS: Type.Integer({ minimum: 1_000, default: 30_000, description: "BullMQ's job lock (renewed at half of it) and stalled-job check interval: a killed worker's job is free to move after this long." }),
  CHECKPOINT_RECORD_DEADLINE_MS: Type.Integer({ minimum: 1_000, default: 60_000, description: 'A checkpoint must be stored and recorded within this long of the trainer reporting it (retried while storage or Postgres is away, including time behind earlier writes), else the job fails with `checkpoint_unrecorded`.' }),
  MAX_CHECKPOINTS_PER_JOB: Type.Integer({ minimum: 0, default: 50, description: 'Checkpoints one job keeps while it runs: beyond, the oldest are removed, never the best or the newest (0: no cap; else at least 2).' }),
  CHECKPOINT_MIN_INTERVAL_MS: Type.Integer({ minimum: 0, default: 0, description: 'Checkpoints taken every N batches are skipped until this long after the previous one (0: every one is written); end-of-epoch checkpoints are never skipped.' }),
  CHECKPOINT_RETENTION_MS: Type.Integer({ minimum: 0, default: 24 * 3600_000, description: 'After a job ended this long ago, its checkpoints are pruned to the best and the last (0: kept for ever).' }),
  RETENTION_INTERVAL_MS: Type.Integer({ minimum: 100, default: 600_000, description: 'How often the retention pass runs (one run at a time across every worker).' }),
  CACHE_MAX_BYTES: Type.Integer({ minimum: 0, default: 10 * 2 ** 30, description: 'Bound of the shared caches under STORAGE_DIR/cache (decoded images, tokens, features, ONNX conversions, unpacked and hosted bases); least recently used entries deleted first.' }),
  CACHE_PROTECT_MS: Type.Integer({ minimum: 0, default: 600_000, description: 'A cache entry used this recently is never deleted by that bound.' }),
  WORKER_ACCELERATOR: Literals(['auto', 'gpu', 'cpu'], { default: 'auto', description: 'What the worker advertises: auto = gpu with tfjs-node-gpu and a GPU nvidia-smi lists, else cpu.' }),
  WORKER_MEMORY_MB: Type.Integer({ minimum: 0, default: 0, description: 'RAM training may use, shared by WORKER_CONCURRENCY jobs (0: the host\'s or the container\'s limit).' }),
  TRAINER_MAX_OLD_SPACE_MB: Type.Integer({ minimum: 256, default: 4096, description: 'Heap limit of each training process.' }),
  TRAINER_NICE: Type.Integer({ minimum: 0, maximum: 19, default: 10, description: 'CPU niceness of each training process: on a host shared with the API (or under the worker\'s own lock renewal) training takes the CPU the others leave; 0: the worker\'s priority.' }),
  WEBHOOK_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256, default: 8, description: 'Webhook deliveries sent at once.' }),
  WEBHOOK_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 30, default: 12, description: 'Attempts per delivery (the first and its retries).' }),
  WEBHOOK_RETRY_BASE_MS: Type.Integer({ minimum: 10, default: 5_000, description: 'Delay before the first retry; doubled for each next one.' }),
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000, description: 'Bound of one delivery attempt (connect, send, answer).' }),
  WEBHOOK_DISPATCH_POLL_MS: Type.Integer({ minimum: 50, default: 2_000, description: 'Deliveries not yet queued are looked for this often (and on every job-feed nudge).' }),
});
export type WorkerConfig = Static<typeof WorkerEnv>;

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const config = loadEnv(WorkerEnv, env);
  // The best and the newest are always kept: a cap of 1 could not hold both.
  if (config.MAX_CHECKPOINTS_PER_JOB === 1) throw new Error('invalid configuration: MAX_CHECKPOINTS_PER_JOB: 0 (no cap) or at least 2');
  return config;
}

/**
 * Queue names, payloads and Redis connections shared by the API (producer) and the worker.
 * Every key lives under a prefix (`QUEUE_PREFIX`) so that test runs and deployments sharing a
 * Redis cannot see each other's jobs.
 */
import { CANCEL_CHANNEL, FINE_TUNE_QUEUE, STREAM_CHANNEL, WEBHOOK_QUEUE, type FineTuneJobData, type WebhookJobData, type Worker } from '@graft/contracts';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

export { FINE_TUNE_QUEUE, CANCEL_CHANNEL, WEBHOOK_QUEUE };
export { reconcileOnce, startReconciler, type Reconciler, type ReconcileReport } from './reconciler.ts';
export { startScheduledTask, type ScheduledTask } from './scheduled.ts';

export interface QueueConfig {
  redisUrl: string;
  prefix: string;
}

/**
 * BullMQ wants `maxRetriesPerRequest: null` on connections that block (workers, QueueEvents): they
 * wait for Redis to come back. Request paths must not wait: their connection has a command
 * timeout and no offline queue, so a down or frozen Redis fails a command within `commandTimeoutMs`.
 */
export function createRedis(url: string, opts: { blocking?: boolean; commandTimeoutMs?: number } = {}): Redis {
  if (opts.blocking) return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
  return new Redis(url, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    commandTimeout: opts.commandTimeoutMs ?? 5_000,
    connectTimeout: Math.min(opts.commandTimeoutMs ?? 5_000, 5_000),
    lazyConnect: false,
  });
}

/** Resolves once the connection is ready, or after `ms` (a request path then fails fast on its own). */
export async function readyWithin(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    redis.once('ready', onReady);
  });
}

export function createFineTuneQueue(cfg: QueueConfig, connection: Redis): Queue<FineTuneJobData> {
  return new Queue<FineTuneJobData>(FINE_TUNE_QUEUE, {
    connection,
    prefix: cfg.prefix,
    defaultJobOptions: {
      // A training run is not retried blindly: a failure is reported to the user, who decides.
      attempts: 1,
      removeOnComplete: { age: 24 * 3600, count: 1000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  });
}

/**
 * Webhook deliveries: retried by BullMQ with exponential backoff (`retryBaseMs` × 2^(n-1) before
 * attempt n+1), `attempts` in all, so a delivery is given up after a bounded time.
 */
export function createWebhookQueue(cfg: QueueConfig, connection: Redis, retry: { attempts: number; retryBaseMs: number }): Queue<WebhookJobData> {
  return new Queue<WebhookJobData>(WEBHOOK_QUEUE, {
    connection,
    prefix: cfg.prefix,
    defaultJobOptions: {
      attempts: retry.attempts,
      backoff: { type: 'exponential', delay: retry.retryBaseMs },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  });
}

/** Every job's feed channel, as a pattern (the webhook dispatcher listens to all of them). */
export function feedChannelPattern(prefix: string): string {
  return `${prefix}:${STREAM_CHANNEL}:*`;
}

export function cancelChannel(prefix: string): string {
  return `${prefix}:${CANCEL_CHANNEL}`;
}

/** Asks every worker to stop the job; the one running it aborts within one batch. */
export async function publishCancel(redis: Redis, prefix: string, fineTuneId: string): Promise<void> {
  await redis.publish(cancelChannel(prefix), fineTuneId);
}

/** The channel nudged after each write to a job's live feed (events, progress, metrics). */
export function feedChannel(prefix: string, fineTuneId: string): string {
  return `${prefix}:${STREAM_CHANNEL}:${fineTuneId}`;
}

/**
 * Tells every API process that the job's feed has new rows. Only a nudge: watchers read the rows
 * from Postgres, so a lost message delays them (until the next nudge or poll) but loses nothing.
 */
export async function publishFeedUpdate(redis: Redis, prefix: string, fineTuneId: string): Promise<void> {
  await redis.publish(feedChannel(prefix, fineTuneId), '1');
}

/**
 * The worker registry: each worker keeps `<prefix>:workers:<id>` (its `Worker` record: capabilities,
 * what it runs) alive with a heartbeat every WORKER_TTL_SECONDS / 3; a worker that dies drops out of
 * the list when its key expires.
 */
export type WorkerInfo = Worker;

export const WORKER_TTL_SECONDS = 15;

export async function announceWorker(redis: Redis, prefix: string, info: Worker): Promise<void> {
  await redis.set(`${prefix}:workers:${info.id}`, JSON.stringify(info), 'EX', WORKER_TTL_SECONDS);
}

export async function withdrawWorker(redis: Redis, prefix: string, id: string): Promise<void> {
  await redis.del(`${prefix}:workers:${id}`);
}

/** Live workers, by id. */
export async function listWorkers(redis: Redis, prefix: string): Promise<Worker[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:workers:*`, 'COUNT', 100);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  if (keys.length === 0) return [];
  const values = await redis.mget(...keys);
  return values
    .filter((v): v is string => v !== null)
    .map((v) => JSON.parse(v) as Worker)
    .sort((a, b) => a.id.localeCompare(b.id));
}

export { beatJob, endJobBeat, jobHeartbeatKey, jobOwner } from './heartbeat.ts';

/**
 * The worker: a BullMQ consumer of the fine-tune queue. Its own event loop stays free (training
 * runs in child processes), so lock renewal and cancel messages are never starved.
 */
import { cancelChannel, createFineTuneQueue, createRedis, FINE_TUNE_QUEUE, announceWorker, publishFeedUpdate, startReconciler, withdrawWorker, WORKER_TTL_SECONDS } from '@graft/queue';
import { createDb } from '@graft/db';
import { createStorage } from '@graft/storage';
import type { FineTuneJobData } from '@graft/contracts';
import { WaitingError, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { WorkerConfig } from './config.ts';
import { failJob, HANDED_BACK, processFineTune, type JobContext } from './process-job.ts';
import type { TrainingRun } from './trainer/run-training.ts';
import { startWebhooks } from './webhooks.ts';

/** How long before the end of the grace period running jobs are asked to stop (a stop takes up to one batch). */
const HANDBACK_MARGIN_MS = 10_000;

export interface RunningWorker {
  close(graceMs?: number): Promise<void>;
  /** Why the worker cannot take work now (closing, Redis down), or null. */
  unhealthy(): string | null;
}

export async function startWorker(config: WorkerConfig, log: Logger, backend: string, frozenRuntime?: string): Promise<RunningWorker> {
  const db = createDb(config.DATABASE_URL, { max: 4, connectTimeoutMs: config.PG_CONNECT_TIMEOUT_MS, statementTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS });
  const storage = createStorage(config);
  await storage.init();
  const connection = createRedis(config.REDIS_URL, { blocking: true });
  const subscriber = createRedis(config.REDIS_URL, { blocking: true });
  const running = new Map<string, TrainingRun>();
  const ctx: JobContext = {
    db, storage, log, redis: connection, queuePrefix: config.QUEUE_PREFIX, workerId: config.WORKER_ID, heartbeatTtlMs: config.JOB_HEARTBEAT_TTL_MS,
    checkpointDeadlineMs: config.CHECKPOINT_RECORD_DEADLINE_MS, maxOldSpaceMb: config.TRAINER_MAX_OLD_SPACE_MB, running, shuttingDown: false,
    handingBack: new Set(),
    // Watchers (Server-Sent Events) read the rows from Postgres; this only wakes them.
    notify: (id) => void publishFeedUpdate(connection, config.QUEUE_PREFIX, id).catch((err: Error) => log.warn({ err: err.message, jobId: id }, 'feed nudge failed')),
  };

  /** A job handed back is moved to waiting (not failed, not completed): the next worker takes it. */
  const processor = async (job: Job<FineTuneJobData>, token: string | undefined, signal?: AbortSignal) => {
    const outcome = await processFineTune(ctx, job, signal);
    if (outcome !== HANDED_BACK) return outcome;
    await job.moveToWait(token);
    throw new WaitingError();
  };
  const worker = new Worker<FineTuneJobData, string>(FINE_TUNE_QUEUE, processor, {
    connection,
    prefix: config.QUEUE_PREFIX,
    concurrency: config.WORKER_CONCURRENCY,
    name: config.WORKER_ID,
    lockDuration: config.WORKER_LOCK_MS,
    stalledInterval: config.WORKER_LOCK_MS,
  });
  worker.on('error', (err) => log.error({ err }, 'worker error'));
  worker.on('failed', (job, err) => {
    log.error({ jobId: job?.id, err: err.message }, 'job failed in the queue');
    // BullMQ gave the job up (it stalled too often, or the processor threw): end it in Postgres
    // too. failJob retries until Postgres takes it; the reconciler is the backstop if this process dies.
    const id = job?.data?.fineTuneId;
    if (!id) return;
    const stalled = /stall/i.test(err.message);
    failJob(ctx, id, stalled
      ? { code: 'worker_lost', message: `The job was abandoned by its workers: ${err.message}` }
      : { code: 'training_failed', message: `The job stopped on an unexpected error: ${err.message}` },
    ).catch((e: Error) => log.error({ jobId: id, err: e.message }, 'could not record the failure; the reconciler will end the job'));
  });

  // The reconciler's runs are shared by every API and worker process (one at a time).
  const plain = createRedis(config.REDIS_URL, { commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS });
  plain.on('error', () => {});
  const producer = createFineTuneQueue({ redisUrl: config.REDIS_URL, prefix: config.QUEUE_PREFIX }, createRedis(config.REDIS_URL, { blocking: true }));
  producer.on('error', () => {});
  const reconciler = await startReconciler({
    db, redis: plain, queue: producer, prefix: config.QUEUE_PREFIX, redisUrl: config.REDIS_URL, intervalMs: config.RECONCILE_INTERVAL_MS,
    heartbeatTtlMs: config.JOB_HEARTBEAT_TTL_MS, log: log.child({ component: 'reconciler' }),
  });

  await subscriber.subscribe(cancelChannel(config.QUEUE_PREFIX));
  subscriber.on('message', (_channel, id: string) => {
    const run = running.get(id);
    if (run) {
      log.info({ jobId: id }, 'cancel requested');
      run.cancel();
    }
  });

  const hooks = await startWebhooks(config, db, connection, subscriber, log);

  const info = { id: config.WORKER_ID, backend, ...(frozenRuntime ? { frozenRuntime } : {}), concurrency: config.WORKER_CONCURRENCY, since: new Date().toISOString() };
  const beat = async () => announceWorker(connection, config.QUEUE_PREFIX, info).catch((err) => log.warn({ err: err.message }, 'heartbeat failed'));
  await beat();
  const heartbeat = setInterval(beat, (WORKER_TTL_SECONDS * 1000) / 3);
  log.info({ worker: config.WORKER_ID, concurrency: config.WORKER_CONCURRENCY, queue: `${config.QUEUE_PREFIX}:${FINE_TUNE_QUEUE}`, backend }, 'worker ready');

  return {
    unhealthy() {
      if (!worker.isRunning()) return 'not consuming the queue';
      if (connection.status !== 'ready') return `redis connection ${connection.status}`;
      return null;
    },
    async close(graceMs = config.WORKER_SHUTDOWN_GRACE_MS) {
      clearInterval(heartbeat);
      // Stop taking jobs. A running job may finish within the first part of the grace period;
      // then it is handed back: its trainer is stopped (within one batch), the row goes back to
      // `queued`, the BullMQ job to waiting, and the next worker runs it. A trainer that has not
      // stopped when the grace period ends is killed and handed back the same way.
      const closing = worker.close();
      const margin = Math.min(HANDBACK_MARGIN_MS, graceMs / 2);
      const handBack = (stop: (run: TrainingRun) => void) => {
        for (const [id, run] of running) {
          ctx.handingBack.add(id);
          stop(run);
        }
      };
      const soft = setTimeout(() => {
        if (running.size) log.info({ jobs: [...running.keys()] }, 'handing running jobs back to the queue');
        handBack((run) => run.cancel());
      }, graceMs - margin);
      const hard = setTimeout(() => {
        ctx.shuttingDown = true;
        handBack((run) => run.kill());
      }, graceMs);
      await Promise.race([closing, new Promise((r) => setTimeout(r, graceMs + 2_000))]);
      clearTimeout(soft);
      clearTimeout(hard);
      await hooks.close().catch((err: Error) => log.warn({ err: err.message }, 'closing webhook deliveries failed'));
      await withdrawWorker(connection, config.QUEUE_PREFIX, config.WORKER_ID).catch(() => {});
      await reconciler.close().catch(() => {});
      await producer.close().catch(() => {});
      plain.disconnect();
      subscriber.disconnect();
      connection.disconnect();
      await db.$disconnect();
    },
  };
}

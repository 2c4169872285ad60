/**
 * The worker: a BullMQ consumer of the fine-tune queue. Its own event loop stays free (training
 * runs in child processes), so lock renewal and cancel messages are never starved.
 */
import { cancelChannel, createFineTuneQueue, createRedis, FINE_TUNE_QUEUE, announceWorker, listWorkers, publishFeedUpdate, startReconciler, startScheduledTask, withdrawWorker, WORKER_TTL_SECONDS } from '@graft/queue';
import { createDb, events, fineTunes } from '@graft/db';
import { createStorage, trimCache } from '@graft/storage';
import { canRun, type FineTuneJobData, type Resources, type Worker as WorkerRecord, type WorkerJob } from '@graft/contracts';
import { DelayedError, WaitingError, Worker, type Job } from 'bullmq';
import { hostname } from 'node:os';
import { detectCapabilities } from './capabilities.ts';
import { createWorkerMetrics } from './metrics.ts';
import type { Logger } from 'pino';
import type { WorkerConfig } from './config.ts';
import { failJob, HANDED_BACK, processFineTune, type JobContext } from './process-job.ts';
import type { TrainingRun } from './trainer/run-training.ts';
import { startWebhooks } from './webhooks.ts';
import { pruneEndedJobs } from './retention.ts';

/** How long a handed-back job waits before any worker may take it again. */
const HAND_BACK_DELAY_MS = 1_000;

const describeNeed = (need: Resources) =>
  [need.gpu === 'required' ? 'a GPU worker' : need.gpu === 'never' ? 'a CPU worker' : 'a worker', need.memoryMB ? `with ${need.memoryMB} MiB per job` : ''].filter(Boolean).join(' ');

export interface RunningWorker {
  close(graceMs?: number): Promise<void>;
  /** Prometheus text exposition of this worker's metrics. */
  metrics(): Promise<{ contentType: string; body: string }>;
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
  // The shared caches' bound: checked at start and after every job (what a job adds), one trim at a time.
  let trimming: Promise<void> = Promise.resolve();
  const trimCaches = () => {
    trimming = trimming.then(async () => {
      const t = await trimCache(storage.path('cache'), config.CACHE_MAX_BYTES, { protectMs: config.CACHE_PROTECT_MS });
      if (t.removed.length) log.info({ component: 'cache', before: t.before, after: t.after, removed: t.removed.length, removedBytes: t.removedBytes }, 'cache trimmed to its bound (least recently used first)');
    }).catch((err: Error) => log.warn({ err: err.message }, 'cache trim failed'));
    return trimming;
  };
  await trimCaches();
  const ctx: JobContext = {
    db, storage, log, redis: connection, queuePrefix: config.QUEUE_PREFIX, workerId: config.WORKER_ID, heartbeatTtlMs: config.JOB_HEARTBEAT_TTL_MS,
    checkpointDeadlineMs: config.CHECKPOINT_RECORD_DEADLINE_MS, maxCheckpointsPerJob: config.MAX_CHECKPOINTS_PER_JOB,
    checkpointMinIntervalMs: config.CHECKPOINT_MIN_INTERVAL_MS, maxOldSpaceMb: config.TRAINER_MAX_OLD_SPACE_MB, trainerNice: config.TRAINER_NICE, running, shuttingDown: false,
    handingBack: new Set(),
    // Watchers (Server-Sent Events) read the rows from Postgres; this only wakes them.
    notify: (id) => void publishFeedUpdate(connection, config.QUEUE_PREFIX, id).catch((err: Error) => log.warn({ err: err.message, jobId: id }, 'feed nudge failed')),
  };

  const capabilities = detectCapabilities({ backend, concurrency: config.WORKER_CONCURRENCY, accelerator: config.WORKER_ACCELERATOR, memoryMb: config.WORKER_MEMORY_MB });
  const jobs = new Map<string, WorkerJob>();
  let draining = false;
  const startedAt = new Date().toISOString();
  const record = (): WorkerRecord => ({
    id: config.WORKER_ID,
    object: 'worker',
    hostname: hostname(),
    status: draining ? 'draining' : jobs.size >= config.WORKER_CONCURRENCY ? 'busy' : 'idle',
    capabilities: { ...capabilities, ...(frozenRuntime ? { frozenRuntime } : {}) },
    running: [...jobs.values()],
    startedAt,
    lastSeenAt: new Date().toISOString(),
  });
  const beat = async () => announceWorker(connection, config.QUEUE_PREFIX, record()).catch((err) => log.warn({ err: err.message }, 'heartbeat failed'));
  // The registry shows what runs now: announce at each start and end, not only on the heartbeat.
  const metrics = createWorkerMetrics({ backend, running });
  ctx.onJob = (id, state, info) => {
    if (state === 'started') {
      jobs.set(id, { fineTune: id, startedAt: new Date().toISOString() });
      metrics.jobStarted(id);
    } else {
      jobs.delete(id);
      metrics.jobEnded(id, info?.status ?? 'unknown', info?.seconds ?? 0);
      void trimCaches();
    }
    void beat();
  };
  ctx.onTrainingMessage = (id, m) => metrics.trainingMessage(id, m);

  /**
   * Check before start: a job this worker should not run goes back to the queue (delayed a moment,
   * so another worker can take it) without using an attempt; the first time no live worker at all
   * can run it, an event says so.
   */
  async function handBackIfUnsuited(job: Job<FineTuneJobData>, token: string | undefined): Promise<void> {
    const need: Resources | undefined = job.data.resources;
    if (!need) return;
    const others = await listWorkers(connection, config.QUEUE_PREFIX).catch(() => []);
    const live = others.filter((w) => w.status !== 'draining').map((w) => w.capabilities);
    const verdict = canRun(need, capabilities, live, Date.now() - job.timestamp);
    if (verdict.ok) return;
    // A job cancelled (or gone) while it waited is not handed back: processFineTune ends it.
    const row = await fineTunes.getFineTune(db, job.data.fineTuneId, null);
    if (!row || row.cancelRequestedAt || (row.status !== 'queued' && row.status !== 'running')) return;
    log.info({ jobId: job.data.fineTuneId, reason: verdict.reason }, 'job handed back');
    if (verdict.noWorkerCan && !job.data.waitingNoted) {
      await job.updateData({ ...job.data, waitingNoted: true });
      await events.appendEvent(db, {
        fineTuneId: job.data.fineTuneId, level: 'warning', type: 'waiting_for_worker',
        message: `No live worker can run this job yet (it needs ${describeNeed(need)}); it waits in the queue until one joins.`,
        data: { resources: need, reason: verdict.reason },
      }).then(() => ctx.notify?.(job.data.fineTuneId), (err: Error) => log.warn({ err: err.message }, 'waiting event failed'));
    }
    await job.moveToDelayed(Date.now() + HAND_BACK_DELAY_MS + Math.floor(Math.random() * 500), token);
    throw new DelayedError();
  }

  /** A job handed back is moved to waiting (not failed, not completed): the next worker takes it. */
  const processor = async (job: Job<FineTuneJobData>, token: string | undefined, signal?: AbortSignal) => {
    await handBackIfUnsuited(job, token);
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

  // Checkpoint retention of ended jobs, shared by every worker like the reconciler (0: kept for ever).
  const retention = config.CHECKPOINT_RETENTION_MS > 0
    ? await startScheduledTask({
      name: 'retention', redis: plain, prefix: config.QUEUE_PREFIX, redisUrl: config.REDIS_URL, intervalMs: config.RETENTION_INTERVAL_MS,
      log: log.child({ component: 'retention' }),
      run: async () => {
        const pruned = await pruneEndedJobs(db, storage, config.CHECKPOINT_RETENTION_MS);
        if (pruned.checkpoints) log.info({ component: 'retention', ...pruned }, 'checkpoints of ended jobs pruned to the best and the last');
        return pruned;
      },
    })
    : null;

  await subscriber.subscribe(cancelChannel(config.QUEUE_PREFIX));
  subscriber.on('message', (_channel, id: string) => {
    const run = running.get(id);
    if (run) {
      log.info({ jobId: id }, 'cancel requested');
      run.cancel();
    }
  });

  const hooks = await startWebhooks(config, db, connection, subscriber, log);
  await beat();
  const heartbeat = setInterval(beat, (WORKER_TTL_SECONDS * 1000) / 3);
  log.info({ worker: config.WORKER_ID, concurrency: config.WORKER_CONCURRENCY, queue: `${config.QUEUE_PREFIX}:${FINE_TUNE_QUEUE}`, backend, capabilities }, 'worker ready');

  return {
    metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
    unhealthy() {
      if (!worker.isRunning()) return 'not consuming the queue';
      if (connection.status !== 'ready') return `redis connection ${connection.status}`;
      return null;
    },
    async close(graceMs = config.WORKER_SHUTDOWN_GRACE_MS) {
      draining = true;
      await beat();
      // Stop taking jobs and hand the running ones back at once: each trainer writes a checkpoint
      // at its next batch end and stops, the row goes back to `queued`, the BullMQ job to waiting,
      // and the next worker resumes from that checkpoint. A trainer that has not stopped when the
      // grace period ends is killed and handed back the same way (resumed from its last checkpoint).
      const closing = worker.close();
      ctx.leaving = { killAfterMs: graceMs };
      if (running.size) log.info({ jobs: [...running.keys()] }, 'handing running jobs back to the queue');
      for (const [id, run] of running) {
        ctx.handingBack.add(id);
        run.handBack(graceMs);
      }
      const hard = setTimeout(() => {
        ctx.shuttingDown = true;
        for (const [id, run] of running) {
          ctx.handingBack.add(id);
          run.kill();
        }
      }, graceMs);
      await Promise.race([closing, new Promise((r) => setTimeout(r, graceMs + 2_000))]);
      clearTimeout(hard);
      await hooks.close().catch((err: Error) => log.warn({ err: err.message }, 'closing webhook deliveries failed'));
      clearInterval(heartbeat);
      await withdrawWorker(connection, config.QUEUE_PREFIX, config.WORKER_ID).catch(() => {});
      await reconciler.close().catch(() => {});
      await retention?.close().catch(() => {});
      await producer.close().catch(() => {});
      plain.disconnect();
      subscriber.disconnect();
      connection.disconnect();
      metrics.close();
      await trimming;
      await db.$disconnect();
    },
  };
}

/**
 * The reconciler: Postgres says what should happen, Redis what is happening; this makes them agree.
 *
 * - A `queued` row with no live BullMQ job (Redis lost its keys, an enqueue that failed half-way)
 *   is enqueued again; if its cancel was asked, it is cancelled instead.
 * - A `running` row whose worker's heartbeat is gone (seen missing twice, a heartbeat's lifetime
 *   apart): cancelled if its cancel was asked, else re-queued (up to `maxAttempts`, then failed
 *   `worker_lost`). A BullMQ job still active under a dead worker's lock is left to BullMQ's
 *   stalled-job check, which moves it back to waiting; the row already says `queued`.
 *
 * It runs as a scheduled task (scheduled.ts: a BullMQ job scheduler on its own queue, one run at a
 * time across every API and worker process, a Redis lock against overlap, re-upserted on reconnect).
 */
import type { FineTuneJobData, Resources } from '@graft/contracts';
import { fineTunes, transitions, type Db } from '@graft/db';
import type { Queue, Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { jobOwner } from './heartbeat.ts';
import { startScheduledTask } from './scheduled.ts';

export const RECONCILE_QUEUE = 'reconcile';

/** The part of a pino (or Fastify) logger the reconciler uses. */
export interface ReconcileLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ReconcileDeps {
  db: Db;
  /** A connection for plain commands (heartbeats, locks). */
  redis: Redis;
  queue: Queue<FineTuneJobData>;
  prefix: string;
  heartbeatTtlMs: number;
  /** A queued row younger than this is left alone (its enqueue may be under way). */
  queuedGraceMs: number;
  maxAttempts?: number;
  log: ReconcileLog;
}

export interface ReconcileReport {
  enqueued: string[];
  requeued: string[];
  cancelled: string[];
  failed: string[];
}

const WAITING_STATES = new Set(['waiting', 'wait', 'delayed', 'prioritized', 'waiting-children']);
const DEFAULT_MAX_ATTEMPTS = 3;

const suspectKey = (prefix: string, id: string) => `${prefix}:reconcile:suspect:${id}`;

async function jobState(queue: Queue<FineTuneJobData>, id: string): Promise<{ job: Job<FineTuneJobData> | undefined; state: string }> {
  const job = await queue.getJob(id);
  return { job, state: job ? await job.getState() : 'missing' };
}

async function enqueue(queue: Queue<FineTuneJobData>, job: Job<FineTuneJobData> | undefined, row: { id: string; resources?: unknown }): Promise<void> {
  // A finished BullMQ job with this id would make `add` a no-op: remove it first.
  if (job) await job.remove().catch(() => {});
  // What the job needs from a worker travels with it again (workers route on it).
  const resources = row.resources ? { resources: row.resources as Resources } : {};
  await queue.add('fine-tune', { fineTuneId: row.id, ...resources }, { jobId: row.id });
}

/** One pass over the non-terminal rows. */
export async function reconcileOnce(d: ReconcileDeps): Promise<ReconcileReport> {
  const report: ReconcileReport = { enqueued: [], requeued: [], cancelled: [], failed: [] };
  const maxAttempts = d.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;

  for (const row of await fineTunes.listByStatus(d.db, 'queued', { createdBefore: new Date(Date.now() - d.queuedGraceMs) })) {
    const { job, state } = await jobState(d.queue, row.id);
    // An active job's worker is starting it and will see a cancel itself.
    if (state === 'active') continue;
    if (row.cancelRequestedAt) {
      // A cancel recorded while Redis was away: remove whatever is left of the job and end it.
      if (job) await job.remove().catch(() => {});
      if (await transitions.cancel(d.db, row.id, { started: false })) report.cancelled.push(row.id);
      continue;
    }
    if (WAITING_STATES.has(state)) continue;
    await enqueue(d.queue, job, row);
    report.enqueued.push(row.id);
    d.log.warn({ jobId: row.id, state }, 'queued job was missing from the queue; enqueued again');
  }

  for (const row of await fineTunes.listByStatus(d.db, 'running')) {
    if (await jobOwner(d.redis, d.prefix, row.id)) {
      await d.redis.del(suspectKey(d.prefix, row.id));
      continue;
    }
    // Seen without an owner: act only once that has lasted a heartbeat's lifetime (a restarted
    // Redis, or a job that ended between the scan and this look, both clear up by then).
    await d.redis.set(suspectKey(d.prefix, row.id), String(Date.now()), 'PX', d.heartbeatTtlMs * 10, 'NX');
    const since = Number(await d.redis.get(suspectKey(d.prefix, row.id)));
    if (!(Date.now() - since >= d.heartbeatTtlMs)) continue;
    await d.redis.del(suspectKey(d.prefix, row.id));

    const { job, state } = await jobState(d.queue, row.id);
    if (row.cancelRequestedAt) {
      if (job) await job.remove().catch(() => {});
      const ok = await transitions.cancel(d.db, row.id, { started: true, message: 'Job cancelled; its worker was gone, events, metrics and checkpoints so far are kept' });
      if (ok) report.cancelled.push(row.id);
      continue;
    }
    if (row.attempts >= maxAttempts) {
      if (job) await job.remove().catch(() => {});
      const ok = await transitions.fail(d.db, row.id, { code: 'worker_lost', message: `The job lost its worker ${row.attempts} times; it is not tried again.` });
      if (ok) report.failed.push(row.id);
      continue;
    }
    const ok = await transitions.requeue(d.db, row.id, { code: 'worker_lost', reason: 'its worker stopped answering (lost or killed); it waits for the next worker' });
    if (!ok) continue;
    // Already waiting in BullMQ (its stalled job was moved back): the next worker takes it.
    if (!WAITING_STATES.has(state)) await enqueue(d.queue, job, row);
    report.requeued.push(row.id);
    d.log.warn({ jobId: row.id, state }, 'running job had lost its worker; re-queued');
  }
  return report;
}

export interface Reconciler {
  close(): Promise<void>;
}

/**
 * Schedules the reconciler every `intervalMs` and takes part in running it. Every API and worker
 * process calls this; BullMQ hands each run to one of them.
 */
export async function startReconciler(
  d: Omit<ReconcileDeps, 'queuedGraceMs'> & { redisUrl: string; intervalMs: number; queuedGraceMs?: number },
): Promise<Reconciler> {
  const deps: ReconcileDeps = { ...d, queuedGraceMs: d.queuedGraceMs ?? Math.min(30_000, 5 * d.intervalMs) };
  return startScheduledTask({
    name: RECONCILE_QUEUE, redisUrl: d.redisUrl, redis: d.redis, prefix: d.prefix, intervalMs: d.intervalMs, log: d.log,
    run: async () => {
      const report = await reconcileOnce(deps);
      const changed = report.enqueued.length + report.requeued.length + report.cancelled.length + report.failed.length;
      if (changed) d.log.info(report, 'reconciled');
      return report;
    },
  });
}

/**
 * Runs one fine-tune job: claims it in Postgres (queued → running), trains in a child process,
 * records progress, epochs and events as they come, stores the model, and ends the job
 * succeeded, failed or cancelled. Postgres is the source of truth; BullMQ only carries the id.
 *
 * Postgres may go away at any moment: every write that matters (transitions, events, metrics,
 * checkpoints) is retried with backoff until Postgres takes it, while the messages of the trainer
 * wait in order in memory (nothing lost, nothing reordered). Only a checkpoint has a deadline: the
 * trainer waits for it, and a job must fail honestly rather than hang at one epoch.
 */
import { basename } from 'node:path';
import { FineTuneJobData, newId, parseWith, type FineTuneSpec } from '@graft/contracts';
import { capJobCheckpoints } from './retention.ts';
import { baseLookups, checkpoints, datasets, events, fineTunes, metrics, retry, transitions, type Db, type JobError } from '@graft/db';
import { beatJob, endJobBeat } from '@graft/queue';
import type { Redis } from 'ioredis';
import { resolveBase } from '@graft/engine/resolve-base';
import { StorageNotFound, type Pulled, type Storage } from '@graft/storage';
import type { ResolvedBase } from '@graft/engine/catalog';
import { rm } from 'node:fs/promises';
import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import { trainerEventIds } from './event-ids.ts';
import type { ChildMessage, StartMessage } from './trainer/messages.ts';
import { runTraining, type TrainingRun } from './trainer/run-training.ts';

export interface JobContext {
  db: Db;
  /** For the job's heartbeat (the reconciler's sign that this worker still owns it). */
  redis: Redis;
  queuePrefix: string;
  workerId: string;
  heartbeatTtlMs: number;
  /** How long storing and recording one checkpoint may be retried before the job fails. */
  checkpointDeadlineMs: number;
  /** Checkpoints a job keeps while it runs (0: no cap); beyond, the oldest but the best go. */
  maxCheckpointsPerJob?: number;
  /** Batch checkpoints closer than this to the previous one are skipped by the trainer. */
  checkpointMinIntervalMs?: number;
  storage: Storage;
  /** Called when a job starts and ends (the worker's registry entry and metrics follow it). */
  onJob?: (id: string, state: 'started' | 'ended', info?: { status: string; backend?: string; seconds: number }) => void;
  /** Every message of a training process, as it arrives (the worker's metrics read epochs from them). */
  onTrainingMessage?: (id: string, m: ChildMessage) => void;
  log: Logger;
  maxOldSpaceMb: number;
  /** Niceness of training processes (TRAINER_NICE). */
  trainerNice: number;
  /** Running trainings by fine-tune id, so cancel requests can reach them. */
  running: Map<string, TrainingRun>;
  /** Set when the worker stops its trainings on shutdown. */
  shuttingDown: boolean;
  /** Jobs this worker is handing back to the queue (SIGTERM): their stop is a re-queue, not an end. */
  handingBack: Set<string>;
  /** Set once the worker is leaving (SIGTERM): a training that starts after it is handed back at once. */
  leaving?: { killAfterMs: number };
  /** Called after each write to a job's live feed (events, progress, metrics), once it is committed. */
  notify?: (fineTuneId: string) => void;
}

/** What `processFineTune` answers for a job it gave back to the queue (the worker moves it to waiting). */
export const HANDED_BACK = 'handed-back';

/** Progress rows are written at most this often (a batch can take under a millisecond). */
const PROGRESS_EVERY_MS = 500;

/** A write that must reach Postgres: retried (backoff up to 5 s) for as long as Postgres is away. */
function persist<T>(log: Logger, what: string, fn: () => Promise<T>, opts: { deadlineMs?: number } = {}): Promise<T> {
  return retry(fn, {
    what,
    ...opts,
    onRetry: (err, attempt, waitMs) => log.warn({ err: (err as Error).message?.trim().split('\n').at(-1), attempt, waitMs }, `${what}: retrying`),
  });
}

export async function processFineTune(ctx: JobContext, job: Job<FineTuneJobData>, signal?: AbortSignal): Promise<string> {
  const { fineTuneId: id } = parseWith(FineTuneJobData, job.data, 'job');
  const log = ctx.log.child({ jobId: id });
  const row = await persist(log, 'reading the job', () => fineTunes.getFineTune(ctx.db, id, null)); // by job id: the job's tenant scopes what it reads next
  if (!row) {
    log.warn('job has no row in the database; dropped');
    return 'missing';
  }
  if (row.cancelRequestedAt && (row.status === 'queued' || row.status === 'running')) {
    await persist(log, 'cancelling the job', () => transitions.cancel(ctx.db, id, { started: false }));
    ctx.notify?.(id);
    return 'cancelled';
  }
  if (row.status !== 'queued' && row.status !== 'running') {
    log.info({ status: row.status }, 'job is no longer runnable; skipped');
    return row.status;
  }
  // The heartbeat starts before the claim: a running row is never without one while we hold it.
  const beat = () => beatJob(ctx.redis, ctx.queuePrefix, id, ctx.workerId, ctx.heartbeatTtlMs).catch((err: Error) => log.warn({ err: err.message }, 'job heartbeat failed'));
  await beat();
  const heartbeat = setInterval(beat, ctx.heartbeatTtlMs / 4);
  try {
    const restarted = row.status === 'running'; // a worker died mid-job; BullMQ handed it to us
    const claimed = await persist(log, 'claiming the job', () => transitions.claim(ctx.db, id, { worker: job.processedBy ?? null, restarted }));
    if (!claimed) {
      log.info({ status: row.status }, 'job is no longer runnable; skipped');
      return row.status;
    }
    ctx.notify?.(id);
    return await runClaimed(ctx, job, row, log, signal);
  } finally {
    clearInterval(heartbeat);
    await endJobBeat(ctx.redis, ctx.queuePrefix, id).catch(() => {});
  }
}

async function runClaimed(ctx: JobContext, job: Job<FineTuneJobData>, row: FineTuneRow, log: Logger, signal?: AbortSignal): Promise<string> {
  const id = row.id;
  ctx.onJob?.(id, 'started');
  const startedAt = Date.now();
  // Inputs are pulled from storage to local disk (a no-op for the local driver) and held until the job ends.
  const held: Pulled[] = [];
  let outcome = 'failed';
  try {
    outcome = await train(ctx, job, row, held, log, signal);
    return outcome;
  } finally {
    for (const p of held) p.release();
    ctx.onJob?.(id, 'ended', { status: outcome, seconds: (Date.now() - startedAt) / 1000 });
  }
}

type FineTuneRow = NonNullable<Awaited<ReturnType<typeof fineTunes.getFineTune>>>;

/** The file a job trains on: an image dataset's archive, a text dataset's normalised rows file (what its upload check wrote). */
async function pullDataset(ctx: JobContext, held: Pulled[], datasetId: string, tenantId: string): Promise<string | null> {
  const dataset = await persist(ctx.log, 'reading a dataset', () => datasets.getDataset(ctx.db, datasetId, tenantId));
  if (!dataset) return null;
  const key = dataset.task === 'text-classification' ? dataset.rowsKey : dataset.storageKey;
  if (!key) return null;
  try {
    const pulled = await ctx.storage.pull(key);
    held.push(pulled);
    return pulled.path;
  } catch (err) {
    if (err instanceof StorageNotFound) return null;
    throw err;
  }
}

/** Resolves the base; weights that live in storage (registered bases, fine-tunes as bases) are pulled. */
/** Only the job's own tenant's registered bases and fine-tunes (catalog bases are everyone's). */
async function pullBase(ctx: JobContext, held: Pulled[], baseModelId: string, tenantId: string): Promise<{ ok: true; base: ResolvedBase } | { ok: false; message: string }> {
  const keys = new Map<string, string>();
  const resolved = await resolveBase(baseModelId, baseLookups(ctx.db, (k) => {
    const p = ctx.storage.path(k);
    keys.set(p, k);
    return p;
  }, tenantId));
  if (!resolved.ok) return resolved;
  const { source } = resolved.base;
  const key = source.kind === 'directory' ? keys.get(source.dir) : source.kind === 'model-zip' ? keys.get(source.path) : undefined;
  if (key === undefined) return resolved; // catalog bases: shipped with graft
  try {
    const pulled = await ctx.storage.pull(key, { directory: source.kind === 'directory' });
    held.push(pulled);
    const local = source.kind === 'directory' ? { kind: 'directory' as const, dir: pulled.path } : { kind: 'model-zip' as const, path: pulled.path };
    return { ok: true, base: { ...resolved.base, source: local } };
  } catch (err) {
    if (err instanceof StorageNotFound) return { ok: false, message: `The weights of base ${baseModelId} are no longer in storage.` };
    throw err;
  }
}

async function train(ctx: JobContext, job: Job<FineTuneJobData>, row: FineTuneRow, held: Pulled[], log: Logger, signal?: AbortSignal): Promise<string> {
  const id = row.id;
  const spec = row.request as FineTuneSpec;
  const datasetPath = await pullDataset(ctx, held, row.datasetId, row.tenantId);
  if (datasetPath === null) {
    await fail(ctx, id, { code: 'dataset_missing', message: `The archive of dataset ${row.datasetId} is no longer in storage; upload it again and start a new job.` });
    return 'failed';
  }
  let testDatasetPath: string | null = null;
  if (spec.testDataset) {
    testDatasetPath = await pullDataset(ctx, held, spec.testDataset, row.tenantId);
    if (testDatasetPath === null) {
      await fail(ctx, id, { code: 'dataset_missing', message: `The archive of test dataset ${spec.testDataset} is no longer in storage; upload it again and start a new job.`, param: 'testDataset' });
      return 'failed';
    }
  }
  const resolved = await pullBase(ctx, held, row.baseModelId, row.tenantId);
  if (!resolved.ok) {
    await fail(ctx, id, { code: 'base_model_unavailable', message: resolved.message });
    return 'failed';
  }

  const outKey = `jobs/${id}/attempt-${row.attempts + 1}`;
  const resume = await resumeFrom(ctx, held, id, log);
  const start = {
    kind: 'start' as const,
    fineTuneId: id,
    base: resolved.base,
    datasetPath,
    testDatasetPath,
    outDir: ctx.storage.path(outKey),
    cacheDir: ctx.storage.path('cache'),
    spec,
    checkpointMinIntervalMs: ctx.checkpointMinIntervalMs ?? 0,
    resume,
  };
  const eventIds = trainerEventIds(id);

  // Messages are handled strictly in order (events must be stored in the order they happened).
  let chain = Promise.resolve();
  let lastProgress = 0;
  let lastCancelCheck = Date.now();
  const handle = async (m: ChildMessage, arrivedAt: number) => {
    if (m.kind === 'event') {
      const eventId = eventIds.event(m.type, m.message);
      await persist(log, 'recording an event', () => events.appendEvent(ctx.db, { fineTuneId: id, level: m.level, type: m.type, message: m.message, data: m.data ?? null, ...(eventId ? { id: eventId } : {}) }));
    } else if (m.kind === 'batch') {
      // Progress is only a hint (the next one replaces it): written once, never retried.
      const now = Date.now();
      if (now - lastProgress >= PROGRESS_EVERY_MS || m.batch === m.batches) {
        lastProgress = now;
        const progress = { phase: m.phase, epoch: m.epoch, epochs: m.epochs, batch: m.batch, batches: m.batches };
        const recorded = await fineTunes.recordProgress(ctx.db, id, progress).catch((err: Error) => log.debug({ err: err.message }, 'progress not written'));
        if (recorded) ctx.notify?.(id);
        await job.updateProgress(progress).catch(() => {});
      }
      // Belt and braces for a lost pub/sub message: look at the row every few seconds.
      if (now - lastCancelCheck > 3_000) {
        lastCancelCheck = now;
        const current = await fineTunes.getFineTune(ctx.db, id, null).catch(() => null);
        if (current?.cancelRequestedAt) ctx.running.get(id)?.cancel();
      }
    } else if (m.kind === 'checkpoint') {
      await recordCheckpointOf(m, arrivedAt);
    } else if (m.kind === 'epoch' && m.phase === 'baseline') {
      // The from-scratch comparison has epochs of its own; they are reported, not mixed into the job's metrics.
      const { kind: _kind, ...metric } = m;
      await persist(log, 'recording a baseline epoch', () => events.appendEvent(ctx.db, {
        id: eventIds.epoch('baseline', m.epoch), fineTuneId: id, level: 'info', type: 'baseline_epoch',
        message: `Baseline (from scratch) epoch ${m.epoch}: loss ${m.loss.toFixed(4)}, val_accuracy ${m.valAccuracy === null ? 'n/a' : m.valAccuracy.toFixed(4)}`,
        data: metric,
      }));
    } else if (m.kind === 'epoch') {
      const { kind: _kind, ...metric } = m;
      const saved = await persist(log, 'recording an epoch', () => metrics.recordMetric(ctx.db, { fineTuneId: id, ...metric }));
      await persist(log, 'recording the latest metrics', () => fineTunes.updateRunning(ctx.db, id, { epoch: m.epoch, latestMetrics: { ...metric, createdAt: saved.createdAt.toISOString() } }));
      const fmt = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
      await persist(log, 'recording an epoch event', () => events.appendEvent(ctx.db, {
        id: eventIds.epoch(m.phase, m.epoch), fineTuneId: id, level: 'info', type: 'epoch',
        message: `Epoch ${m.epoch}: loss ${fmt(m.loss)}, accuracy ${fmt(m.accuracy)}, val_loss ${fmt(m.valLoss)}, val_accuracy ${fmt(m.valAccuracy)}`,
        data: metric,
      }));
    }
  };

  /**
   * Stores the file, then the row (its id fixed up front, so a retry after a lost answer finds
   * the row instead of adding a second), within the checkpoint deadline; the trainer waits for
   * the answer either way.
   */
  const templatesStored = new Set<string>();
  const recordCheckpointOf = async (m: Extract<ChildMessage, { kind: 'checkpoint' }>, arrivedAt: number) => {
    const ckId = newId('checkpoint');
    const key = `models/${id}/checkpoints/${ckId}.zip`;
    const resumeKey = m.resumePath ? `models/${id}/checkpoints/${ckId}.resume` : null;
    // Counted from the message's arrival: time spent behind earlier writes counts too.
    const deadline = arrivedAt + ctx.checkpointDeadlineMs;
    // A deadline already past (the writes before this one waited for Postgres) fails it without a last
    // try: whether a try just after Postgres returns gets through is a race, and the outcome must not be.
    const left = () => {
      const ms = deadline - Date.now();
      if (ms <= 0) throw new Error(`not stored and recorded within ${Math.round(ctx.checkpointDeadlineMs / 1000)} s of being taken (the writes before it waited for a dependency)`);
      return ms;
    };
    try {
      let committed = false;
      let resumeStored = false;
      await persist(log, 'storing a checkpoint', async () => {
        // A head checkpoint's complete template is stored once per job, beside the checkpoints it serves.
        if (m.templatePath && !templatesStored.has(m.templatePath)) {
          await ctx.storage.commit(ctx.storage.keyOf(m.templatePath), `models/${id}/checkpoints/${basename(m.templatePath)}`);
          templatesStored.add(m.templatePath);
        }
        if (!committed) await ctx.storage.commit(ctx.storage.keyOf(m.zipPath), key);
        committed = true;
        // Stored before the row: a row with a resume key always has its file.
        if (resumeKey && !resumeStored) await ctx.storage.commit(ctx.storage.keyOf(m.resumePath!), resumeKey);
        resumeStored = true;
      }, { deadlineMs: left() });
      await persist(log, 'recording a checkpoint', async () => {
        if (await ctx.db.checkpoint.findUnique({ where: { id: ckId }, select: { id: true } })) return;
        await checkpoints.recordCheckpoint(ctx.db, {
          id: ckId, fineTuneId: id, phase: m.phase, epoch: m.epoch, batch: m.batch, valLoss: m.valLoss, valAccuracy: m.valAccuracy, storageKey: key, bytes: m.bytes, resumeKey,
        });
      }, { deadlineMs: left() });
      training.checkpointRecorded(m.zipPath);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'checkpoint not recorded; the job fails');
      training.checkpointFailed(m.zipPath, (err as Error).message.split('\n').at(-1) ?? 'unknown error');
      return;
    }
    // The cap: only a tidy-up (the next checkpoint tries again), never a reason to fail the job.
    await capJobCheckpoints(ctx.db, ctx.storage, id, ctx.maxCheckpointsPerJob ?? 0)
      .then((n) => n && log.debug({ removed: n }, 'checkpoints beyond the cap removed'))
      .catch((err: Error) => log.warn({ err: err.message }, 'checkpoints beyond the cap not removed yet'));
  };

  const training = runTraining({ ...start, ackTimeoutMs: ctx.checkpointDeadlineMs + 30_000 }, (m) => {
    // Each message waits for the one before it: a write that is being retried holds the rest, in order.
    const arrivedAt = Date.now();
    ctx.onTrainingMessage?.(id, m);
    chain = chain.then(async () => {
      await handle(m, arrivedAt);
      if (m.kind === 'event' || m.kind === 'epoch') ctx.notify?.(id);
    }).catch((err) => log.error({ err }, 'recording a training message failed'));
  }, { maxOldSpaceMb: ctx.maxOldSpaceMb, nice: ctx.trainerNice });
  ctx.running.set(id, training);
  if (ctx.leaving) {
    // Claimed while the worker was closing (the job was being prepared): back to the queue too.
    ctx.handingBack.add(id);
    training.handBack(ctx.leaving.killAfterMs);
  }
  const onAbort = () => training.cancel();
  signal?.addEventListener('abort', onAbort);
  log.info({ pid: training.pid, attempt: row.attempts + 1 }, 'training started');
  try {
    const end = await training.done;
    await chain;
    if (end.kind === 'succeeded') {
      const modelKey = `models/${id}/model.zip`;
      let committed = false;
      await persist(log, 'storing the model', async () => {
        if (!committed) await ctx.storage.commit(`${outKey}/model.zip`, modelKey);
        committed = true;
      });
      await rm(ctx.storage.path(outKey), { recursive: true, force: true });
      const ok = await persist(log, 'ending the job succeeded', () => transitions.succeed(ctx.db, id, { result: end.result, modelKey, modelBytes: end.modelZipBytes }));
      ctx.notify?.(id);
      log.info({ ok, valAccuracy: end.result.valAccuracy }, 'training succeeded');
      return 'succeeded';
    }
    await rm(ctx.storage.path(outKey), { recursive: true, force: true });
    if (ctx.handingBack.has(id)) {
      // Stopped because this worker is shutting down: the job goes back to `queued` for the next
      // worker; the caller releases it in BullMQ. Its checkpoints so far are kept.
      await persist(log, 're-queueing the job', () => transitions.requeue(ctx.db, id, { code: 'worker_shutdown', reason: 'its worker is shutting down; the next worker runs it' }));
      ctx.notify?.(id);
      log.info({ stoppedAs: end.kind }, 'job handed back to the queue');
      return HANDED_BACK;
    }
    if (end.kind === 'cancelled') {
      await persist(log, 'ending the job cancelled', () => transitions.cancel(ctx.db, id, { started: true }));
      ctx.notify?.(id);
      log.info('training cancelled');
      return 'cancelled';
    }
    if (ctx.shuttingDown) await fail(ctx, id, { code: 'worker_shutdown', message: 'The worker was stopped before the job finished; submit it again.' });
    else await fail(ctx, id, { code: end.code, message: end.message, ...(end.param ? { param: end.param } : {}) });
    log.warn({ code: end.code, message: end.message }, 'training failed');
    return 'failed';
  } finally {
    signal?.removeEventListener('abort', onAbort);
    ctx.running.delete(id);
  }
}

/**
 * The checkpoint a job resumes from: the latest recorded one with a resume state (any attempt's),
 * pulled to local disk; the progress its lost attempt reported after it is forgotten (it is
 * trained and reported again). Null when there is none (or its file is gone): the job starts over.
 */
async function resumeFrom(ctx: JobContext, held: Pulled[], id: string, log: Logger): Promise<StartMessage['resume']> {
  const ck = await persist(log, 'looking for a checkpoint to resume from', () => checkpoints.latestResumable(ctx.db, id));
  if (!ck?.resumeKey) return null;
  try {
    const pulled = await ctx.storage.pull(ck.resumeKey);
    held.push(pulled);
    await persist(log, 'forgetting progress after the checkpoint', () => fineTunes.forgetProgressAfter(ctx.db, id, { epoch: ck.epoch, batch: ck.batch }));
    log.info({ checkpoint: ck.id, phase: ck.phase, epoch: ck.epoch, batch: ck.batch }, 'resuming from a checkpoint');
    return { path: pulled.path, checkpointId: ck.id };
  } catch (err) {
    if (!(err instanceof StorageNotFound)) throw err;
    log.warn({ checkpoint: ck.id }, 'the resume state of the latest checkpoint is gone from storage; the job starts over');
    return null;
  }
}

/** Ends a job `failed`, retried until Postgres takes it (a failure that is not recorded would leave the job running). */
async function fail(ctx: JobContext, id: string, error: JobError): Promise<boolean> {
  const ok = await persist(ctx.log.child({ jobId: id }), 'ending the job failed', () => transitions.fail(ctx.db, id, error));
  ctx.notify?.(id);
  return ok;
}

export { fail as failJob };

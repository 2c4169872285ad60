/**
 * Runs one fine-tune job: claims it in Postgres (queued → running), trains in a child process,
 * records progress, epochs and events as they come, stores the model, and ends the job
 * succeeded, failed or cancelled. Postgres is the source of truth; BullMQ only carries the id.
 */
import { FineTuneJobData, jobErrorParam, newId, parseWith, type FineTuneSpec } from '@graft/contracts';
import { baseLookups, checkpoints, datasets, events, fineTunes, metrics, type Db } from '@graft/db';
import { resolveBase } from '@graft/engine/resolve-base';
import { StorageNotFound, type Pulled, type Storage } from '@graft/storage';
import type { ResolvedBase } from '@graft/engine/catalog';
import { rm } from 'node:fs/promises';
import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { ChildMessage } from './trainer/messages.ts';
import { runTraining, type TrainingRun } from './trainer/run-training.ts';

export interface JobContext {
  db: Db;
  storage: Storage;
  /** Called when a job starts and ends (the worker's registry entry and metrics follow it). */
  onJob?: (id: string, state: 'started' | 'ended', info?: { status: string; backend?: string; seconds: number }) => void;
  log: Logger;
  maxOldSpaceMb: number;
  /** Running trainings by fine-tune id, so cancel requests can reach them. */
  running: Map<string, TrainingRun>;
  /** Set when the worker stops its trainings on shutdown. */
  shuttingDown: boolean;
  /** Called after each write to a job's live feed (events, progress, metrics), once it is committed. */
  notify?: (fineTuneId: string) => void;
}

/** Progress rows are written at most this often (a batch can take under a millisecond). */
const PROGRESS_EVERY_MS = 500;

export async function processFineTune(ctx: JobContext, job: Job<FineTuneJobData>, signal?: AbortSignal): Promise<string> {
  const { fineTuneId: id } = parseWith(FineTuneJobData, job.data, 'job');
  const log = ctx.log.child({ jobId: id });
  const row = await fineTunes.getFineTune(ctx.db, id);
  if (!row) {
    log.warn('job has no row in the database; dropped');
    return 'missing';
  }
  if (row.cancelRequestedAt && (row.status === 'queued' || row.status === 'running')) {
    await fineTunes.transition(ctx.db, id, ['queued', 'running'], 'cancelled', { finishedAt: new Date() }, {
      level: 'info', type: 'status', message: 'Job cancelled before it started', data: { status: 'cancelled' },
    });
    ctx.notify?.(id);
    return 'cancelled';
  }
  const restarted = row.status === 'running'; // a worker died mid-job; BullMQ handed it to us
  const claimed = await fineTunes.transition(ctx.db, id, ['queued', 'running'], 'running', { startedAt: new Date(), attempts: { increment: 1 }, epoch: 0, batch: 0 }, {
    level: restarted ? 'warning' : 'info',
    type: 'status',
    message: restarted ? 'Job restarted from the beginning: the worker running it was lost (its checkpoints so far are kept)' : 'Job started',
    data: { status: 'running', worker: job.processedBy ?? null },
  });
  if (!claimed) {
    log.info({ status: row.status }, 'job is no longer runnable; skipped');
    return row.status;
  }
  ctx.notify?.(id);
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
async function pullDataset(ctx: JobContext, held: Pulled[], datasetId: string): Promise<string | null> {
  const dataset = await datasets.getDataset(ctx.db, datasetId);
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
async function pullBase(ctx: JobContext, held: Pulled[], baseModelId: string): Promise<{ ok: true; base: ResolvedBase } | { ok: false; message: string }> {
  const keys = new Map<string, string>();
  const resolved = await resolveBase(baseModelId, baseLookups(ctx.db, (k) => {
    const p = ctx.storage.path(k);
    keys.set(p, k);
    return p;
  }));
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
  const datasetPath = await pullDataset(ctx, held, row.datasetId);
  if (datasetPath === null) {
    await fail(ctx, id, 'dataset_missing', `The archive of dataset ${row.datasetId} is no longer in storage; upload it again and start a new job.`);
    return 'failed';
  }
  let testDatasetPath: string | null = null;
  if (spec.testDataset) {
    testDatasetPath = await pullDataset(ctx, held, spec.testDataset);
    if (testDatasetPath === null) {
      await fail(ctx, id, 'dataset_missing', `The archive of test dataset ${spec.testDataset} is no longer in storage; upload it again and start a new job.`, 'testDataset');
      return 'failed';
    }
  }
  const resolved = await pullBase(ctx, held, row.baseModelId);
  if (!resolved.ok) {
    await fail(ctx, id, 'base_model_unavailable', resolved.message);
    return 'failed';
  }

  const outKey = `jobs/${id}/attempt-${row.attempts + 1}`;
  const start = {
    kind: 'start' as const,
    fineTuneId: id,
    base: resolved.base,
    datasetPath,
    testDatasetPath,
    outDir: ctx.storage.path(outKey),
    cacheDir: ctx.storage.path('cache'),
    spec,
  };

  // Messages are handled strictly in order (events must be stored in the order they happened).
  let chain = Promise.resolve();
  let lastProgress = 0;
  let lastCancelCheck = Date.now();
  const handle = async (m: ChildMessage) => {
    if (m.kind === 'event') {
      await events.appendEvent(ctx.db, { fineTuneId: id, level: m.level, type: m.type, message: m.message, data: m.data ?? null });
    } else if (m.kind === 'batch') {
      const now = Date.now();
      if (now - lastProgress >= PROGRESS_EVERY_MS || m.batch === m.batches) {
        lastProgress = now;
        const progress = { phase: m.phase, epoch: m.epoch, epochs: m.epochs, batch: m.batch, batches: m.batches };
        if (await fineTunes.recordProgress(ctx.db, id, progress)) ctx.notify?.(id);
        await job.updateProgress(progress).catch(() => {});
      }
      // Belt and braces for a lost pub/sub message: look at the row every few seconds.
      if (now - lastCancelCheck > 3_000) {
        lastCancelCheck = now;
        const current = await fineTunes.getFineTune(ctx.db, id);
        if (current?.cancelRequestedAt) ctx.running.get(id)?.cancel();
      }
    } else if (m.kind === 'checkpoint') {
      const ckId = newId('checkpoint');
      const key = `models/${id}/checkpoints/${ckId}.zip`;
      await ctx.storage.commit(ctx.storage.keyOf(m.zipPath), key);
      await checkpoints.recordCheckpoint(ctx.db, {
        id: ckId, fineTuneId: id, phase: m.phase, epoch: m.epoch, batch: m.batch, valLoss: m.valLoss, valAccuracy: m.valAccuracy, storageKey: key, bytes: m.bytes,
      });
      training.checkpointRecorded(m.zipPath);
    } else if (m.kind === 'epoch' && m.phase === 'baseline') {
      // The from-scratch comparison has epochs of its own; they are reported, not mixed into the job's metrics.
      const { kind: _kind, ...metric } = m;
      await events.appendEvent(ctx.db, {
        fineTuneId: id, level: 'info', type: 'baseline_epoch',
        message: `Baseline (from scratch) epoch ${m.epoch}: loss ${m.loss.toFixed(4)}, val_accuracy ${m.valAccuracy === null ? 'n/a' : m.valAccuracy.toFixed(4)}`,
        data: metric,
      });
    } else if (m.kind === 'epoch') {
      const { kind: _kind, ...metric } = m;
      const saved = await metrics.recordMetric(ctx.db, { fineTuneId: id, ...metric });
      await fineTunes.updateRunning(ctx.db, id, { epoch: m.epoch, latestMetrics: { ...metric, createdAt: saved.createdAt.toISOString() } });
      const fmt = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
      await events.appendEvent(ctx.db, {
        fineTuneId: id, level: 'info', type: 'epoch',
        message: `Epoch ${m.epoch}: loss ${fmt(m.loss)}, accuracy ${fmt(m.accuracy)}, val_loss ${fmt(m.valLoss)}, val_accuracy ${fmt(m.valAccuracy)}`,
        data: metric,
      });
    }
  };

  const training = runTraining(start, (m) => {
    chain = chain.then(async () => {
      await handle(m);
      if (m.kind === 'event' || m.kind === 'epoch') ctx.notify?.(id);
    }).catch((err) => log.error({ err }, 'recording a training message failed'));
  }, { maxOldSpaceMb: ctx.maxOldSpaceMb });
  ctx.running.set(id, training);
  const onAbort = () => training.cancel();
  signal?.addEventListener('abort', onAbort);
  log.info({ pid: training.pid, attempt: row.attempts + 1 }, 'training started');
  try {
    const end = await training.done;
    await chain;
    if (end.kind === 'succeeded') {
      const modelKey = `models/${id}/model.zip`;
      await ctx.storage.commit(`${outKey}/model.zip`, modelKey);
      await rm(ctx.storage.path(outKey), { recursive: true, force: true });
      const acc = end.result.valAccuracy;
      const ok = await fineTunes.transition(ctx.db, id, ['running'], 'succeeded', {
        finishedAt: new Date(), result: end.result, modelKey, modelBytes: BigInt(end.modelZipBytes), batch: 0, phase: 'done',
      }, {
        level: 'info', type: 'status',
        message: `Job succeeded${acc === null ? '' : `: validation accuracy ${(acc * 100).toFixed(1)}%`}`,
        data: { status: 'succeeded', valAccuracy: acc },
      });
      ctx.notify?.(id);
      log.info({ ok, valAccuracy: acc }, 'training succeeded');
      return 'succeeded';
    }
    await rm(ctx.storage.path(outKey), { recursive: true, force: true });
    if (end.kind === 'cancelled') {
      await fineTunes.transition(ctx.db, id, ['running'], 'cancelled', { finishedAt: new Date() }, {
        level: 'info', type: 'status', message: 'Job cancelled; events and metrics so far are kept', data: { status: 'cancelled' },
      });
      ctx.notify?.(id);
      log.info('training cancelled');
      return 'cancelled';
    }
    if (ctx.shuttingDown) await fail(ctx, id, 'worker_shutdown', 'The worker was stopped before the job finished; submit it again.');
    else await fail(ctx, id, end.code, end.message, end.param);
    log.warn({ code: end.code, message: end.message }, 'training failed');
    return 'failed';
  } finally {
    signal?.removeEventListener('abort', onAbort);
    ctx.running.delete(id);
  }
}

/** Ends a job `failed`; `param` (default: the field its code points at) names the request field at fault. */
async function fail(ctx: JobContext, id: string, code: string, message: string, param = jobErrorParam(code)) {
  const error = { code, message, ...(param ? { param } : {}) };
  await fineTunes.transition(ctx.db, id, ['running', 'queued'], 'failed', { finishedAt: new Date(), error }, {
    level: 'error', type: 'status', message: `Job failed: ${message}`, data: { status: 'failed', code },
  });
  ctx.notify?.(id);
}

export { fail as failJob };

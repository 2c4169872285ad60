/**
 * Every move of a job between states, by name. Each owns its starting states, its patch and its
 * event; it is one guarded UPDATE plus the event row in one transaction (`fineTunes.transition`),
 * so a move that does not apply (the job already moved on) writes nothing and answers false.
 * Callers never pick states by hand.
 */
import { jobErrorParam, type FineTuneResult } from '@graft/contracts';
import type { Db } from './client.ts';
import { transition } from './fine-tunes.ts';

export interface JobError {
  code: string;
  message: string;
  param?: string;
}

/** queued (or running, when a lost or stopped worker handed it back) → running. */
export function claim(db: Db, id: string, o: { worker: string | null; restarted: boolean }) {
  return transition(db, id, ['queued', 'running'], 'running', { startedAt: new Date(), attempts: { increment: 1 }, epoch: 0, batch: 0 }, {
    level: o.restarted ? 'warning' : 'info',
    type: 'status',
    message: o.restarted ? 'Job restarted from the beginning: the worker running it was lost (its checkpoints so far are kept)' : 'Job started',
    data: { status: 'running', worker: o.worker },
  });
}

export function succeed(db: Db, id: string, o: { result: FineTuneResult; modelKey: string; modelBytes: number }) {
  const acc = o.result.valAccuracy;
  return transition(db, id, ['running'], 'succeeded', {
    finishedAt: new Date(), result: o.result, modelKey: o.modelKey, modelBytes: BigInt(o.modelBytes), batch: 0, phase: 'done',
  }, {
    level: 'info', type: 'status',
    message: `Job succeeded${acc === null ? '' : `: validation accuracy ${(acc * 100).toFixed(1)}%`}`,
    data: { status: 'succeeded', valAccuracy: acc },
  });
}

/** Ends a job `failed`; `param` (default: the field its code points at) names the request field at fault. */
export function fail(db: Db, id: string, e: JobError) {
  const param = e.param ?? jobErrorParam(e.code);
  const error = { code: e.code, message: e.message, ...(param ? { param } : {}) };
  return transition(db, id, ['running', 'queued'], 'failed', { finishedAt: new Date(), error }, {
    level: 'error', type: 'status', message: `Job failed: ${e.message}`, data: { status: 'failed', code: e.code },
  });
}

export function cancel(db: Db, id: string, o: { started: boolean; message?: string }) {
  const now = new Date();
  return transition(db, id, ['queued', 'running'], 'cancelled', { finishedAt: now }, {
    level: 'info',
    type: 'status',
    message: o.message ?? (o.started ? 'Job cancelled; events and metrics so far are kept' : 'Job cancelled before it started'),
    data: { status: 'cancelled' },
  });
}

/** A queued job cancelled by its user before any worker took it (also records when it was asked). */
export function cancelQueued(db: Db, id: string) {
  const now = new Date();
  return transition(db, id, ['queued'], 'cancelled', { finishedAt: now, cancelRequestedAt: now }, {
    level: 'info', type: 'status', message: 'Job cancelled before it started', data: { status: 'cancelled' },
  });
}

/** running → queued: its worker was lost or stopped; the job waits for the next one. */
export function requeue(db: Db, id: string, o: { reason: string; code: 'worker_lost' | 'worker_shutdown' }) {
  return transition(db, id, ['running'], 'queued', { batch: 0 }, {
    level: 'warning', type: 'status', message: `Job re-queued: ${o.reason}`, data: { status: 'queued', code: o.code },
  });
}

import { newId } from '@graft/contracts';
import type { Db } from './client.ts';

export interface NewCheckpoint {
  fineTuneId: string;
  phase: string;
  epoch: number;
  batch: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
  storageKey: string;
  bytes: number;
  /** The resume state's storage key (null: the checkpoint cannot be resumed from). */
  resumeKey?: string | null;
}

/**
 * Inserts a checkpoint. The best is decided here, over every checkpoint of the job (also those of an
 * earlier attempt that a lost worker left): the lowest validation loss; a checkpoint without one is
 * never best. `isBest` from the trainer is only a hint about its own attempt.
 */
export async function recordCheckpoint(db: Db, c: Omit<NewCheckpoint, 'isBest'> & { id?: string }) {
  return db.$transaction(async (tx) => {
    const better = c.valLoss === null ? 1 : await tx.checkpoint.count({ where: { fineTuneId: c.fineTuneId, valLoss: { lte: c.valLoss } } });
    const isBest = better === 0;
    if (isBest) await tx.checkpoint.updateMany({ where: { fineTuneId: c.fineTuneId, isBest: true }, data: { isBest: false } });
    return tx.checkpoint.create({ data: { ...c, isBest, id: c.id ?? newId('checkpoint'), bytes: BigInt(c.bytes) } });
  });
}

export function listCheckpoints(db: Db, fineTuneId: string) {
  return db.checkpoint.findMany({ where: { fineTuneId }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
}

/** The checkpoint a job resumes from: its latest one that has a resume state, or null. */
export function latestResumable(db: Db, fineTuneId: string) {
  return db.checkpoint.findFirst({ where: { fineTuneId, resumeKey: { not: null } }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
}

export function getCheckpoint(db: Db, fineTuneId: string, id: string) {
  return db.checkpoint.findFirst({ where: { id, fineTuneId } });
}

/** A checkpoint chosen for pruning: its row id and the stored file(s) to remove with it. */
export interface PrunableCheckpoint {
  id: string;
  fineTuneId: string;
  storageKey: string;
}

/**
 * Checkpoints of jobs that ended (succeeded, failed, cancelled) before `endedBefore`, every one but
 * the job's best (`is_best`) and its last (newest by creation, then id): what retention removes.
 * At most `limit` per call, oldest jobs first, so a long backlog is worked through in bounded passes.
 */
export function prunableOfEndedJobs(db: Db, endedBefore: Date, limit = 500): Promise<PrunableCheckpoint[]> {
  return db.$queryRaw<PrunableCheckpoint[]>`
    SELECT c.id, c.fine_tune_id AS "fineTuneId", c.storage_key AS "storageKey"
    FROM checkpoints c JOIN fine_tunes f ON f.id = c.fine_tune_id
    WHERE f.status IN ('succeeded', 'failed', 'cancelled') AND f.finished_at < ${endedBefore}
      AND NOT c.is_best
      AND c.id <> (SELECT l.id FROM checkpoints l WHERE l.fine_tune_id = c.fine_tune_id ORDER BY l.created_at DESC, l.id DESC LIMIT 1)
    ORDER BY f.finished_at, c.created_at
    LIMIT ${limit}`;
}

/**
 * A job's checkpoints beyond `keep` (rolling): every one but the best and the newest `keep - 1`
 * (with no best, the newest `keep`). What the per-job cap removes while the job runs.
 */
export async function prunableBeyondCap(db: Db, fineTuneId: string, keep: number): Promise<PrunableCheckpoint[]> {
  const rows = await db.checkpoint.findMany({
    where: { fineTuneId },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    select: { id: true, fineTuneId: true, storageKey: true, isBest: true },
  });
  if (rows.length <= keep) return [];
  const best = rows.find((r) => r.isBest);
  const recent = rows.filter((r) => r !== best).slice(0, best ? keep - 1 : keep);
  const kept = new Set([best, ...recent].filter(Boolean).map((r) => r!.id));
  return rows.filter((r) => !kept.has(r.id)).map(({ id, fineTuneId: f, storageKey }) => ({ id, fineTuneId: f, storageKey }));
}

/**
 * Kept checkpoints of jobs that ended before `endedBefore` that still have a resume state: an
 * ended job never resumes, so retention removes those states (their files, then the key).
 */
export function resumeStatesOfEndedJobs(db: Db, endedBefore: Date, limit = 500): Promise<{ id: string; resumeKey: string }[]> {
  return db.$queryRaw<{ id: string; resumeKey: string }[]>`
    SELECT c.id, c.resume_key AS "resumeKey"
    FROM checkpoints c JOIN fine_tunes f ON f.id = c.fine_tune_id
    WHERE f.status IN ('succeeded', 'failed', 'cancelled') AND f.finished_at < ${endedBefore} AND c.resume_key IS NOT NULL
    LIMIT ${limit}`;
}

/** Forgets the resume states of these checkpoints (their files are removed first); returns how many had one. */
export async function clearResumeKeys(db: Db, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  return (await db.checkpoint.updateMany({ where: { id: { in: [...ids] }, resumeKey: { not: null } }, data: { resumeKey: null } })).count;
}

/** Deletes checkpoint rows; returns how many were still there. */
export async function deleteCheckpoints(db: Db, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  return (await db.checkpoint.deleteMany({ where: { id: { in: [...ids] } } })).count;
}

/**
 * Checkpoint retention. Two rules, both keeping the job's best (lowest validation loss) and its
 * last checkpoint:
 * - per job while it runs: beyond `MAX_CHECKPOINTS_PER_JOB`, the oldest others go (rolling), so a
 *   job with `checkpointEvery: 1` never holds more than the cap;
 * - after a job ended (succeeded, failed, cancelled) for `CHECKPOINT_RETENTION_MS`: every other one
 *   goes, and the kept two lose their resume states (an ended job never resumes), by a scheduled
 *   task shared by every worker (one run at a time).
 * Files go first, then rows: a run that dies half-way leaves rows whose files are gone, which the
 * next run finds again and finishes (removing a missing file is a no-op). Nothing is orphaned.
 */
import { checkpoints, type Db } from '@graft/db';
import type { Storage } from '@graft/storage';

export interface RetentionLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** The stored files of a checkpoint: its zip, its resume state and, for a head checkpoint, the complete model assembled on first download. */
export const checkpointFiles = (storageKey: string): string[] => [storageKey, storageKey.replace(/\.zip$/, '.resume'), storageKey.replace(/\.zip$/, '.model.zip')];

/** Removes the checkpoints' files, then their rows. Returns the rows deleted. */
export async function removeCheckpoints(db: Db, storage: Storage, rows: readonly checkpoints.PrunableCheckpoint[]): Promise<number> {
  for (const row of rows) for (const key of new Set(checkpointFiles(row.storageKey))) await storage.remove(key);
  return checkpoints.deleteCheckpoints(db, rows.map((r) => r.id));
}

/** The per-job cap: prunes the job down to `keep` (0: no cap). */
export async function capJobCheckpoints(db: Db, storage: Storage, fineTuneId: string, keep: number): Promise<number> {
  if (keep <= 0) return 0;
  return removeCheckpoints(db, storage, await checkpoints.prunableBeyondCap(db, fineTuneId, keep));
}

/**
 * One retention pass over jobs that ended more than `retentionMs` ago: every checkpoint but the
 * best and the last goes, and the kept ones lose their resume state (an ended job never resumes).
 * In batches until none is left.
 */
export async function pruneEndedJobs(db: Db, storage: Storage, retentionMs: number, opts: { batch?: number; now?: Date } = {}): Promise<{ checkpoints: number; jobs: number; resumeStates: number }> {
  const endedBefore = new Date((opts.now ?? new Date()).getTime() - retentionMs);
  const jobs = new Set<string>();
  let removed = 0;
  for (;;) {
    const rows = await checkpoints.prunableOfEndedJobs(db, endedBefore, opts.batch ?? 500);
    if (rows.length === 0) break;
    for (const r of rows) jobs.add(r.fineTuneId);
    const n = await removeCheckpoints(db, storage, rows);
    removed += n;
    // Another run took these rows at the same time: stop rather than spin on them.
    if (n === 0) break;
  }
  let resumeStates = 0;
  for (;;) {
    const rows = await checkpoints.resumeStatesOfEndedJobs(db, endedBefore, opts.batch ?? 500);
    if (rows.length === 0) break;
    for (const r of rows) await storage.remove(r.resumeKey);
    const n = await checkpoints.clearResumeKeys(db, rows.map((r) => r.id));
    resumeStates += n;
    if (n === 0) break;
  }
  return { checkpoints: removed, jobs: jobs.size, resumeStates };
}

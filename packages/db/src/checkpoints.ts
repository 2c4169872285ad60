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

export function getCheckpoint(db: Db, fineTuneId: string, id: string) {
  return db.checkpoint.findFirst({ where: { id, fineTuneId } });
}

import { newId } from '@graft/contracts';
import type { Db } from './client.ts';

export interface NewCheckpoint {
  fineTuneId: string;
  phase: string;
  epoch: number;
  batch: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
  isBest: boolean;
  storageKey: string;
  bytes: number;
}

/** Inserts a checkpoint; when it is the best so far, it becomes the only one marked best. */
export async function recordCheckpoint(db: Db, c: NewCheckpoint & { id?: string }) {
  return db.$transaction(async (tx) => {
    if (c.isBest) await tx.checkpoint.updateMany({ where: { fineTuneId: c.fineTuneId, isBest: true }, data: { isBest: false } });
    return tx.checkpoint.create({ data: { ...c, id: c.id ?? newId('checkpoint'), bytes: BigInt(c.bytes) } });
  });
}

export function listCheckpoints(db: Db, fineTuneId: string) {
  return db.checkpoint.findMany({ where: { fineTuneId }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
}

export function getCheckpoint(db: Db, fineTuneId: string, id: string) {
  return db.checkpoint.findFirst({ where: { id, fineTuneId } });
}

/** A restarted job starts over: its earlier checkpoints are dropped (the files too, by the caller). */
export async function deleteCheckpoints(db: Db, fineTuneId: string) {
  const rows = await db.checkpoint.findMany({ where: { fineTuneId }, select: { storageKey: true } });
  await db.checkpoint.deleteMany({ where: { fineTuneId } });
  return rows.map((r) => r.storageKey);
}

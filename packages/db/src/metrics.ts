import type { Db } from './client.ts';
import type { Metric } from './generated/prisma/client.ts';

export interface NewMetric {
  fineTuneId: string;
  epoch: number;
  phase: string;
  loss: number;
  accuracy: number;
  valLoss: number | null;
  valAccuracy: number | null;
  durationMs: number;
}

/**
 * Idempotent per (job, epoch): a job restarted after a worker loss overwrites its own rows. An
 * overwritten row takes a new place in the job's live feed (`seq`), so watchers see it again.
 */
export async function recordMetric(db: Db, m: NewMetric): Promise<Metric> {
  const rows = await db.$queryRaw<{ created_at: Date; seq: bigint }[]>`
    INSERT INTO metrics (fine_tune_id, epoch, phase, loss, accuracy, val_loss, val_accuracy, duration_ms)
    VALUES (${m.fineTuneId}, ${m.epoch}, ${m.phase}, ${m.loss}, ${m.accuracy}, ${m.valLoss}, ${m.valAccuracy}, ${m.durationMs})
    ON CONFLICT (fine_tune_id, epoch) DO UPDATE SET
      phase = EXCLUDED.phase, loss = EXCLUDED.loss, accuracy = EXCLUDED.accuracy, val_loss = EXCLUDED.val_loss,
      val_accuracy = EXCLUDED.val_accuracy, duration_ms = EXCLUDED.duration_ms, seq = nextval('events_seq_seq'::regclass)
    RETURNING created_at, seq`;
  const row = rows[0]!;
  return { ...m, createdAt: row.created_at, seq: row.seq };
}

export function listMetrics(db: Db, fineTuneId: string) {
  return db.metric.findMany({ where: { fineTuneId }, orderBy: { epoch: 'asc' } });
}

import type { Db } from './client.ts';

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

/** Idempotent per (job, epoch): a job restarted after a worker loss overwrites its own rows. */
export function recordMetric(db: Db, m: NewMetric) {
  const { fineTuneId, epoch, ...rest } = m;
  return db.metric.upsert({
    where: { fineTuneId_epoch: { fineTuneId, epoch } },
    create: m,
    update: rest,
  });
}

export function listMetrics(db: Db, fineTuneId: string) {
  return db.metric.findMany({ where: { fineTuneId }, orderBy: { epoch: 'asc' } });
}

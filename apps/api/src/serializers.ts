/** Database rows → the public shapes of contracts (times as ISO strings, sizes as numbers). */
import { WEBHOOK_EVENT_TYPES, type WebhookDelivery, type WebhookEventType } from '@graft/contracts';
import type { BaseModel, Checkpoint, Dataset, EpochMetrics, FineTune, FineTuneEvent, FineTuneProgress, FineTuneSpec, Resources, TextDataset } from '@graft/contracts';
import { userBaseToModel, type CheckpointRow, type DatasetRow, type EventRow, type FineTuneRow, type MetricRow, type ProgressRow, type UserBaseRow, type WebhookAttemptRow, type WebhookDeliveryRow } from '@graft/db';

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const SKIPPED_LISTED = 100;

/** What a text dataset keeps in its `stats` column: the parts of its answer that are not common to every dataset. */
export type StoredTextStats = Pick<TextDataset, 'format' | 'rowCount' | 'textStats' | 'duplicates' | 'invalidRows' | 'invalidRowCount' | 'invalidShare' | 'maxInvalidShare'>;

function balanceOf(counts: number[]) {
  const ratio = Math.max(...counts) / Math.max(1, Math.min(...counts));
  return { imbalanceRatio: Math.round(ratio * 1000) / 1000, imbalanced: ratio > 3 };
}

export function datasetOut(row: DatasetRow): Dataset {
  const common = { id: row.id, object: 'dataset' as const, name: row.name, bytes: Number(row.bytes), sha256: row.sha256 };
  if (row.task === 'text-classification') {
    const classes = row.classes as { name: string; rows: number }[];
    const stats = row.stats as StoredTextStats;
    return {
      ...common,
      task: 'text-classification',
      format: stats.format,
      rowCount: stats.rowCount,
      classes: classes.map((c, index) => ({ name: c.name, index, rows: c.rows, share: c.rows / stats.rowCount })),
      balance: balanceOf(classes.map((c) => c.rows)),
      textStats: stats.textStats,
      duplicates: stats.duplicates,
      invalidRows: stats.invalidRows.slice(0, SKIPPED_LISTED),
      invalidRowCount: stats.invalidRowCount,
      invalidShare: stats.invalidShare,
      maxInvalidShare: stats.maxInvalidShare,
      createdAt: row.createdAt.toISOString(),
    };
  }
  const classes = row.classes as { name: string; images: number }[];
  const skipped = row.skipped as { path: string; reason: string }[];
  return {
    ...common,
    task: 'image-classification',
    imageCount: row.imageCount,
    classes: classes.map((c, index) => ({ name: c.name, index, images: c.images, share: c.images / row.imageCount })),
    balance: balanceOf(classes.map((c) => c.images)),
    skipped: skipped.slice(0, SKIPPED_LISTED),
    skippedCount: skipped.length,
    createdAt: row.createdAt.toISOString(),
  };
}

export function metricOut(row: Omit<MetricRow, 'fineTuneId'>): EpochMetrics {
  return {
    epoch: row.epoch,
    phase: row.phase,
    loss: row.loss,
    accuracy: row.accuracy,
    valLoss: row.valLoss,
    valAccuracy: row.valAccuracy,
    durationMs: row.durationMs,
    createdAt: row.createdAt.toISOString(),
  };
}

export function progressOut(row: ProgressRow): FineTuneProgress {
  return { phase: row.phase, epoch: row.epoch, epochs: row.epochs, batch: row.batch, batches: row.batches, createdAt: row.createdAt.toISOString() };
}

export function fineTuneOut(row: FineTuneRow): FineTune {
  const spec = row.request as FineTuneSpec;
  const latest = row.latestMetrics as (Omit<EpochMetrics, 'createdAt'> & { createdAt: string }) | null;
  return {
    id: row.id,
    object: 'fine_tune',
    status: row.status,
    baseModel: row.baseModelId,
    dataset: row.datasetId,
    testDataset: spec.testDataset,
    validationSplit: spec.validationSplit,
    hyperparameters: spec.hyperparameters,
    cutLayer: spec.cutLayer,
    trainableLayers: spec.trainableLayers,
    earlyStopping: spec.earlyStopping,
    classWeights: spec.classWeights,
    augmentation: spec.augmentation,
    baseline: spec.baseline,
    checkpointEvery: spec.checkpointEvery,
    topK: spec.topK,
    seed: spec.seed,
    metadata: spec.metadata,
    // Jobs created before graft recorded resources ran anywhere, unchecked.
    resources: (row.resources as Resources | null) ?? { gpu: 'any', memoryMB: null, estimated: false },
    progress: { phase: row.phase, epoch: row.epoch, epochs: row.epochs, batch: row.batch, batches: row.batches },
    metrics: latest,
    result: (row.result as FineTune['result']) ?? null,
    error: (row.error as FineTune['error']) ?? null,
    model: row.status === 'succeeded' && row.modelKey ? { url: `/v1/fine-tunes/${row.id}/model`, bytes: Number(row.modelBytes ?? 0) } : null,
    createdAt: row.createdAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    cancelRequestedAt: iso(row.cancelRequestedAt),
    webhook: row.webhookUrl ? { url: row.webhookUrl, events: (row.webhookEvents as WebhookEventType[] | null) ?? [...WEBHOOK_EVENT_TYPES] } : null,
  };
}

export function eventOut(row: EventRow): FineTuneEvent {
  return {
    id: row.id,
    level: row.level,
    type: row.type,
    message: row.message,
    data: (row.data as Record<string, unknown> | null) ?? null,
    createdAt: row.createdAt.toISOString(),
  };
}

export function checkpointOut(row: CheckpointRow): Checkpoint {
  return {
    id: row.id,
    object: 'checkpoint',
    fineTune: row.fineTuneId,
    phase: row.phase,
    epoch: row.epoch,
    batch: row.batch,
    valLoss: row.valLoss,
    valAccuracy: row.valAccuracy,
    isBest: row.isBest,
    bytes: Number(row.bytes),
    url: `/v1/fine-tunes/${row.fineTuneId}/checkpoints/${row.id}/model`,
    createdAt: row.createdAt.toISOString(),
  };
}

export const userBaseOut = (row: UserBaseRow): BaseModel => userBaseToModel(row);

export function deliveryOut(row: WebhookDeliveryRow & { attempts: WebhookAttemptRow[] }): WebhookDelivery {
  return {
    id: row.id,
    object: 'webhook_delivery',
    fineTune: row.fineTuneId,
    endpoint: row.endpointId,
    url: row.url,
    type: row.type as WebhookEventType,
    event: row.eventId,
    status: row.status as WebhookDelivery['status'],
    attempts: row.attempts.map((a) => ({ attempt: a.attempt, at: a.createdAt.toISOString(), responseStatus: a.responseStatus, error: a.error, durationMs: a.durationMs })),
    nextAttemptAt: iso(row.nextAttemptAt),
    createdAt: row.createdAt.toISOString(),
  };
}

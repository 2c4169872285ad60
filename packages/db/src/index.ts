export { createDb, type Db } from './client.ts';
export * as datasets from './datasets.ts';
export * as fineTunes from './fine-tunes.ts';
export * as events from './events.ts';
export * as metrics from './metrics.ts';
export { migrate, ensureDatabase, dropDatabase } from './migrate.ts';
export type { Dataset as DatasetRow, FineTune as FineTuneRow, Event as EventRow, Metric as MetricRow } from './generated/prisma/client.ts';

/**
 * The shapes the client sends and receives: every one is the static type of a schema in
 * `@graft/contracts` (imported as types only, so the client carries no runtime dependency).
 */
import type { Static } from 'typebox';
import type {
  BaseModelDeleted,
  CreateBaseModelSpec,
  DatasetDeleted,
  FineTuneDeleted,
  Task,
  WebhookEndpointDeleted,
  Worker,
} from '@graft/contracts';

export type {
  BaseModel,
  Checkpoint,
  CreateBaseModelSpec,
  CreateFineTuneBody,
  Dataset,
  DatasetSample,
  EpochMetrics,
  ErrorCode,
  Evaluation,
  FineTune,
  FineTuneEvent,
  FineTuneResult,
  FineTuneStatus,
  ImageDataset,
  JobError,
  Prediction,
  PredictionList,
  StreamMessage,
  FineTuneProgress,
  TextDataset,
  CreateWebhookEndpointBody,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookEndpointCreated,
  WorkerJob,
} from '@graft/contracts';

/** A live worker (`GET /v1/workers`); named apart from the global `Worker` of threads. */
export type GraftWorker = Worker;

/** `{ data, hasMore, nextCursor }`: every list. */
export interface Page<T> {
  data: T[];
  hasMore: boolean;
  /** Pass as `after` for the next page; null on the last. */
  nextCursor: string | null;
}

export interface PageParams {
  /** 1–100, default 20. */
  limit?: number;
  /** `nextCursor` of the previous page. */
  after?: string;
}

export type DatasetDeleted = Static<typeof DatasetDeleted>;
export type BaseModelDeleted = Static<typeof BaseModelDeleted>;
export type FineTuneDeleted = Static<typeof FineTuneDeleted>;
export type WebhookEndpointDeleted = Static<typeof WebhookEndpointDeleted>;

/** File contents as the runtime has them: a Blob (a browser File, Node's `fs.openAsBlob`), bytes or a buffer. */
export type FileData = Blob | Uint8Array | ArrayBuffer;

export interface UploadDatasetParams {
  file: FileData;
  /** The file's name (its extension helps text detection). Default: the Blob's name, else `dataset.zip`. */
  filename?: string;
  task: Static<typeof Task>;
  name?: string;
  /** Text only: the share of invalid rows that may be skipped (default 0: any refuses the upload). */
  maxInvalidShare?: number;
  /** Text only: the base whose tokenizer counts tokens. */
  baseModel?: string;
}

export type RegisterBaseModelParams =
  /** A model zip (tfjs model.json + shards, or an ONNX text encoder folder) and what it is. */
  | { file: FileData; filename?: string; spec: Omit<CreateBaseModelSpec, 'url'> }
  /** A hosted model by URL, fetched once by the API. */
  | (CreateBaseModelSpec & { url: string });

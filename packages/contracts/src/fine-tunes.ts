import { Type, type Static } from 'typebox';
import { Literals, NullableTimestamp, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, Page, Timestamp } from './common.ts';

export const FINE_TUNE_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type FineTuneStatus = (typeof FINE_TUNE_STATUSES)[number];
export const FineTuneStatus = Literals(FINE_TUNE_STATUSES);
export const TERMINAL_STATUSES: readonly FineTuneStatus[] = ['succeeded', 'failed', 'cancelled'];

/** Defaults follow the Keras transfer-learning guide for a frozen base with a new head. */
export const HYPERPARAMETER_DEFAULTS = { epochs: 10, batchSize: 32, learningRate: 0.001 } as const;
export const VALIDATION_SPLIT_DEFAULT = 0.2;

export const Hyperparameters = Type.Object(
  {
    epochs: Type.Integer({ minimum: 1, maximum: 500, default: HYPERPARAMETER_DEFAULTS.epochs }),
    batchSize: Type.Integer({ minimum: 1, maximum: 512, default: HYPERPARAMETER_DEFAULTS.batchSize }),
    learningRate: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: HYPERPARAMETER_DEFAULTS.learningRate }),
  },
  { additionalProperties: false },
);
export type Hyperparameters = Static<typeof Hyperparameters>;

/** Free-form tags, as Stripe and OpenAI take them: at most 16 keys, short strings. */
export const Metadata = Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.String({ maxLength: 512 }), {
  maxProperties: 16,
});

export const CreateFineTuneBody = Type.Object(
  {
    baseModel: Type.String({ minLength: 1, maxLength: 80, description: 'A base model id (`GET /v1/base-models`).' }),
    dataset: Type.String({ minLength: 1, maxLength: 80, description: 'A dataset id (`POST /v1/datasets`).' }),
    validationSplit: Type.Number({
      minimum: 0.05,
      maximum: 0.5,
      default: VALIDATION_SPLIT_DEFAULT,
      description: 'Fraction of each class held out for validation (stratified).',
    }),
    hyperparameters: Type.Optional(Type.Partial(Hyperparameters, { additionalProperties: false })),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, description: 'Same seed + data + backend → same split and metrics.' })),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false },
);
export type CreateFineTuneBody = Static<typeof CreateFineTuneBody>;

/** The request after defaults are applied: what the worker trains with. */
export const FineTuneSpec = Type.Object({
  baseModel: Type.String(),
  dataset: Type.String(),
  validationSplit: Type.Number(),
  hyperparameters: Hyperparameters,
  seed: Type.Integer(),
  metadata: Metadata,
});
export type FineTuneSpec = Static<typeof FineTuneSpec>;

export const EpochMetrics = Type.Object(
  {
    epoch: Type.Integer({ description: '1-based.' }),
    phase: Type.String({ description: '`head`: new head on a frozen base.' }),
    loss: Type.Number(),
    accuracy: Type.Number(),
    valLoss: Type.Union([Type.Number(), Type.Null()]),
    valAccuracy: Type.Union([Type.Number(), Type.Null()]),
    durationMs: Type.Integer(),
    createdAt: Timestamp,
  }
);
export type EpochMetrics = Static<typeof EpochMetrics>;

export const ClassMetrics = Type.Object({
  name: Type.String(),
  support: Type.Integer(),
  precision: Type.Number(),
  recall: Type.Number(),
  f1: Type.Number(),
});

export const FineTuneResult = Type.Object({
  classes: Type.Array(Type.String(), { description: 'Class names in output order.' }),
  trainImages: Type.Integer(),
  validationImages: Type.Integer(),
  epochsRun: Type.Integer(),
  stoppedEarly: Type.Boolean(),
  valAccuracy: Type.Union([Type.Number(), Type.Null()]),
  valLoss: Type.Union([Type.Number(), Type.Null()]),
  perClass: Type.Array(ClassMetrics, { description: 'On the validation split.' }),
  confusionMatrix: Type.Array(Type.Array(Type.Integer()), { description: 'Rows: true class, columns: predicted.' }),
  backend: Type.String({ description: 'The TensorFlow.js backend that trained the model.' }),
  trainingMs: Type.Integer(),
});
export type FineTuneResult = Static<typeof FineTuneResult>;

export const FineTune = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('fine_tune'),
    status: FineTuneStatus,
    baseModel: Type.String(),
    dataset: Type.String(),
    validationSplit: Type.Number(),
    hyperparameters: Hyperparameters,
    seed: Type.Integer(),
    metadata: Metadata,
    progress: Type.Object({
      epoch: Type.Integer(),
      epochs: Type.Integer(),
      batch: Type.Integer(),
      batches: Type.Integer(),
    }),
    metrics: Type.Union([EpochMetrics, Type.Null()], { description: 'The latest epoch.' }),
    result: Type.Union([FineTuneResult, Type.Null()]),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
    cancelRequestedAt: NullableTimestamp,
    model: Type.Union([
      Type.Object({ url: Type.String(), bytes: Type.Integer() }),
      Type.Null(),
    ]),
    createdAt: Timestamp,
    startedAt: NullableTimestamp,
    finishedAt: NullableTimestamp,
  }
);
export type FineTune = Static<typeof FineTune>;

export const FineTuneListQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: PAGE_LIMIT_MAX, default: PAGE_LIMIT_DEFAULT }),
    after: Type.Optional(Type.String({ minLength: 1, maxLength: 80 })),
    status: Type.Optional(FineTuneStatus),
  },
  { additionalProperties: false },
);

export const FineTuneList = Page(FineTune);

export const EVENT_LEVELS = ['info', 'warning', 'error'] as const;
export const FineTuneEvent = Type.Object(
  {
    id: Type.String(),
    level: Literals(EVENT_LEVELS),
    type: Type.String({ description: 'Stable code: `status`, `dataset`, `epoch`, `overfitting`, `imbalance`, `backend`, ...' }),
    message: Type.String(),
    data: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    createdAt: Timestamp,
  }
);
export type FineTuneEvent = Static<typeof FineTuneEvent>;
export const FineTuneEventList = Page(FineTuneEvent);
export const FineTuneMetricList = Type.Object({ data: Type.Array(EpochMetrics) });

import { Type, type Static } from 'typebox';
import { Augmentation, CheckpointEvery, ClassWeights, EarlyStopping, TrainableLayers } from './training-options.ts';
import { Deleted, Literals, NullableTimestamp, PageFields, Page, Timestamp } from './common.ts';
import { JobError } from './errors.ts';
import { WEBHOOK_EVENT_TYPES, WEBHOOK_URL_RULE, WebhookEventTypes, WebhookUrl } from './webhooks.ts';
import { ResourceRequest, Resources } from './workers.ts';

export const FINE_TUNE_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type FineTuneStatus = (typeof FINE_TUNE_STATUSES)[number];
export const FineTuneStatus = Literals(FINE_TUNE_STATUSES, { title: 'FineTuneStatus' });
export const TERMINAL_STATUSES: readonly FineTuneStatus[] = ['succeeded', 'failed', 'cancelled'];

/**
 * Defaults follow the Keras transfer-learning guide (head at 1e-3 with Adam, dropout 0.2, then
 * fine-tuning at a lower rate) and Model Maker's (batch 32, a few epochs).
 */
export const HYPERPARAMETER_DEFAULTS = {
  epochs: 10,
  batchSize: 32,
  learningRate: 0.001,
  fineTuneEpochs: 10,
  fineTuneLearningRateFactor: 0.1,
  dropout: 0.2,
  headUnits: 128,
  labelSmoothing: 0,
  l2: 0,
} as const;
export const VALIDATION_SPLIT_DEFAULT = 0.2;
export const TOP_K_DEFAULT = 3;

export const Hyperparameters = Type.Object(
  {
    epochs: Type.Integer({ minimum: 1, maximum: 500, default: HYPERPARAMETER_DEFAULTS.epochs, description: 'Epochs of phase 1: the new head on the frozen base.' }),
    batchSize: Type.Integer({ minimum: 1, maximum: 512, default: HYPERPARAMETER_DEFAULTS.batchSize }),
    learningRate: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: HYPERPARAMETER_DEFAULTS.learningRate, description: 'Adam learning rate of phase 1.' }),
    fineTuneEpochs: Type.Integer({ minimum: 0, maximum: 500, description: 'Epochs of phase 2 (unfrozen top layers). Default 10 when `trainableLayers` is not `none`, else 0.' }),
    fineTuneLearningRate: Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Adam learning rate of phase 2. Default `learningRate` × 0.1.' }),
    dropout: Type.Number({ minimum: 0, maximum: 0.9, default: HYPERPARAMETER_DEFAULTS.dropout, description: 'Dropout before the output layer.' }),
    headUnits: Type.Integer({ minimum: 0, maximum: 4096, default: HYPERPARAMETER_DEFAULTS.headUnits, description: 'Units of the hidden Dense(relu) layer of the head; 0 for none.' }),
    labelSmoothing: Type.Number({ minimum: 0, maximum: 0.5, default: HYPERPARAMETER_DEFAULTS.labelSmoothing }),
    l2: Type.Number({ minimum: 0, maximum: 1, default: HYPERPARAMETER_DEFAULTS.l2, description: 'L2 penalty on the head\'s kernels.' }),
  },
  { additionalProperties: false, title: 'Hyperparameters' },
);
export type Hyperparameters = Static<typeof Hyperparameters>;

/** Free-form tags, as Stripe and OpenAI take them: at most 16 keys, short strings. */
export const Metadata = Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.String({ maxLength: 512 }), {
  maxProperties: 16,
  title: 'Metadata',
  description: 'Free-form tags: at most 16 keys of at most 64 characters, values of at most 512.',
});

/** Largest ONNX encoder file a text model bundle holds by default (`maxBundledEncoderBytes`). */
export const BUNDLED_ENCODER_MAX_BYTES_DEFAULT = 512 * 1024 * 1024;

export const CreateFineTuneBody = Type.Object(
  {
    baseModel: Type.String({ minLength: 1, maxLength: 80, description: 'A base model id (`GET /v1/base-models`).' }),
    dataset: Type.String({ minLength: 1, maxLength: 80, description: 'A dataset id (`POST /v1/datasets`).' }),
    validationSplit: Type.Optional(Type.Number({
      minimum: 0.05,
      maximum: 0.5,
      default: VALIDATION_SPLIT_DEFAULT,
      description: 'Fraction of each class held out for validation (stratified).',
    })),
    hyperparameters: Type.Optional(Type.Partial(Hyperparameters, { additionalProperties: false })),
    cutLayer: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: "Layer the base is cut at (its output feeds the head). Default: the base's feature layer." })),
    trainableLayers: Type.Optional(TrainableLayers),
    earlyStopping: Type.Optional(Type.Union([Type.Partial(EarlyStopping, { additionalProperties: false }), Type.Literal(false)], {
      description: 'On by default (patience 3 on val loss, best weights restored); `false` trains every epoch.',
    })),
    classWeights: Type.Optional(ClassWeights),
    augmentation: Type.Optional(Type.Partial(Augmentation, { additionalProperties: false })),
    baseline: Type.Optional(Literals(['none', 'scratch'], { description: '`scratch`: also train the same architecture from random weights on the same data, to measure the transfer gain.' })),
    checkpointEvery: Type.Optional(CheckpointEvery),
    testDataset: Type.Optional(Type.String({ minLength: 1, maxLength: 80, description: 'A dataset with the same classes, evaluated once at the end.' })),
    topK: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'k of the top-k accuracy reported (default 3, at most the number of classes).' })),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, description: 'Same seed + data + backend → same split and metrics.' })),
    metadata: Type.Optional(Metadata),
    maxBundledEncoderBytes: Type.Optional(Type.Integer({
      minimum: 0,
      description: `Text bases in ONNX: the downloaded model holds the encoder file when it has at most this many bytes; a larger one is only named in text.json (sha256 and source), to be given to the loader. Default ${BUNDLED_ENCODER_MAX_BYTES_DEFAULT} (512 MiB).`,
    })),
    webhookUrl: Type.Optional({ ...WebhookUrl, description: `Where to POST this job's events, signed (Standard Webhooks) with the secret in the answer's \`webhook.secret\`. ${WEBHOOK_URL_RULE}` }),
    webhookEvents: Type.Optional(WebhookEventTypes),
    resources: Type.Optional(ResourceRequest),
  },
  { additionalProperties: false, title: 'CreateFineTuneRequest' },
);
export type CreateFineTuneBody = Static<typeof CreateFineTuneBody>;

/** The request after defaults are applied (`normalizeFineTune`): exactly what the worker trains with. */
/** The spec's fields: also the options a job answers with. */
const SpecFields = {
  baseModel: Type.String(),
  dataset: Type.String(),
  testDataset: Type.Union([Type.String(), Type.Null()]),
  validationSplit: Type.Number(),
  hyperparameters: Type.Object({
    epochs: Type.Integer(),
    batchSize: Type.Integer(),
    learningRate: Type.Number(),
    fineTuneEpochs: Type.Integer(),
    fineTuneLearningRate: Type.Number(),
    dropout: Type.Number(),
    headUnits: Type.Integer(),
    labelSmoothing: Type.Number(),
    l2: Type.Number(),
  }),
  cutLayer: Type.String(),
  trainableLayers: TrainableLayers,
  earlyStopping: Type.Union([EarlyStopping, Type.Literal(false)]),
  classWeights: ClassWeights,
  augmentation: Type.Union([Augmentation, Type.Null()]),
  baseline: Literals(['none', 'scratch']),
  checkpointEvery: CheckpointEvery,
  topK: Type.Integer(),
  seed: Type.Integer(),
  metadata: Metadata,
  /** Absent in specs stored before it existed: the default applies. */
  maxBundledEncoderBytes: Type.Optional(Type.Integer()),
};
export const FineTuneSpec = Type.Object(SpecFields);
export type FineTuneSpec = Static<typeof FineTuneSpec>;

export const EpochMetrics = Type.Object(
  {
    epoch: Type.Integer({ description: '1-based.' }),
    phase: Type.String({ description: '`head`: new head on the frozen base; `fine-tune`: unfrozen top layers; `baseline`: the from-scratch comparison.' }),
    loss: Type.Number(),
    accuracy: Type.Number(),
    valLoss: Type.Union([Type.Number(), Type.Null()]),
    valAccuracy: Type.Union([Type.Number(), Type.Null()]),
    durationMs: Type.Integer(),
    createdAt: Timestamp,
  },
  { title: 'EpochMetrics' },
);
export type EpochMetrics = Static<typeof EpochMetrics>;

export const ClassMetrics = Type.Object({
  name: Type.String(),
  support: Type.Integer(),
  precision: Type.Number(),
  recall: Type.Number(),
  f1: Type.Number(),
}, { title: 'ClassMetrics' });

/** Scores of one model on one labelled set. */
export const Evaluation = Type.Object({
  images: Type.Integer(),
  accuracy: Type.Union([Type.Number(), Type.Null()]),
  loss: Type.Union([Type.Number(), Type.Null()]),
  topK: Type.Object({ k: Type.Integer(), accuracy: Type.Union([Type.Number(), Type.Null()]) }),
  perClass: Type.Array(ClassMetrics),
  confusionMatrix: Type.Array(Type.Array(Type.Integer()), { description: 'Rows: true class, columns: predicted.' }),
}, { title: 'Evaluation' });
export type Evaluation = Static<typeof Evaluation>;

export const FineTuneResult = Type.Object({
  classes: Type.Array(Type.String(), { description: 'Class names in output order.' }),
  trainImages: Type.Integer(),
  validationImages: Type.Integer(),
  epochsRun: Type.Integer({ description: 'Over both phases.' }),
  stoppedEarly: Type.Boolean(),
  bestEpoch: Type.Union([Type.Integer(), Type.Null()], { description: 'The epoch whose weights the model has (lowest val loss when early stopping restores).' }),
  valAccuracy: Type.Union([Type.Number(), Type.Null()]),
  valLoss: Type.Union([Type.Number(), Type.Null()]),
  perClass: Type.Array(ClassMetrics, { description: 'On the validation split.' }),
  confusionMatrix: Type.Array(Type.Array(Type.Integer()), { description: 'Validation split. Rows: true class, columns: predicted.' }),
  validation: Type.Optional(Evaluation),
  test: Type.Optional(Type.Union([Evaluation, Type.Null()], { description: 'On `testDataset`, when given.' })),
  baseline: Type.Optional(Type.Union([
    Type.Object({
      kind: Type.Literal('scratch'),
      valAccuracy: Type.Union([Type.Number(), Type.Null()]),
      valLoss: Type.Union([Type.Number(), Type.Null()]),
      testAccuracy: Type.Union([Type.Number(), Type.Null()]),
      epochsRun: Type.Integer(),
      trainingMs: Type.Integer(),
      transferGain: Type.Union([Type.Number(), Type.Null()], { description: 'Transfer val accuracy minus scratch val accuracy.' }),
    }),
    Type.Null(),
  ])),
  backend: Type.String({ description: 'The TensorFlow.js backend that trained the model.' }),
  trainingMs: Type.Integer(),
}, { title: 'FineTuneResult' });
export type FineTuneResult = Static<typeof FineTuneResult>;

/** Something the API noticed while validating a request that does not stop it (also recorded as an event of the job). */
export const RequestWarning = Type.Object({
  type: Type.String({ description: 'Stable code, as the event type: `leakage`.' }),
  message: Type.String(),
  data: Type.Record(Type.String(), Type.Unknown()),
}, { title: 'RequestWarning' });
export type RequestWarning = Static<typeof RequestWarning>;

export const FineTune = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('fine_tune'),
    status: FineTuneStatus,
    ...SpecFields,
    hyperparameters: Hyperparameters,
    resources: { ...Resources, description: 'What the job needs from a worker (`resources` of the request, defaults filled in). Where it runs, not how it trains: not part of training.json.' },
    progress: Type.Object({
      phase: Type.String({ description: '`features`, `head`, `fine-tune`, `baseline` or `evaluation`.' }),
      epoch: Type.Integer(),
      epochs: Type.Integer({ description: 'Planned epochs over both phases (early stopping may end sooner).' }),
      batch: Type.Integer(),
      batches: Type.Integer(),
    }),
    metrics: Type.Union([EpochMetrics, Type.Null()], { description: 'The latest epoch.' }),
    result: Type.Union([FineTuneResult, Type.Null()]),
    error: Type.Union([JobError, Type.Null()], { description: 'Why the job failed (null unless `status` is `failed`).' }),
    cancelRequestedAt: NullableTimestamp,
    model: Type.Union([
      Type.Object({ url: Type.String(), bytes: Type.Integer() }),
      Type.Null(),
    ]),
    createdAt: Timestamp,
    startedAt: NullableTimestamp,
    finishedAt: NullableTimestamp,
    webhook: Type.Union([
      Type.Object({
        url: Type.String(),
        events: Type.Array(Literals(WEBHOOK_EVENT_TYPES)),
        secret: Type.Optional(Type.String({ description: 'The signing secret (`whsec_…`): only in the answer to `POST /v1/fine-tunes` (and its idempotent replays).' })),
      }),
      Type.Null(),
    ], { description: 'The job\'s own webhook (`webhookUrl`), if any.' }),
    warnings: Type.Optional(Type.Array(RequestWarning, {
      description: 'Only in the answer to `POST /v1/fine-tunes` (and its idempotent replays): what validation noticed, e.g. a test set sharing texts with the training set (`leakage`). The same warnings are the first events of the job.',
    })),
  },
  { title: 'FineTune' },
);
export type FineTune = Static<typeof FineTune>;

export const FineTuneListQuery = Type.Object(
  {
    ...PageFields,
    status: Type.Optional(FineTuneStatus),
  },
  { additionalProperties: false },
);

export const FineTuneList = Page(FineTune, 'FineTuneList');
export const FineTuneDeleted = Deleted('fine_tune', 'FineTuneDeleted');

export const EVENT_LEVELS = ['info', 'warning', 'error'] as const;
export const FineTuneEvent = Type.Object(
  {
    id: Type.String(),
    level: Literals(EVENT_LEVELS),
    type: Type.String({ description: 'Stable code: `status`, `dataset`, `epoch`, `overfitting`, `imbalance`, `backend`, `micro_batching`, ...' }),
    message: Type.String(),
    data: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    createdAt: Timestamp,
  },
  { title: 'FineTuneEvent' },
);
export type FineTuneEvent = Static<typeof FineTuneEvent>;
export const FineTuneEventList = Page(FineTuneEvent, 'FineTuneEventList');
export const FineTuneMetricList = Type.Object({ data: Type.Array(EpochMetrics) }, { title: 'FineTuneMetricList' });

import { Type, type Static } from 'typebox';
import { Literals } from './common.ts';

/**
 * Every error graft answers, by stable code. The HTTP status is part of the contract: clients may
 * switch on `code`, never on `message`.
 */
export const ERROR_CODES = {
  invalid_request: { status: 400, description: 'The request does not match its schema; `param` names the field.' },
  invalid_archive: { status: 400, description: 'The uploaded file is not a readable .zip archive.' },
  unsupported_media_type: { status: 415, description: 'The request body has a content type this route does not take.' },
  payload_too_large: { status: 413, description: 'The upload is larger than the configured limit.' },
  headers_too_large: { status: 431, description: 'The request headers are larger than the server accepts (answered before routing; the connection is closed).' },
  request_timeout: { status: 408, description: 'The request was not received in time (answered before routing; the connection is closed).' },
  unauthorized: { status: 401, description: 'No API key, or one that is malformed, unknown or revoked: send `Authorization: Bearer <key>` (the answer carries `WWW-Authenticate: Bearer`).' },
  not_found: { status: 404, description: 'No such route or object.' },
  dataset_not_found: { status: 404, description: 'The dataset named by the request (or by `param`) does not exist.' },
  base_model_not_found: { status: 404, description: 'The base model named by the request (or by `param`) does not exist.' },
  fine_tune_not_found: { status: 404, description: 'No fine-tune job with that id.' },
  no_images: { status: 422, description: 'The archive holds no JPEG or PNG image inside a class folder.' },
  too_few_classes: { status: 422, description: 'Classification needs at least two class folders with images.' },
  unreadable_entry: { status: 422, description: 'An archive entry that should be an image cannot be read; the message names it.' },
  unsafe_archive: {
    status: 422,
    description:
      'The archive is built to harm rather than to be read: entries that overlap or share compressed data, a name given twice, a name escaping the archive (absolute, `..`), or a compression ratio beyond the limit; the message says which.',
  },
  dataset_check_failed: {
    status: 422,
    description:
      'The upload check stopped before it finished: it ran past its time limit (`DATASET_CHECK_TIMEOUT_MS`) or its memory bound (`DATASET_CHECK_MAX_RSS_MB`), or its decoder crashed on the file; the message says which. Nothing was stored.',
  },
  too_many_entries: { status: 422, description: 'The archive has more entries, the text file more rows, or either more classes than the limits (the message says which).' },
  invalid_text_dataset: { status: 422, description: 'The file cannot be read as a text dataset: not CSV or JSONL (plain, gzipped, or the single file of a zip), no `text` and `label` columns, an unclosed CSV quote swallowing the file, or empty.' },
  too_many_invalid_rows: { status: 422, description: 'More rows are invalid than `maxInvalidShare` allows; the message gives the count, the share and the first lines with their reasons.' },
  dataset_too_small: { status: 422, description: 'After the validation split a class would have no training image.' },
  base_model_unusable: { status: 422, description: 'The base cannot be used this way (a fine-tune that has not succeeded; a graph model with unfrozen layers or a scratch baseline).' },
  invalid_base_model: { status: 422, description: 'A base being registered does not load, or its shapes do not fit the stated preprocessing and feature layer.' },
  class_mismatch: { status: 422, description: 'The test dataset (or class weights) names classes the training dataset does not have.' },
  webhook_endpoint_not_found: { status: 404, description: 'No webhook endpoint with that id.' },
  invalid_webhook_url: { status: 422, description: 'The webhook URL is not http(s), or its address is not one graft may send to (loopback, link-local, private, unresolvable) unless the operator allows it.' },
  checkpoint_not_found: { status: 404, description: 'No checkpoint with that id in this job.' },
  task_mismatch: { status: 422, description: 'The dataset and the base model are for different tasks.' },
  idempotency_key_reused: { status: 409, description: 'The Idempotency-Key was used before with a different request body.' },
  job_not_cancellable: { status: 409, description: 'The job has already ended.' },
  model_not_ready: { status: 409, description: 'The job has not produced a model (yet).' },
  resource_in_use: { status: 409, description: 'A queued or running job uses it (as its dataset, test dataset or base); delete it once that job has ended.' },
  job_not_finished: { status: 409, description: 'The job is queued or running: cancel it and delete it once it has ended.' },
  base_model_not_deletable: { status: 409, description: "Only bases users registered can be deleted: catalog bases ship with graft, and a fine-tune used as a base is deleted with `DELETE /v1/fine-tunes/{id}`." },
  inspector_busy: { status: 503, description: 'Every base-model inspection slot is busy and its wait queue is full; retry after the `Retry-After` seconds.' },
  too_many_inputs: { status: 413, description: 'A prediction request has more inputs than PREDICT_LIMITS.maxInputs (32); split it.' },
  invalid_input: { status: 422, description: 'A prediction input cannot be used by this model (an image that does not decode, a text for an image model or an image for a text model); `param` names it, e.g. `inputs.3`.' },
  prediction_timeout: { status: 504, description: 'The prediction did not finish within the time limit (PREDICT_TIMEOUT_MS), waiting for its thread and loading the model included.' },
  rate_limited: {
    status: 429,
    description: 'Too many requests from this tenant: its bucket of reads (GET) or of writes (POST, DELETE) is empty. Retry after the `Retry-After` seconds; every limited answer carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.',
  },
  quota_exceeded: {
    status: 429,
    description: 'The tenant is at one of its quotas: jobs queued or running at once, or bytes stored (datasets, registered bases, models, checkpoints). The message gives the figure and the limit. `Retry-After` is set when waiting helps (a job that ends frees its slot); stored bytes are freed only by deleting.',
  },
  not_ready: { status: 503, description: 'A dependency (Postgres, Redis) does not answer.' },
  service_unavailable: { status: 503, description: 'A dependency (Postgres, Redis) did not answer in time. Retry after the `Retry-After` header\'s seconds; an `Idempotency-Key` sent with a create that failed so is not used up.' },
  internal_error: { status: 500, description: 'Something failed on our side; the log has the details under the request id.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

const ErrorMessage = Type.String({ description: 'For people: what went wrong and what to do. Never parse it; switch on `code`.' });
const ErrorParam = Type.Optional(Type.String({ description: 'The request field at fault, dotted (e.g. `hyperparameters.epochs`).' }));

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable snake_case code; see the list in the API description.' }),
      message: ErrorMessage,
      param: ErrorParam,
    }),
  },
  { title: 'Error' },
);
export type ErrorResponse = Static<typeof ErrorResponse>;

/** The error body of one response status: `code` is the enum of the codes that can be answered there. */
export function errorResponseFor(codes: readonly ErrorCode[]) {
  const sorted = [...new Set(codes)].sort();
  return Type.Object(
    {
      error: Type.Object({
        code: Literals(sorted),
        message: ErrorMessage,
        param: ErrorParam,
      }),
    },
    { description: sorted.map((c) => `\`${c}\`: ${ERROR_CODES[c].description}`).join(' · ') },
  );
}

/**
 * Why a job failed (`FineTune.error.code`). Open-ended: the engine and the worker may add codes, so
 * clients must handle unknown ones; `param` names the request field at fault when one is.
 */
export const JOB_ERROR_CODES: Record<string, { description: string; param?: string }> = {
  dataset_missing: { description: 'The archive of a dataset the job uses is no longer in storage.', param: 'dataset' },
  dataset_too_small: { description: 'After the validation split a class would have no training image.', param: 'validationSplit' },
  base_model_unavailable: { description: 'The base cannot be loaded (weights unreadable, or a hosted base with no network and no cache).', param: 'baseModel' },
  invalid_base_model: { description: 'The base does not load or does not fit its stated preprocessing.', param: 'baseModel' },
  invalid_cut_layer: { description: 'The cut layer does not exist or cannot feed a head (the message lists valid layers).', param: 'cutLayer' },
  invalid_layer: { description: 'A layer named by `trainableLayers` does not exist (the message lists valid layers).', param: 'trainableLayers' },
  graph_model_frozen: { description: 'A graph base can only be a frozen feature extractor.', param: 'trainableLayers' },
  invalid_class_weights: { description: 'The class weights do not fit the dataset.', param: 'classWeights' },
  class_mismatch: { description: 'The test dataset has classes the training dataset lacks.', param: 'testDataset' },
  unreadable_image: { description: 'An image of the dataset cannot be decoded.', param: 'dataset' },
  training_diverged: { description: 'The loss became non-finite: lower the learning rate.', param: 'hyperparameters.learningRate' },
  unsupported_on_backend: { description: 'The operation is not available on the TensorFlow.js backend of the worker.' },
  insufficient_memory: { description: 'Even one example per step does not fit the trainer\'s memory budget (the message gives the estimate and the budget); checked before training starts. Batches that do not fit whole train as micro-batches instead.', param: 'hyperparameters.batchSize' },
  trainer_crashed: { description: 'The training process died (e.g. out of memory).' },
  worker_shutdown: { description: 'The worker was stopped before the job finished (jobs of a worker that shuts down cleanly are handed back to the queue instead; this code remains for older jobs).' },
  worker_lost: { description: 'The job was abandoned by its workers.' },
  queue_unavailable: { description: 'The job could not be queued.' },
  checkpoint_unrecorded: { description: 'A checkpoint could not be stored or recorded within its time (storage or database away); the job stopped rather than go on without it.' },
  training_failed: { description: 'Anything else; the message says what.' },
};

/** The request field a job error points at, when its code names one. */
export function jobErrorParam(code: string): string | undefined {
  return JOB_ERROR_CODES[code]?.param;
}

export const JobError = Type.Object(
  {
    code: Type.String({ description: `Stable snake_case code; new codes may appear. Known: ${Object.keys(JOB_ERROR_CODES).map((c) => `\`${c}\``).join(', ')}.` }),
    message: Type.String(),
    param: Type.Optional(Type.String({ description: 'The field of the job request at fault, dotted (e.g. `cutLayer`, `hyperparameters.learningRate`).' })),
  },
  { title: 'JobError' },
);
export type JobError = Static<typeof JobError>;

/** An error carrying its public code; the API's error handler turns it into `ErrorResponse`. */
export class GraftError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly param: string | undefined;
  /** Seconds after which a retry may succeed (answered as `Retry-After`). */
  readonly retryAfterSeconds: number | undefined;
  constructor(code: ErrorCode, message: string, param?: string, opts: { retryAfterSeconds?: number } = {}) {
    super(message);
    this.name = 'GraftError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.param = param;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

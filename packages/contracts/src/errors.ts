import { Type, type Static } from 'typebox';

/**
 * Every error graft answers, by stable code. The HTTP status is part of the contract: clients may
 * switch on `code`, never on `message`.
 */
export const ERROR_CODES = {
  invalid_request: { status: 400, description: 'The request does not match its schema; `param` names the field.' },
  invalid_archive: { status: 400, description: 'The uploaded file is not a readable .zip archive.' },
  unsupported_media_type: { status: 415, description: 'The request body has a content type this route does not take.' },
  payload_too_large: { status: 413, description: 'The upload is larger than the configured limit.' },
  not_found: { status: 404, description: 'No such route or object.' },
  dataset_not_found: { status: 404, description: 'The dataset named by the request (or by `param`) does not exist.' },
  base_model_not_found: { status: 404, description: 'The base model named by the request (or by `param`) does not exist.' },
  fine_tune_not_found: { status: 404, description: 'No fine-tune job with that id.' },
  no_images: { status: 422, description: 'The archive holds no JPEG or PNG image inside a class folder.' },
  too_few_classes: { status: 422, description: 'Classification needs at least two class folders with images.' },
  unreadable_entry: { status: 422, description: 'An archive entry that should be an image cannot be read; the message names it.' },
  too_many_entries: { status: 422, description: 'The archive has more entries, the text file more rows, or either more classes than the limits (the message says which).' },
  invalid_text_dataset: { status: 422, description: 'The file cannot be read as a text dataset: not CSV or JSONL (plain, gzipped, or the single file of a zip), no `text` and `label` columns, an unclosed CSV quote swallowing the file, or empty.' },
  too_many_invalid_rows: { status: 422, description: 'More rows are invalid than `maxInvalidShare` allows; the message gives the count, the share and the first lines with their reasons.' },
  dataset_too_small: { status: 422, description: 'After the validation split a class would have no training image.' },
  base_model_unusable: { status: 422, description: 'The base cannot be used this way (a fine-tune that has not succeeded; a graph model with unfrozen layers or a scratch baseline).' },
  invalid_base_model: { status: 422, description: 'A base being registered does not load, or its shapes do not fit the stated preprocessing and feature layer.' },
  class_mismatch: { status: 422, description: 'The test dataset (or class weights) names classes the training dataset does not have.' },
  checkpoint_not_found: { status: 404, description: 'No checkpoint with that id in this job.' },
  task_mismatch: { status: 422, description: 'The dataset and the base model are for different tasks.' },
  idempotency_key_reused: { status: 409, description: 'The Idempotency-Key was used before with a different request body.' },
  job_not_cancellable: { status: 409, description: 'The job has already ended.' },
  model_not_ready: { status: 409, description: 'The job has not produced a model (yet).' },
  not_ready: { status: 503, description: 'A dependency (Postgres, Redis) does not answer.' },
  internal_error: { status: 500, description: 'Something failed on our side; the log has the details under the request id.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable snake_case code; see the list in the API description.' }),
      message: Type.String(),
      param: Type.Optional(Type.String({ description: 'The request field at fault, dotted (e.g. `hyperparameters.epochs`).' })),
    }),
  }
);
export type ErrorResponse = Static<typeof ErrorResponse>;

/** An error carrying its public code; the API's error handler turns it into `ErrorResponse`. */
export class GraftError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly param: string | undefined;
  constructor(code: ErrorCode, message: string, param?: string) {
    super(message);
    this.name = 'GraftError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.param = param;
  }
}

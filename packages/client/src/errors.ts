/**
 * What the client throws. `GraftApiError` is an answer of the API (`{ error: { code, message, param? } }`)
 * with its status; `GraftConnectionError` means no answer arrived (refused, reset, timed out).
 */
import type { ErrorCode } from '@graft/contracts';

/** A known code, or one a newer server added (clients must handle unknown codes). */
export type ApiErrorCode = ErrorCode | (string & {});

export class GraftApiError extends Error {
  override readonly name = 'GraftApiError';
  constructor(
    /** HTTP status. */
    readonly status: number,
    /** Stable snake_case code: switch on it, never on `message`. */
    readonly code: ApiErrorCode,
    message: string,
    /** The request field at fault, dotted (`hyperparameters.epochs`), when one is. */
    readonly param: string | undefined,
    /** The request that failed, e.g. `POST /v1/fine-tunes`. */
    readonly request: string,
  ) {
    super(message);
  }
}

export class GraftConnectionError extends Error {
  override readonly name = 'GraftConnectionError';
  constructor(message: string, readonly request: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A job ended without the status the caller waited for (`waitUntilDone(..., { throwOnFailure: true })`). */
export class GraftJobError extends Error {
  override readonly name = 'GraftJobError';
  constructor(
    message: string,
    readonly jobId: string,
    readonly status: string,
    readonly code: string | undefined,
    readonly param: string | undefined,
  ) {
    super(message);
  }
}

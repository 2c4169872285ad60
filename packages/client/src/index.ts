/** `@graft/client`: a typed client of graft's REST API built on `fetch` and the contracts' types. */
export { Graft } from './client.ts';
export { GraftApiError, GraftConnectionError, GraftJobError, type ApiErrorCode } from './errors.ts';
export { DEFAULT_BASE_URL, type ClientOptions } from './http.ts';
export { isTerminal, newIdempotencyKey, SseUnavailable, TERMINAL, type Download, type StreamOptions, type WaitOptions } from './fine-tunes.ts';
export { readSse, type SseMessage } from './sse.ts';
export type * from './types.ts';

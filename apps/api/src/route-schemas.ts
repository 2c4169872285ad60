/**
 * Pieces of route schemas shared by every route file: the error responses a route can answer (by
 * status, each with the enum of its codes), binary downloads and multipart bodies documented for
 * OpenAPI, descriptions of success responses.
 */
import { ERROR_CODES, errorResponseFor, type ErrorCode } from '@graft/contracts';
import type { TSchema } from 'typebox';

/** 503 codes only the routes naming them answer (a full pool of their own), not a dependency down. */
const ROUTE_OWN_503: readonly ErrorCode[] = ['inspector_busy'];

/** What any route may answer: a bug (500), a dependency that does not answer (every other 503 code), its tenant's rate limit (429). */
const EVERY_ROUTE = (Object.keys(ERROR_CODES) as ErrorCode[]).filter(
  (c) => c === 'internal_error' || c === 'rate_limited' || (ERROR_CODES[c].status === 503 && !ROUTE_OWN_503.includes(c)),
);

/**
 * `{ <status>: error schema }` for these codes plus those every route can answer. Every route that
 * uses it is under /v1, where a missing or invalid API key answers 401 `unauthorized`.
 */
export function errorResponses(...codes: ErrorCode[]): Record<number, ReturnType<typeof errorResponseFor>> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of [...codes, 'unauthorized' as const, ...EVERY_ROUTE]) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries([...byStatus].map(([status, list]) => [status, errorResponseFor(list)]));
}

/**
 * A success response with its OpenAPI description and response headers (the schema itself stays
 * shared and named).
 */
export function described<T extends TSchema>(schema: T, description: string, headers?: Record<string, { description: string } & Record<string, unknown>>): T {
  return { ...schema, 'x-response-description': description, ...(headers ? { headers } : {}) };
}

/** A file download: documented as binary of `mediaType`, sent as a stream (never serialised). */
export function binaryResponse(mediaType: string, description: string) {
  return { description, content: { [mediaType]: { schema: { type: 'string', format: 'binary' } } } };
}

/**
 * A request body per content type. Multipart bodies are documented (their parts and types) but
 * read by the handler as a stream, so `app.ts`'s validator compiler does not check them.
 */
export function bodyByContentType(content: Record<string, TSchema>) {
  return { content: Object.fromEntries(Object.entries(content).map(([type, schema]) => [type, { schema }])) };
}

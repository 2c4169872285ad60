/**
 * One error shape for every failure: `{ error: { code, message, param? } }` with the status of
 * its code. Validation errors name the field at fault; a dependency that did not answer (Postgres
 * or Redis down, frozen or timed out) is 503 `service_unavailable` with `Retry-After`; unexpected
 * errors are logged with the request id and answered as `internal_error` without internals.
 */

/** Seconds a client should wait before retrying a request that failed on a dependency. */
export const RETRY_AFTER_SECONDS = 5;
import { ERROR_CODES, GraftError, type ErrorCode } from '@graft/contracts';
import { isDependencyError } from '@graft/db';
import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

interface AjvError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

function paramOf(e: AjvError): string | undefined {
  const path = (e.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
  const child = (e.params?.missingProperty ?? e.params?.additionalProperty) as string | undefined;
  return [path, child].filter(Boolean).join('.') || undefined;
}

function describe(e: AjvError, context: string): string {
  const param = paramOf(e);
  const where = param ? `${context}.${param}` : context;
  if (e.keyword === 'additionalProperties') return `${where} is not a known field`;
  if (e.keyword === 'required') return `${where} is required`;
  if (e.keyword === 'enum' || e.keyword === 'anyOf' || e.keyword === 'const') {
    const allowed = e.params?.allowedValues as unknown[] | undefined;
    return `${where} must be one of the allowed values${allowed ? `: ${allowed.join(', ')}` : ''}`;
  }
  return `${where} ${e.message ?? 'is invalid'}`;
}

function reply(code: ErrorCode, message: string, param?: string) {
  return { status: ERROR_CODES[code].status, body: { error: { code, message, ...(param ? { param } : {}) } } };
}

/** Maps Fastify's, its plugins' and graft's errors to the public shape. */
export function toErrorReply(err: FastifyError & { validation?: AjvError[]; validationContext?: string }) {
  if (err instanceof GraftError) return reply(err.code, err.message, err.param);
  if (err.validation && err.validation.length > 0) {
    const first = err.validation[0]!;
    return reply('invalid_request', describe(first, err.validationContext ?? 'request'), paramOf(first));
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return reply('unsupported_media_type', err.message);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_PARTS_LIMIT':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return reply('payload_too_large', err.message, err.code === 'FST_REQ_FILE_TOO_LARGE' ? 'file' : undefined);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return reply('invalid_request', `The body is not valid JSON: ${err.message}`);
  }
  if (err.statusCode === 404) return reply('not_found', err.message);
  if (err.statusCode === 413) return reply('payload_too_large', err.message);
  if (err.statusCode === 415) return reply('unsupported_media_type', err.message);
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return reply('invalid_request', err.message);
  return null;
}

export default fp(
  async function errors(app: FastifyInstance) {
    app.setErrorHandler((err: FastifyError, request, res) => {
      const mapped = toErrorReply(err);
      if (mapped) {
        request.log.info({ code: mapped.body.error.code, err: err.message }, 'request rejected');
        return res.status(mapped.status).send(mapped.body);
      }
      if (isDependencyError(err)) {
        request.log.warn({ err: err.message }, 'a dependency did not answer');
        return res
          .status(503)
          .header('retry-after', String(RETRY_AFTER_SECONDS))
          .send({ error: { code: 'service_unavailable', message: `A dependency of the service (database or queue) did not answer; retry in ${RETRY_AFTER_SECONDS} s.` } });
      }
      request.log.error({ err }, 'unhandled error');
      return res.status(500).send({ error: { code: 'internal_error', message: `Internal error (request ${request.id}).` } });
    });
    app.setNotFoundHandler((request, res) =>
      res.status(404).send({ error: { code: 'not_found', message: `No route ${request.method} ${request.url.split('?')[0]}.` } }),
    );
  },
  { name: 'errors' },
);

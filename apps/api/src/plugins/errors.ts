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
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

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

const MALFORMED_MULTIPART = /^(Unexpected end of (multipart data|form)|Multipart: Boundary not found|Malformed part header|Part terminated early|Malformed urlencoded form)/;

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
    case 'FST_ERR_BAD_URL':
      return reply('invalid_request', `The URL is not valid: ${err.message}`);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return reply('invalid_request', `The body is not valid JSON: ${err.message}`);
  }
  // busboy's refusals of a malformed or truncated multipart body carry no code or status.
  if (!err.statusCode && MALFORMED_MULTIPART.test(err.message ?? '')) return reply('invalid_request', `The multipart body is malformed or truncated: ${err.message}.`);
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
        if (err instanceof GraftError && err.retryAfterSeconds !== undefined) res.header('retry-after', String(Math.max(1, Math.ceil(err.retryAfterSeconds))));
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

/** Fastify's own refusals before routing (a malformed URL): the same shape as every other error. */
export function frameworkErrors(err: FastifyError, _request: FastifyRequest, res: FastifyReply) {
  const mapped = toErrorReply(err) ?? reply('invalid_request', err.message);
  return res.status(mapped.status).send(mapped.body);
}

/**
 * What Node's HTTP parser refuses before Fastify sees a request (headers over 16 KiB, bytes that
 * are not HTTP, a request that times out) is answered in the error shape too, then the connection
 * is closed.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
  const [code, message]: [ErrorCode, string] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? ['headers_too_large', 'The request headers are larger than the server accepts (16 KiB in all).']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['request_timeout', 'The request was not received in time.']
        : ['invalid_request', 'The request is not valid HTTP.'];
  const { status, body } = reply(code, message);
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}

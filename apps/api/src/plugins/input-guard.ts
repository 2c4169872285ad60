/**
 * Text graft cannot store is refused before any route sees it: a NUL character (Postgres text
 * cannot hold U+0000) or a lone UTF-16 surrogate (it has no UTF-8 form) anywhere in the path
 * parameters, the query string or a JSON body answers 400 `invalid_request` naming the field, instead
 * of a 500 from deep inside a query. One hook for every route; multipart fields are checked by the
 * routes that read them, with `unstorableText`.
 */
import { GraftError } from '@graft/contracts';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why a string cannot be stored, or null. */
function badText(s: string): string | null {
  if (s.includes('\u0000')) return 'contains a NUL character (U+0000)';
  if (LONE_SURROGATE.test(s)) return 'contains a lone UTF-16 surrogate (not valid Unicode)';
  return null;
}

/** The first string (or object key) in `value` that cannot be stored, as [dotted path, reason]. */
export function unstorableText(value: unknown, path = '', depth = 0): [string, string] | null {
  if (typeof value === 'string') {
    const why = badText(value);
    return why ? [path, why] : null;
  }
  if (value === null || typeof value !== 'object' || depth > 64) return null;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const at = path ? `${path}.${k}` : k;
    const keyWhy = badText(k);
    if (keyWhy) return [path || '(key)', `has a key that ${keyWhy}`];
    const found = unstorableText(v, at, depth + 1);
    if (found) return found;
  }
  return null;
}

/** Throws 400 invalid_request when `value` holds text that cannot be stored. */
export function assertStorableText(value: unknown, context: string): void {
  const found = unstorableText(value);
  if (found) throw new GraftError('invalid_request', `${found[0] ? `${context}.${found[0]}` : context} ${found[1]}.`, found[0] || undefined);
}

export default fp(
  async function inputGuard(app: FastifyInstance) {
    app.addHook('preValidation', async (request) => {
      assertStorableText(request.params, 'params');
      assertStorableText(request.query, 'querystring');
      if (request.body !== undefined && !request.isMultipart()) assertStorableText(request.body, 'body');
    });
  },
  { name: 'input-guard', dependencies: ['errors'] },
);

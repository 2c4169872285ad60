/**
 * Who is calling: `request.tenantId`, set on every request by an onRequest hook (before the body is
 * read, so a stranger's upload is never streamed). Routes filter every query by it; plugins that
 * count per tenant (rate limits, quotas) register after this one and read it.
 *
 * - AUTH=keys: a route under /v1 needs `Authorization: Bearer <key>`; a missing, malformed, unknown
 *   or revoked key answers 401 `unauthorized` with `WWW-Authenticate: Bearer`. Public routes
 *   (health, metrics, the OpenAPI document and /docs, the dashboard's files) get tenantId ''.
 * - AUTH=none (development): no keys; every request is tenant `default`. Allowed only when the API
 *   listens on a loopback address: the server refuses to start otherwise.
 * - AUTH=auto (the default): none on a loopback HOST, keys otherwise.
 *
 * A verified key is cached for AUTH_CACHE_MS (30 s by default): a revoked key keeps working on a
 * process that verified it for at most that long.
 */
import { DEFAULT_TENANT, tenants } from '@graft/db';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { authModeOf, type AuthMode } from '../auth-mode.ts';

export { authModeOf, isLoopbackHost, type AuthMode } from '../auth-mode.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller's tenant: 'default' in development mode, '' on public routes with keys. */
    tenantId: string;
  }
}

/** Routes that need a key: the API under /v1 (decided on the matched route, not on the raw URL). */
const isProtected = (request: FastifyRequest) => (request.routeOptions.url ?? '').startsWith('/v1/');

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** Verified keys by hash, bounded; entries expire after the cache time. */
class KeyCache {
  private readonly entries = new Map<string, { tenantId: string | null; keyId: string | null; until: number }>();
  constructor(private readonly ttlMs: number, private readonly max = 10_000) {}
  get(hash: string) {
    const hit = this.entries.get(hash);
    if (!hit) return undefined;
    if (hit.until <= Date.now()) {
      this.entries.delete(hash);
      return undefined;
    }
    return hit;
  }
  set(hash: string, tenantId: string | null, keyId: string | null) {
    if (this.ttlMs <= 0) return;
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(hash, { tenantId, keyId, until: Date.now() + this.ttlMs });
  }
}

function refuse(reply: FastifyReply, given: boolean) {
  const message = given
    ? 'The API key is not valid (unknown, malformed or revoked).'
    : 'An API key is required: send `Authorization: Bearer <key>`.';
  return reply
    .code(401)
    .header('www-authenticate', given ? 'Bearer realm="graft", error="invalid_token"' : 'Bearer realm="graft"')
    .send({ error: { code: 'unauthorized', message } });
}

export default fp(
  async function auth(app: FastifyInstance) {
    const mode = authModeOf(app.config);
    app.decorate('authMode', mode);
    app.decorateRequest('tenantId', '');
    if (mode === 'none') {
      app.log.info('AUTH=none: no API keys, every request is tenant "default" (loopback only)');
      app.addHook('onRequest', async (request) => {
        request.tenantId = DEFAULT_TENANT;
      });
      return;
    }

    const cache = new KeyCache(app.config.AUTH_CACHE_MS);
    const touched = new Map<string, number>(); // key id → when its last use was written (at most once a minute)
    app.addHook('onRequest', async (request, reply) => {
      if (!isProtected(request)) return;
      const match = BEARER.exec(request.headers.authorization ?? '');
      if (!match) return refuse(reply, request.headers.authorization !== undefined);
      const key = match[1]!;
      const hash = tenants.hashKey(key);
      let hit = cache.get(hash);
      if (!hit) {
        const verified = await tenants.verifyApiKey(app.db, key);
        cache.set(hash, verified?.tenantId ?? null, verified?.keyId ?? null);
        hit = { tenantId: verified?.tenantId ?? null, keyId: verified?.keyId ?? null, until: 0 };
      }
      if (!hit.tenantId || !hit.keyId) return refuse(reply, true);
      request.tenantId = hit.tenantId;
      const now = Date.now();
      if ((touched.get(hit.keyId) ?? 0) < now - 60_000) {
        touched.set(hit.keyId, now);
        if (touched.size > 10_000) touched.clear();
        tenants.touchApiKey(app.db, hit.keyId).catch((err: Error) => request.log.warn({ err: err.message }, 'could not record an API key use'));
      }
    });
  },
  { name: 'auth', dependencies: ['services'] },
);

declare module 'fastify' {
  interface FastifyInstance {
    authMode: AuthMode;
  }
}

/**
 * Per-tenant rate limits on /v1: two token buckets per tenant in Redis, one for reads (GET, HEAD)
 * and one for writes (everything else), each holding `limit` tokens and refilled at `limit` per
 * minute. One Lua script takes a token atomically with Redis' own clock, so every API process
 * shares the buckets. Every limited answer carries `RateLimit-Limit`, `RateLimit-Remaining` and
 * `RateLimit-Reset` (seconds until the bucket is full); an empty bucket answers 429 `rate_limited`
 * with `Retry-After` (seconds until one token is back).
 *
 * Redis away fails open: a limiter that cannot answer within LIMITER_TIMEOUT_MS lets the request
 * through (and logs it), since a route that needs Redis then answers 503 on its own and one that
 * does not keeps working; a lost limit for the length of an outage is the lesser harm.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { authModeOf } from './auth.ts';

/** Longest a request waits for the limiter before going through unlimited. */
const LIMITER_TIMEOUT_MS = 250;

// KEYS[1]: the bucket; ARGV: capacity, refill per millisecond. Returns allowed, tokens left, ms until one token, ms until full.
const TAKE_TOKEN = `
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate) + 1000)
return { allowed, math.floor(tokens), wait, math.ceil((cap - tokens) / rate) }`;

type Bucket = 'reads' | 'writes';

interface LimiterRedis extends Redis {
  graftTakeToken(key: string, capacity: number, perMs: number): Promise<[number, number, number, number]>;
}

export interface Take {
  allowed: boolean;
  limit: number;
  remaining: number;
  retryAfterMs: number;
  resetMs: number;
}

/** Takes one token from a tenant's bucket; null when Redis does not answer in time. */
export async function takeToken(redis: Redis, prefix: string, tenantId: string, bucket: Bucket, perMinute: number): Promise<Take | null> {
  const r = redis as LimiterRedis;
  if (typeof r.graftTakeToken !== 'function') r.defineCommand('graftTakeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
  if (redis.status !== 'ready') return null;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), LIMITER_TIMEOUT_MS)));
  try {
    const answer = await Promise.race([r.graftTakeToken(`${prefix}:ratelimit:${bucket}:${tenantId}`, perMinute, perMinute / 60_000), timeout]);
    if (!answer) return null;
    const [allowed, remaining, retryAfterMs, resetMs] = answer;
    return { allowed: allowed === 1, limit: perMinute, remaining, retryAfterMs, resetMs };
  } finally {
    clearTimeout(timer);
  }
}

const bucketOf = (request: FastifyRequest): Bucket => (request.method === 'GET' || request.method === 'HEAD' ? 'reads' : 'writes');

export default fp(
  async function rateLimit(app: FastifyInstance) {
    const { config } = app;
    const on = config.RATE_LIMIT === 'on' || (config.RATE_LIMIT === 'auto' && authModeOf(config) === 'keys');
    if (!on) return;
    const limits: Record<Bucket, number> = { reads: config.RATE_LIMIT_READS_PER_MINUTE, writes: config.RATE_LIMIT_WRITES_PER_MINUTE };
    app.log.info({ limits }, 'per-tenant rate limits on');
    // After the auth hook (registered before this plugin): the tenant is known, strangers were already refused.
    app.addHook('onRequest', async (request, reply) => {
      if (!(request.routeOptions.url ?? '').startsWith('/v1/') || !request.tenantId) return;
      const bucket = bucketOf(request);
      const perMinute = limits[bucket];
      if (perMinute <= 0) return;
      const take = await takeToken(app.redis, config.QUEUE_PREFIX, request.tenantId, bucket, perMinute).catch(() => null);
      if (!take) {
        request.log.warn({ bucket }, 'rate limiter did not answer; request let through');
        return;
      }
      reply.header('ratelimit-limit', String(take.limit));
      reply.header('ratelimit-remaining', String(take.remaining));
      reply.header('ratelimit-reset', String(Math.ceil(take.resetMs / 1000)));
      if (take.allowed) return;
      const seconds = Math.max(1, Math.ceil(take.retryAfterMs / 1000));
      return reply
        .code(429)
        .header('retry-after', String(seconds))
        .send({ error: { code: 'rate_limited', message: `Too many ${bucket === 'reads' ? 'reads' : 'writes'} for this tenant: the limit is ${perMinute} a minute; retry in ${seconds} s.` } });
    });
  },
  { name: 'rate-limit', dependencies: ['services', 'auth'] },
);

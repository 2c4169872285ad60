/**
 * The API's connections: Postgres (Prisma), Redis + the fine-tune queue (BullMQ) and file storage,
 * decorated on the instance and closed with it.
 */
import { createDb, type Db } from '@graft/db';
import { createFineTuneQueue, createRedis, readyWithin, startReconciler } from '@graft/queue';
import { createStorage, type Storage } from '@graft/storage';
import type { FineTuneJobData } from '@graft/contracts';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { ApiConfig } from '../config.ts';
import { sweepTemp } from '../temp-sweep.ts';

declare module 'fastify' {
  interface FastifyInstance {
    config: ApiConfig;
    db: Db;
    redis: Redis;
    queue: Queue<FineTuneJobData>;
    storage: Storage;
  }
}

export default fp(
  async function services(app: FastifyInstance, opts: { config: ApiConfig }) {
    const { config } = opts;
    app.decorate('config', config);
    // Bounded waits: a down or frozen dependency fails a request within these (then 503), never hangs it.
    const db = createDb(config.DATABASE_URL, { connectTimeoutMs: config.PG_CONNECT_TIMEOUT_MS, statementTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS });
    const redis = createRedis(config.REDIS_URL, { commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS });
    redis.on('error', (err) => app.log.warn({ err: err.message }, 'redis connection error'));
    // Without an offline queue, commands sent before the first connect would fail: give it a moment (Redis may be down: go on).
    await readyWithin(redis, 2_000);
    const queue = createFineTuneQueue({ redisUrl: config.REDIS_URL, prefix: config.QUEUE_PREFIX }, redis);
    queue.on('error', (err) => app.log.warn({ err: err.message }, 'queue error'));
    const storage = createStorage(config);
    await storage.init();
    await sweepTemp(storage.path('tmp'), app.log);
    app.decorate('db', db);
    app.decorate('redis', redis);
    app.decorate('queue', queue);
    app.decorate('storage', storage);
    // The API takes part in the reconciler too: queued jobs that Redis lost are enqueued again and
    // cancels of ownerless jobs complete even while no worker runs.
    const reconciler = await startReconciler({
      db, redis, queue, prefix: config.QUEUE_PREFIX, redisUrl: config.REDIS_URL, intervalMs: config.RECONCILE_INTERVAL_MS,
      heartbeatTtlMs: config.JOB_HEARTBEAT_TTL_MS, log: app.log.child({ component: 'reconciler' }),
    });
    app.addHook('onClose', async () => {
      await reconciler.close();
      await queue.close();
      redis.disconnect();
      await db.$disconnect();
    });
  },
  { name: 'services' },
);

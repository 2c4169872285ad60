/**
 * The API's connections: Postgres (Prisma), Redis + the fine-tune queue (BullMQ) and file storage,
 * decorated on the instance and closed with it.
 */
import { createDb, type Db } from '@graft/db';
import { createFineTuneQueue, createRedis } from '@graft/queue';
import { createStorage, type Storage } from '@graft/storage';
import type { FineTuneJobData } from '@graft/contracts';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { ApiConfig } from '../config.ts';

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
    const db = createDb(config.DATABASE_URL);
    const redis = createRedis(config.REDIS_URL);
    redis.on('error', (err) => app.log.warn({ err: err.message }, 'redis connection error'));
    const queue = createFineTuneQueue({ redisUrl: config.REDIS_URL, prefix: config.QUEUE_PREFIX }, redis);
    queue.on('error', (err) => app.log.warn({ err: err.message }, 'queue error'));
    const storage = createStorage(config);
    await storage.init();
    app.decorate('db', db);
    app.decorate('redis', redis);
    app.decorate('queue', queue);
    app.decorate('storage', storage);
    app.addHook('onClose', async () => {
      await queue.close();
      redis.disconnect();
      await db.$disconnect();
    });
  },
  { name: 'services' },
);

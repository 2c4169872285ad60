import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import { listWorkers } from '@graft/queue';

export default async function health(app: FastifyInstance) {
  app.get('/healthz', { schema: { tags: ['health'], summary: 'The process is up', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));

  const Check = Type.Union([Type.Literal('ok'), Type.String()]);
  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Postgres and Redis answer; lists live workers and their TensorFlow.js backend',
        response: {
          '2xx': Type.Object({
            status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
            checks: Type.Object({ postgres: Check, redis: Check }),
            workers: Type.Array(Type.Object({ id: Type.String(), backend: Type.String(), concurrency: Type.Integer(), since: Type.String() })),
          }),
        },
      },
    },
    async (_req, res) => {
      const [postgres, redis] = await Promise.all([
        app.db.$queryRaw`SELECT 1`.then(() => 'ok', (e: Error) => `error: ${e.message.split('\n')[0]}`),
        app.redis.ping().then(() => 'ok', (e: Error) => `error: ${e.message}`),
      ]);
      const workers = redis === 'ok' ? await listWorkers(app.redis, app.config.QUEUE_PREFIX).catch(() => []) : [];
      const ready = postgres === 'ok' && redis === 'ok';
      return res.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks: { postgres, redis }, workers });
    },
  );
}

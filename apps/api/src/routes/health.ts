import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import { listWorkers } from '@graft/queue';
import { described } from '../route-schemas.ts';

export default async function health(app: FastifyInstance) {
  app.get('/healthz', { schema: { operationId: 'health', tags: ['health'], summary: 'The process is up', response: { 200: described(Type.Object({ status: Type.Literal('ok') }), 'The process is up.') } } }, async () => ({
    status: 'ok' as const,
  }));

  const Check = Type.String({ description: '`ok`, or `error: <why>`.' });
  const Readiness = Type.Object(
    {
      status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
      checks: Type.Object({ postgres: Check, redis: Check }),
      workers: Type.Array(Type.Object({ id: Type.String(), backend: Type.String(), concurrency: Type.Integer(), since: Type.String() })),
    },
    { title: 'Readiness' },
  );
  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'ready',
        tags: ['health'],
        summary: 'Postgres and Redis answer; lists live workers and their TensorFlow.js backend',
        response: {
          200: described(Readiness, 'Postgres and Redis answer.'),
          503: described(Readiness, 'A dependency does not answer: `checks` says which.'),
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

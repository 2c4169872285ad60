import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import { listWorkers } from '@graft/queue';
import { described } from '../route-schemas.ts';

/** Per-dependency deadline of /readyz, then the workers' list: together under 2 s. */
const PROBE_MS = 1_200;
const WORKERS_MS = 500;

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

async function probe(fn: () => Promise<unknown>, ms: number): Promise<string> {
  try {
    await withDeadline(Promise.resolve().then(fn), ms);
    return 'ok';
  } catch (e) {
    return `error: ${(e as Error).message.trim().split('\n').at(-1)?.slice(0, 200)}`;
  }
}

export default async function health(app: FastifyInstance) {
  // Public (no API key): `security: []` overrides the document's global bearerAuth.
  app.get('/healthz', { schema: { operationId: 'health', tags: ['health'], summary: 'The process is up', security: [], response: { 200: described(Type.Object({ status: Type.Literal('ok') }), 'The process is up.') } } }, async () => ({
    status: 'ok' as const,
  }));

  const Check = Type.String({ description: '`ok`, or `error: <why>`.' });
  const Readiness = Type.Object(
    {
      status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
      checks: Type.Object({ postgres: Check, redis: Check }),
      workers: Type.Array(
        Type.Object({
          id: Type.String(),
          backend: Type.String(),
          frozenRuntime: Type.Optional(Type.String({ description: 'What computes frozen image bases\' features: `onnx` (ONNX Runtime, after a check against TensorFlow.js) or `tfjs`.' })),
          concurrency: Type.Integer(),
          since: Type.String(),
        }),
      ),
    },
    { title: 'Readiness' },
  );
  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'ready',
        tags: ['health'],
        security: [],
        summary: 'Postgres and Redis answer; lists live workers, their TensorFlow.js backend and frozen-base runtime',
        response: {
          200: described(Readiness, 'Postgres and Redis answer.'),
          503: described(Readiness, 'A dependency does not answer: `checks` says which.'),
        },
      },
    },
    async (_req, res) => {
      // Each dependency has its own deadline, so a frozen one is named and the answer comes within 2 s.
      const [postgres, redis] = await Promise.all([
        probe(() => app.db.$queryRaw`SELECT 1`, PROBE_MS),
        probe(() => app.redis.ping(), PROBE_MS),
      ]);
      const live = redis === 'ok' ? await withDeadline(listWorkers(app.redis, app.config.QUEUE_PREFIX), WORKERS_MS).catch(() => []) : [];
      const workers = live.map((w) => ({ id: w.id, backend: w.capabilities.backend, ...(w.capabilities.frozenRuntime ? { frozenRuntime: w.capabilities.frozenRuntime } : {}), concurrency: w.capabilities.concurrency, since: w.startedAt }));
      const ready = postgres === 'ok' && redis === 'ok';
      if (!ready) res.header('retry-after', '5');
      return res.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks: { postgres, redis }, workers });
    },
  );
}

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { WorkerList } from '@graft/contracts';
import { listWorkers } from '@graft/queue';
import { described, errorResponses } from '../../../route-schemas.ts';

/**
 * Live workers, from the registry they keep in Redis (a record per worker, refreshed by its
 * heartbeat; a worker that stops or dies is gone within WORKER_TTL_SECONDS). One page: a deployment
 * has tens of workers, not thousands.
 */
const workerRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '',
    {
      schema: {
        operationId: 'listWorkers',
        tags: ['workers'],
        summary: 'Live workers: their capabilities (backend, GPUs, RAM) and the fine-tunes they run now',
        response: { 200: described(WorkerList, 'Every live worker, by id (one page).'), ...errorResponses() },
      },
    },
    async () => ({ data: await listWorkers(app.redis, app.config.QUEUE_PREFIX), hasMore: false, nextCursor: null }),
  );
};

export default workerRoutes;

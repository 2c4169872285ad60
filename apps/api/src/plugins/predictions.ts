/** The prediction threads (`app.predictions`), ended with the API. */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { PredictPool } from '../predict/pool.ts';

declare module 'fastify' {
  interface FastifyInstance {
    predictions: PredictPool;
  }
}

export default fp(
  async function predictions(app: FastifyInstance) {
    const { PREDICT_THREADS, PREDICT_CACHE_MAX_BYTES, PREDICT_TIMEOUT_MS } = app.config;
    const pool = new PredictPool({ threads: PREDICT_THREADS, maxCacheBytes: PREDICT_CACHE_MAX_BYTES, timeoutMs: PREDICT_TIMEOUT_MS });
    app.decorate('predictions', pool);
    app.addHook('onClose', () => pool.close());
  },
  { name: 'predictions', dependencies: ['services'] },
);

/**
 * `GET /metrics` in the Prometheus text format (prom-client): request latency by route, the queue's
 * jobs by BullMQ state, fine-tunes by status, live workers, and the process' own metrics. A registry
 * per app (several apps can share a process in tests). Gauges read their source at scrape time;
 * a source that does not answer leaves its last values rather than failing the scrape.
 */
import { FINE_TUNE_STATUSES } from '@graft/contracts';
import { listWorkers } from '@graft/queue';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed', 'waiting-children'] as const;

export default fp(async function metrics(app: FastifyInstance) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const http = new Histogram({
    name: 'graft_http_request_duration_seconds',
    help: 'HTTP request latency, by method, route (the route pattern, e.g. /v1/fine-tunes/:id) and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    // Unmatched URLs share one label, so a scan of random paths cannot grow the series without bound.
    const route = request.routeOptions.url ?? 'unmatched';
    if (route === '/metrics') return;
    http.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  new Gauge({
    name: 'graft_queue_jobs',
    help: 'Jobs in the fine-tune queue (BullMQ), by state.',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const counts = await app.queue.getJobCounts(...QUEUE_STATES).catch(() => null);
      if (counts) for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
    },
  });
  new Gauge({
    name: 'graft_fine_tunes',
    help: 'Fine-tunes in Postgres, by status.',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const rows = await app.db.fineTune.groupBy({ by: ['status'], _count: { _all: true } }).catch(() => null);
      if (!rows) return;
      for (const status of FINE_TUNE_STATUSES) this.set({ status }, rows.find((r) => r.status === status)?._count._all ?? 0);
    },
  });
  new Gauge({
    name: 'graft_workers',
    help: 'Live workers (registry in Redis), by accelerator and backend.',
    labelNames: ['accelerator', 'backend'] as const,
    registers: [registry],
    async collect() {
      const workers = await listWorkers(app.redis, app.config.QUEUE_PREFIX).catch(() => null);
      if (!workers) return;
      this.reset();
      for (const w of workers) this.inc({ accelerator: w.capabilities.accelerator, backend: w.capabilities.backend });
    },
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
});

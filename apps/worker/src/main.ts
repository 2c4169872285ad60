/** Starts a worker: configuration, the database (migrated, or checked with MIGRATE_ON_START=false), the TensorFlow.js backend check, then the queue. */
import { prepareDatabase } from '@graft/db';
import { initBackend } from '@graft/engine';
import pino from 'pino';
import { loadWorkerConfig } from './config.ts';
import { startWorkerHttp } from './http.ts';
import { startWorker, type RunningWorker } from './worker.ts';

const config = loadWorkerConfig();
const log = pino({ level: config.LOG_LEVEL, base: { service: 'worker', worker: config.WORKER_ID } });
await prepareDatabase(config.DATABASE_URL, { migrate: config.MIGRATE_ON_START });
// Training runs in child processes; this picks (and logs) the backend they will use.
const backend = await initBackend();
log.info({ backend: backend.name, tried: backend.tried }, 'tensorflow.js backend selected');
let worker: RunningWorker | undefined;
// Up before the queue consumer, so a health check sees "starting" rather than a refused connection.
const http = await startWorkerHttp(config.WORKER_METRICS_PORT, config.WORKER_METRICS_HOST, {
  unhealthy: () => (worker ? worker.unhealthy() : 'starting'),
});
log.info({ port: http.port, host: config.WORKER_METRICS_HOST }, 'worker http listening');
worker = await startWorker(config, log, backend.name);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'shutting down');
    (async () => {
      await worker?.close();
      await http.close();
    })().then(() => process.exit(0), (err) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  });
}

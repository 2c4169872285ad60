/** Starts a worker: configuration, migrations, the TensorFlow.js backend check, then the queue. */
import { ensureDatabase, migrate } from '@graft/db';
import { initBackend } from '@graft/engine';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { loadWorkerConfig } from './config.ts';
import { startWorker } from './worker.ts';

const MIGRATIONS = fileURLToPath(new URL('../../../prisma/migrations', import.meta.url));

const config = loadWorkerConfig();
const log = pino({ level: config.LOG_LEVEL, base: { service: 'worker', worker: config.WORKER_ID } });
await ensureDatabase(config.DATABASE_URL);
await migrate(config.DATABASE_URL, MIGRATIONS);
// Training runs in child processes; this picks (and logs) the backend they will use.
const backend = await initBackend();
log.info({ backend: backend.name, tried: backend.tried }, 'tensorflow.js backend selected');
const worker = await startWorker(config, log, backend.name);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'shutting down');
    worker.close().then(() => process.exit(0), (err) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  });
}

/** Starts a worker: configuration, the database (migrated, or checked with MIGRATE_ON_START=false), the TensorFlow.js backend check, then the queue. */
import { prepareDatabase } from '@graft/db';
import { frozenRuntimeSetting, initBackend, onnxRuntimeLoads } from '@graft/engine';
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
// Frozen image bases: ONNX Runtime unless the setting or the backend says tfjs, or it cannot load here.
const frozen = frozenRuntimeSetting(backend.name);
const ort = frozen.runtime === 'onnx' ? await onnxRuntimeLoads() : null;
const frozenRuntime = ort && !ort.ok ? 'tfjs' : frozen.runtime;
log.info({ frozenRuntime, requested: frozen.requested, threads: frozen.threads, reason: frozen.reason ?? (ort && !ort.ok ? ort.error : null) }, 'frozen base runtime');
let worker: RunningWorker | undefined;
// Up before the queue consumer, so a health check sees "starting" rather than a refused connection.
const http = await startWorkerHttp(config.WORKER_METRICS_PORT, config.WORKER_METRICS_HOST, {
  unhealthy: () => (worker ? worker.unhealthy() : 'starting'),
  info: { backend: backend.name, frozenRuntime },
  metrics: () => (worker ? worker.metrics() : Promise.resolve({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: '' })),
});
log.info({ port: http.port, host: config.WORKER_METRICS_HOST }, 'worker http listening');
worker = await startWorker(config, log, backend.name, frozenRuntime);

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

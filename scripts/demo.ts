/**
 * `npm run demo`: starts the API and a worker, uploads the bundled sample (MNIST digits 5-9 as
 * PNG folders), fine-tunes graft's own base (a CNN pretrained on digits 0-4 only) on it, prints
 * progress and the result, and saves the fine-tuned model. Everything goes over the REST API, as
 * another backend would use it.
 */
import { prepareDatabase } from '@graft/db';
import type { EpochMetrics, FineTune, ImageDataset } from '@graft/contracts';
import { spawn } from 'node:child_process';
import { openAsBlob } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../apps/api/src/app.ts';
import { loadApiConfig } from '../apps/api/src/config.ts';
import { ensureLocalServices, type LocalServices } from './lib/local-services.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SAMPLE = `${ROOT}samples/digits-5-9.zip`;
const say = (s = '') => process.stdout.write(`${s}\n`);

let services: LocalServices;
try {
  // Without DATABASE_URL / REDIS_URL and nothing at the defaults: an embedded PostgreSQL and a redis-server under .data/.
  services = await ensureLocalServices({ dataDir: `${ROOT}.data`, say: (line) => say(line.replace('[services] ', '')) });
} catch (err) {
  say((err as Error).message);
  process.exit(1);
}
const config = loadApiConfig({ ...process.env, DATABASE_URL: services.DATABASE_URL, REDIS_URL: services.REDIS_URL, PORT: process.env.PORT ?? '0' });
try {
  await prepareDatabase(config.DATABASE_URL, { migrate: true });
} catch (err) {
  say(`Cannot use PostgreSQL at ${config.DATABASE_URL}: ${(err as Error).message}`);
  await services.stop();
  process.exit(1);
}

const app = await buildApp(config, { logger: false });
await app.listen({ port: config.PORT, host: config.HOST });
const address = app.server.address();
const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : config.PORT}`;
const worker = spawn(process.execPath, ['--import', 'tsx', 'apps/worker/src/main.ts'], {
  cwd: ROOT,
  env: { ...process.env, DATABASE_URL: config.DATABASE_URL, REDIS_URL: config.REDIS_URL, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', MIGRATE_ON_START: 'false', WORKER_METRICS_PORT: process.env.WORKER_METRICS_PORT ?? '0' },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const shutdown = async (code: number) => {
  worker.kill('SIGTERM');
  await new Promise((r) => (worker.exitCode !== null ? r(null) : worker.once('exit', r)));
  await app.close();
  await services.stop();
  process.exit(code);
};
process.once('SIGINT', () => void shutdown(130));

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body instanceof FormData ? { body } : body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  const json = (await res.json()) as T & { error?: { code: string; message: string } };
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${json.error?.code}: ${json.error?.message}`);
  return json;
}

try {
  say(`graft demo — API on ${base}, one worker process\n`);
  const form = new FormData();
  form.set('task', 'image-classification');
  form.set('name', 'MNIST digits 5-9 (sample)');
  form.set('file', await openAsBlob(SAMPLE), 'digits-5-9.zip');
  const ds = await api<ImageDataset>('POST', '/v1/datasets', form);
  say(`1. Uploaded ${ds.id}: ${ds.imageCount} images, ${ds.classes.length} classes (${ds.classes.map((c) => `${c.name} ${c.images}`).join(', ')}), imbalance ratio ${ds.balance.imbalanceRatio}`);

  const ft = await api<FineTune>('POST', '/v1/fine-tunes', {
    baseModel: 'bm_mnist_cnn',
    dataset: ds.id,
    validationSplit: 0.2,
    hyperparameters: { epochs: 12, batchSize: 16, learningRate: 0.003 },
    seed: 42,
    metadata: { source: 'npm run demo' },
  });
  say(`2. Fine-tune ${ft.id} queued: base bm_mnist_cnn (pretrained on digits 0-4 only), frozen; new head for 5-9`);

  let job = ft;
  let shown = 0;
  const started = Date.now();
  while (job.status === 'queued' || job.status === 'running') {
    await new Promise((r) => setTimeout(r, 500));
    job = await api<FineTune>('GET', `/v1/fine-tunes/${ft.id}`);
    const { data } = await api<{ data: EpochMetrics[] }>('GET', `/v1/fine-tunes/${ft.id}/metrics`);
    for (const m of data.slice(shown)) {
      say(`   epoch ${String(m.epoch).padStart(2)}/${job.progress.epochs}  loss ${m.loss.toFixed(3)}  acc ${m.accuracy.toFixed(3)}  val_loss ${m.valLoss?.toFixed(3)}  val_acc ${m.valAccuracy?.toFixed(3)}`);
    }
    shown = data.length;
    if (Date.now() - started > 10 * 60_000) throw new Error('the job did not finish in 10 minutes');
  }
  const { data: events } = await api<{ data: { level: string; message: string }[] }>('GET', `/v1/fine-tunes/${ft.id}/events?limit=100`);
  for (const e of events.filter((e) => e.level === 'warning')) say(`   warning: ${e.message}`);
  if (job.status !== 'succeeded' || !job.result) throw new Error(`job ${job.status}: ${job.error?.message ?? ''}`);

  const r = job.result;
  say(`3. ${job.status} in ${((Date.parse(job.finishedAt!) - Date.parse(job.startedAt!)) / 1000).toFixed(1)} s on the ${r.backend} backend: validation accuracy ${((r.valAccuracy ?? 0) * 100).toFixed(1)}% on ${r.validationImages} held-out images`);
  if (r.stoppedEarly) say(`   early stopping ended training after epoch ${r.epochsRun}; the model has the weights of epoch ${r.bestEpoch} (lowest validation loss)`);
  for (const c of r.perClass) say(`   ${c.name.padEnd(8)} precision ${c.precision.toFixed(2)}  recall ${c.recall.toFixed(2)}  f1 ${c.f1.toFixed(2)}  (n=${c.support})`);

  const res = await fetch(`${base}${job.model!.url}`);
  const out = resolve(ROOT, '.data/demo', `${ft.id}.zip`);
  await mkdir(resolve(ROOT, '.data/demo'), { recursive: true });
  await writeFile(out, Buffer.from(await res.arrayBuffer()));
  say(`4. Model (${job.model!.bytes} bytes: model.json, weights, labels.json, preprocessing.json, training.json):`);
  say(`   saved to   ${out}`);
  say(`   stored at  ${resolve(config.STORAGE_DIR, 'models', ft.id, 'model.zip')}`);
  say(`   with \`npm start\` running: curl -o model.zip http://localhost:3000${job.model!.url}`);
  await shutdown(0);
} catch (err) {
  say(`demo failed: ${(err as Error).message}`);
  await shutdown(1);
}

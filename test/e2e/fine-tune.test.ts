/**
 * End to end across processes: the HTTP API (real port), a worker process, Postgres, Redis and
 * files on disk. A user uploads the bundled sample, fine-tunes, polls, downloads the model and
 * uses it; cancels a running job; sees a job fail with a reason.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, preprocessImage, readArchiveImages } from '@graft/engine';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import yauzl from 'yauzl';
import { createTestEnv, type TestEnv } from '../helpers/env.ts';
import { startApi, startWorker, waitFor, type WorkerProcess } from '../helpers/processes.ts';

const SAMPLE = fileURLToPath(new URL('../../samples/digits-5-9.zip', import.meta.url));

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;
let datasetId: string;

before(async () => {
  env = await createTestEnv('e2e');
  api = await startApi(env);
  worker = await startWorker(env);
  const res = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', SAMPLE);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  datasetId = res.body.id;
});
after(async () => {
  await worker?.stop();
  await api?.close();
});

const get = async (path: string) => (await request(api.url).get(path)).body;
const finished = (id: string, timeoutMs = 180_000) =>
  waitFor(`job ${id} to finish`, async () => {
    const job = await get(`/v1/fine-tunes/${id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : null;
  }, timeoutMs, 250);

function readZip(buf: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const files = new Map<string, Buffer>();
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return reject(e);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            files.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(files));
      zip.readEntry();
    });
  });
}

describe('fine-tune jobs through the API and a worker process', () => {
  test('a job runs from POST to succeeded, and the downloaded model does what the job reported', async () => {
    const ready = await get('/readyz');
    assert.equal(ready.workers.length, 1);
    assert.match(ready.workers[0].backend, /^(wasm|cpu|tensorflow)$/);

    const created = await request(api.url).post('/v1/fine-tunes').send({
      baseModel: 'bm_mnist_cnn', dataset: datasetId, seed: 42, earlyStopping: false, hyperparameters: { epochs: 6, batchSize: 16, learningRate: 0.003 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const job = await finished(created.body.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.deepEqual(job.progress.epoch, 6);
    assert.ok(job.startedAt && job.finishedAt);
    assert.equal(job.metrics.epoch, 6);

    const { data: metrics } = await get(`/v1/fine-tunes/${job.id}/metrics`);
    assert.deepEqual(metrics.map((m: { epoch: number }) => m.epoch), [1, 2, 3, 4, 5, 6]);
    for (const m of metrics) for (const k of ['loss', 'accuracy', 'valLoss', 'valAccuracy']) assert.equal(typeof m[k], 'number', k);

    const { data: events } = await get(`/v1/fine-tunes/${job.id}/events?limit=100`);
    const types = events.map((e: { type: string }) => e.type);
    for (const t of ['status', 'backend', 'dataset', 'epoch']) assert.ok(types.includes(t), `event ${t} in ${types}`);
    assert.equal(events[0].message, 'Job queued');
    assert.match(events.at(-1).message, /^Job succeeded/);

    const r = job.result;
    assert.deepEqual(r.classes, ['eight', 'five', 'nine', 'seven', 'six'].sort());
    assert.ok(r.valAccuracy > 0.7, `validation accuracy ${r.valAccuracy}`);
    assert.equal(r.perClass.length, 5);
    assert.equal(r.confusionMatrix.flat().reduce((a: number, b: number) => a + b, 0), r.validationImages);

    // Download, load with tf.loadLayersModel, and score the validation images named in training.json.
    const download = await request(api.url).get(job.model.url).buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    });
    assert.equal(download.status, 200);
    assert.equal(download.headers['content-type'], 'application/zip');
    const files = await readZip(download.body as Buffer);
    assert.equal((download.body as Buffer).length, job.model.bytes);
    for (const f of ['model.json', 'labels.json', 'preprocessing.json', 'training.json']) assert.ok(files.has(f), f);
    const modelJson = JSON.parse(files.get('model.json')!.toString());
    const weightPaths: string[] = modelJson.weightsManifest.flatMap((g: { paths: string[] }) => g.paths);
    const weightData = Buffer.concat(weightPaths.map((p) => files.get(p)!));
    await initBackend();
    const model = await tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: modelJson.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights), weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength) }),
    );
    const labels: string[] = JSON.parse(files.get('labels.json')!.toString());
    const pre = JSON.parse(files.get('preprocessing.json')!.toString());
    const training = JSON.parse(files.get('training.json')!.toString());
    const validation: string[] = training.split.validation;
    assert.equal(validation.length, r.validationImages);
    let correct = 0;
    for await (const img of readArchiveImages(SAMPLE, new Set(validation))) {
      const predicted = tf.tidy(() => (model.predict(preprocessImage(img.data, pre).expandDims(0)) as tf.Tensor).argMax(-1).dataSync()[0]!);
      const truth = img.path.split('/').at(-2)!;
      if (labels[predicted] === truth) correct++;
    }
    const accuracy = correct / validation.length;
    assert.ok(Math.abs(accuracy - r.valAccuracy) <= 0.02, `downloaded model ${accuracy} vs reported ${r.valAccuracy}`);

    // Deleting: refused while a job uses it as its base, then the model and checkpoints are gone.
    const modelDir = join(env.STORAGE_DIR, 'models', job.id);
    assert.ok(existsSync(join(modelDir, 'model.zip')) && existsSync(join(modelDir, 'checkpoints')));
    const child = await request(api.url).post('/v1/fine-tunes').send({ baseModel: job.id, dataset: datasetId, hyperparameters: { epochs: 50 } });
    assert.equal(child.status, 201, JSON.stringify(child.body));
    const busy = await request(api.url).delete(`/v1/fine-tunes/${job.id}`);
    assert.deepEqual([busy.status, busy.body.error.code], [409, 'resource_in_use']);
    await request(api.url).post(`/v1/fine-tunes/${child.body.id}/cancel`);
    await finished(child.body.id, 60_000);
    const gone = await request(api.url).delete(`/v1/fine-tunes/${job.id}`);
    assert.equal(gone.status, 200, JSON.stringify(gone.body));
    assert.equal(existsSync(modelDir), false);
    assert.equal((await request(api.url).get(job.model.url)).status, 404);
  });

  test('a running job is cancelled promptly and keeps its events and metrics', async () => {
    const created = await request(api.url).post('/v1/fine-tunes').send({
      baseModel: 'bm_mnist_cnn', dataset: datasetId, seed: 1, earlyStopping: false, hyperparameters: { epochs: 500, batchSize: 2 },
    });
    const id = created.body.id;
    await waitFor('two epochs', async () => (await get(`/v1/fine-tunes/${id}/metrics`)).data.length >= 2, 120_000);
    const cancel = await request(api.url).post(`/v1/fine-tunes/${id}/cancel`);
    assert.equal(cancel.status, 202, JSON.stringify(cancel.body));
    assert.equal(cancel.body.status, 'running');
    assert.ok(cancel.body.cancelRequestedAt);
    const job = await finished(id, 30_000);
    assert.equal(job.status, 'cancelled');
    assert.ok(job.progress.epoch < 500);
    const { data: metrics } = await get(`/v1/fine-tunes/${id}/metrics`);
    assert.ok(metrics.length >= 2);
    const { data: events } = await get(`/v1/fine-tunes/${id}/events?limit=100`);
    assert.match(events.at(-1).message, /^Job cancelled/);
    assert.equal((await request(api.url).get(`/v1/fine-tunes/${id}/model`)).status, 409);
  });

  test('a job whose dataset file is gone fails with a reason the user can act on', async () => {
    const upload = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', SAMPLE);
    const id = upload.body.id;
    await rm(join(env.STORAGE_DIR, 'datasets', `${id}.zip`));
    const created = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mnist_cnn', dataset: id, hyperparameters: { epochs: 1 } });
    const job = await finished(created.body.id, 60_000);
    assert.equal(job.status, 'failed');
    assert.equal(job.error.code, 'dataset_missing');
    assert.match(job.error.message, /upload it again/);
    assert.equal(job.error.param, 'dataset');
  });
});


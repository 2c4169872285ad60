/** The fine-tune API without a worker: jobs stay queued, so validation, idempotency, paging and
 * cancelling a queued job can be checked exactly. Running jobs are covered in test/e2e. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { colourEntries, uploadColourDataset, writeZip } from '../../../test/helpers/fixtures.ts';
import { startApi } from '../../../test/helpers/processes.ts';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let datasetId: string;

before(async () => {
  env = await createTestEnv('finetunes');
  api = await startApi(env);
  datasetId = await uploadColourDataset(api.url, join(env.STORAGE_DIR, 'fx'));
});
after(async () => api.close());

const create = (body: object, key?: string) => {
  const r = request(api.url).post('/v1/fine-tunes').send(body);
  return key ? r.set('Idempotency-Key', key) : r;
};

describe('POST /v1/fine-tunes', () => {
  test('queues a job with defaults filled in', async () => {
    const res = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId, metadata: { team: 'vision' } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const ft = res.body;
    assert.match(ft.id, /^ft_/);
    assert.equal(ft.object, 'fine_tune');
    assert.equal(ft.status, 'queued');
    assert.equal(ft.validationSplit, 0.2);
    assert.deepEqual(ft.hyperparameters, {
      epochs: 10, batchSize: 32, learningRate: 0.001, fineTuneEpochs: 0, fineTuneLearningRate: 0.0001, dropout: 0.2, headUnits: 128, labelSmoothing: 0, l2: 0,
    });
    assert.equal(ft.cutLayer, 'features');
    assert.equal(ft.trainableLayers, 'none');
    assert.deepEqual(ft.earlyStopping, { patience: 3, minDelta: 0, restoreBestWeights: true });
    assert.equal(ft.classWeights, 'none');
    assert.equal(ft.augmentation, null);
    assert.equal(ft.baseline, 'none');
    assert.equal(ft.checkpointEvery, 'epoch');
    assert.equal(ft.topK, 3);
    assert.equal(ft.testDataset, null);
    assert.equal(Number.isInteger(ft.seed), true);
    assert.deepEqual(ft.metadata, { team: 'vision' });
    assert.deepEqual(ft.progress, { phase: '', epoch: 0, epochs: 10, batch: 0, batches: 0 });
    assert.equal(ft.model, null);
    const job = await api.app.queue.getJob(ft.id);
    assert.equal(job?.data.fineTuneId, ft.id);
    const events = await request(api.url).get(`/v1/fine-tunes/${ft.id}/events`);
    assert.deepEqual(events.body.data.map((e: { type: string; message: string }) => [e.type, e.message]), [['status', 'Job queued']]);
    const metrics = await request(api.url).get(`/v1/fine-tunes/${ft.id}/metrics`);
    assert.deepEqual(metrics.body, { data: [] });
  });

  test('plans a second phase when layers are unfrozen, and keeps explicit options', async () => {
    const res = await create({
      baseModel: 'bm_mnist_cnn', dataset: datasetId, trainableLayers: 2, earlyStopping: false, classWeights: 'auto',
      augmentation: { flip: 'horizontal' }, baseline: 'scratch', checkpointEvery: 5, topK: 2, hyperparameters: { learningRate: 0.01 },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const ft = res.body;
    assert.equal(ft.hyperparameters.fineTuneEpochs, 10);
    assert.ok(Math.abs(ft.hyperparameters.fineTuneLearningRate - 0.001) < 1e-12);
    assert.equal(ft.progress.epochs, 20);
    assert.equal(ft.trainableLayers, 2);
    assert.equal(ft.earlyStopping, false);
    assert.deepEqual(ft.augmentation, { flip: 'horizontal', rotation: 0, zoom: 0, brightness: 0, contrast: 0 });
    assert.equal(ft.checkpointEvery, 5);
    const from = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId, trainableLayers: { from: 'conv2' } });
    assert.deepEqual(from.body.trainableLayers, { from: 'conv2' });
    const noAug = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId, augmentation: { rotation: 0 } });
    assert.equal(noAug.body.augmentation, null, 'an augmentation that changes nothing is no augmentation');
  });

  test('checks the test dataset and class weights against the training classes', async () => {
    const missing = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId, testDataset: 'ds_nope' });
    assert.equal(missing.status, 404);
    assert.deepEqual([missing.body.error.code, missing.body.error.param], ['dataset_not_found', 'testDataset']);
    const path = join(env.STORAGE_DIR, 'fx', 'other.zip');
    await writeZip(path, colourEntries(2, { red: [200, 0, 0], green: [0, 200, 0] }));
    const other = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', path);
    const mismatch = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId, testDataset: other.body.id });
    assert.equal(mismatch.status, 422);
    assert.deepEqual([mismatch.body.error.code, mismatch.body.error.param], ['class_mismatch', 'testDataset']);
    assert.match(mismatch.body.error.message, /green/);
    const weights = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId, classWeights: { red: 2, purple: 1 } });
    assert.equal(weights.status, 422);
    assert.deepEqual([weights.body.error.code, weights.body.error.param], ['class_mismatch', 'classWeights.purple']);
    const ok = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId, classWeights: { red: 2, blue: 1 }, testDataset: datasetId });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  });

  test('takes a fine-tune as a base only once it has succeeded', async () => {
    const { body: queued } = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId });
    const res = await create({ baseModel: queued.id, dataset: datasetId });
    assert.equal(res.status, 422);
    assert.deepEqual([res.body.error.code, res.body.error.param], ['base_model_unusable', 'baseModel']);
    assert.match(res.body.error.message, /queued/);
    const get = await request(api.url).get(`/v1/base-models/${queued.id}`);
    assert.equal(get.status, 422);
  });

  const invalid: [string, object, string][] = [
    ['trainableLayers of a wrong kind', { trainableLayers: 'all' }, 'trainableLayers'],
    ['an unknown augmentation', { augmentation: { blur: 1 } }, 'augmentation.blur'],
    ['a negative dropout', { hyperparameters: { dropout: -0.1 } }, 'hyperparameters.dropout'],
    ['checkpointEvery 0', { checkpointEvery: 0 }, 'checkpointEvery'],
    ['epochs out of range', { hyperparameters: { epochs: 0 } }, 'hyperparameters.epochs'],
    ['a string where a number belongs', { hyperparameters: { batchSize: '32' } }, 'hyperparameters.batchSize'],
    ['an unknown field', { epoch: 3 }, 'epoch'],
    ['an unknown hyperparameter', { hyperparameters: { momentum: 0.9 } }, 'hyperparameters.momentum'],
    ['a validation split too large', { validationSplit: 0.9 }, 'validationSplit'],
    ['too many metadata keys', { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }, 'metadata'],
  ];
  for (const [what, extra, param] of invalid) {
    test(`rejects ${what} (400, param ${param})`, async () => {
      const res = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId, ...extra });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'invalid_request');
      assert.equal(res.body.error.param, param);
    });
  }

  test('rejects a missing field and a broken JSON body', async () => {
    const missing = await create({ dataset: datasetId });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.param, 'baseModel');
    assert.match(missing.body.error.message, /baseModel is required/);
    const broken = await request(api.url).post('/v1/fine-tunes').set('content-type', 'application/json').send('{"baseModel":');
    assert.equal(broken.status, 400);
    assert.equal(broken.body.error.code, 'invalid_request');
  });

  test('names an unknown base model or dataset', async () => {
    const base = await create({ baseModel: 'bm_nope', dataset: datasetId });
    assert.equal(base.status, 404);
    assert.deepEqual([base.body.error.code, base.body.error.param], ['base_model_not_found', 'baseModel']);
    const ds = await create({ baseModel: 'bm_mnist_cnn', dataset: 'ds_nope' });
    assert.equal(ds.status, 404);
    assert.deepEqual([ds.body.error.code, ds.body.error.param], ['dataset_not_found', 'dataset']);
  });

  test('returns the same job for a repeated Idempotency-Key, and refuses it for another body', async () => {
    const body = { baseModel: 'bm_mnist_cnn', dataset: datasetId, seed: 7 };
    const first = await create(body, 'key-1');
    assert.equal(first.status, 201);
    const again = await create({ seed: 7, dataset: datasetId, baseModel: 'bm_mnist_cnn' }, 'key-1');
    assert.equal(again.status, 200);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.body.id, first.body.id);
    const other = await create({ ...body, seed: 8 }, 'key-1');
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, 'idempotency_key_reused');
    const concurrent = await Promise.all([1, 2, 3].map(() => create(body, 'key-2')));
    assert.equal(new Set(concurrent.map((r) => r.body.id)).size, 1);
    assert.deepEqual(concurrent.map((r) => r.status).sort(), [200, 200, 201]);
  });
});

describe('listing, cancelling, downloading', () => {
  test('pages jobs newest first and filters by status', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId })).body.id);
    const page1 = await request(api.url).get('/v1/fine-tunes?limit=2');
    assert.deepEqual(page1.body.data.map((j: { id: string }) => j.id), [ids[2], ids[1]]);
    assert.equal(page1.body.hasMore, true);
    const page2 = await request(api.url).get(`/v1/fine-tunes?limit=2&after=${page1.body.nextCursor}`);
    assert.equal(page2.body.data[0].id, ids[0]);
    await request(api.url).post(`/v1/fine-tunes/${ids[0]}/cancel`);
    const cancelled = await request(api.url).get('/v1/fine-tunes?status=cancelled');
    assert.deepEqual(cancelled.body.data.map((j: { id: string }) => j.id), [ids[0]]);
    const bad = await request(api.url).get('/v1/fine-tunes?status=done');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.param, 'status');
  });

  test('cancels a queued job at once and takes it off the queue', async () => {
    const { body: ft } = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId });
    const res = await request(api.url).post(`/v1/fine-tunes/${ft.id}/cancel`);
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'cancelled');
    assert.ok(res.body.finishedAt);
    assert.equal(await api.app.queue.getJob(ft.id), undefined);
    const again = await request(api.url).post(`/v1/fine-tunes/${ft.id}/cancel`);
    assert.equal(again.status, 200);
    const model = await request(api.url).get(`/v1/fine-tunes/${ft.id}/model`);
    assert.equal(model.status, 409);
    assert.equal(model.body.error.code, 'model_not_ready');
    const events = await request(api.url).get(`/v1/fine-tunes/${ft.id}/events`);
    assert.deepEqual(events.body.data.map((e: { message: string }) => e.message), ['Job queued', 'Job cancelled before it started']);
  });

  test('a job without checkpoints lists none, and an unknown checkpoint is a 404', async () => {
    const { body: ft } = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId });
    assert.deepEqual((await request(api.url).get(`/v1/fine-tunes/${ft.id}/checkpoints`)).body, { data: [] });
    const res = await request(api.url).get(`/v1/fine-tunes/${ft.id}/checkpoints/ck_nope/model`);
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'checkpoint_not_found');
  });

  test('pages events with after', async () => {
    const { body: ft } = await create({ baseModel: 'bm_mnist_cnn', dataset: datasetId });
    await request(api.url).post(`/v1/fine-tunes/${ft.id}/cancel`);
    const p1 = await request(api.url).get(`/v1/fine-tunes/${ft.id}/events?limit=1`);
    assert.equal(p1.body.hasMore, true);
    const p2 = await request(api.url).get(`/v1/fine-tunes/${ft.id}/events?limit=1&after=${p1.body.nextCursor}`);
    assert.equal(p2.body.hasMore, false);
    assert.equal(p2.body.data[0].message, 'Job cancelled before it started');
  });

  test('answers 404 for unknown jobs on every route', async () => {
    for (const path of ['', '/events', '/metrics', '/model', '/checkpoints', '/checkpoints/ck_x/model']) {
      const res = await request(api.url).get(`/v1/fine-tunes/ft_nope${path}`);
      assert.equal(res.status, 404, path);
      assert.equal(res.body.error.code, 'fine_tune_not_found');
    }
    const cancel = await request(api.url).post('/v1/fine-tunes/ft_nope/cancel');
    assert.equal(cancel.status, 404);
  });
});

describe('service routes', () => {
  test('health, readiness, base models, OpenAPI and unknown routes', async () => {
    assert.deepEqual((await request(api.url).get('/healthz')).body, { status: 'ok' });
    const ready = await request(api.url).get('/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body.checks, { postgres: 'ok', redis: 'ok' });
    assert.deepEqual(ready.body.workers, []);
    const bases = await request(api.url).get('/v1/base-models');
    const ids = bases.body.data.map((b: { id: string }) => b.id);
    assert.ok(ids.includes('bm_mnist_cnn') && ids.includes('bm_mobilenet_v2'), ids.join());
    const one = await request(api.url).get('/v1/base-models/bm_mobilenet_v2');
    assert.deepEqual(one.body.inputShape, [224, 224, 3]);
    const doc = await request(api.url).get('/openapi.json');
    assert.equal(doc.body.openapi, '3.1.0');
    for (const p of ['/v1/datasets', '/v1/fine-tunes', '/v1/fine-tunes/{id}/cancel', '/v1/fine-tunes/{id}/model', '/v1/base-models']) assert.ok(doc.body.paths[p], p);
    assert.match(doc.body.info.description, /idempotency_key_reused/);
    const missing = await request(api.url).get('/v1/nothing');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'not_found');
  });
});

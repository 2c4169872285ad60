/**
 * The practitioner's options end to end: two-phase fine-tuning with checkpoints, a test dataset,
 * the scratch baseline, and a finished fine-tune used as the base of the next one.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { makeDigitsZip } from '../../packages/engine/test/fixtures.ts';
import { openZip, zipEntries } from '../../packages/engine/src/util/zip.ts';
import { createTestEnv, type TestEnv } from '../helpers/env.ts';
import { startApi, startWorker, waitFor, type WorkerProcess } from '../helpers/processes.ts';

async function zipNames(path: string): Promise<string[]> {
  const zip = await openZip(path);
  const names: string[] = [];
  try {
    for await (const e of zipEntries(zip)) names.push(e.fileName);
  } finally {
    zip.close();
  }
  return names;
}

const SAMPLE = fileURLToPath(new URL('../../samples/digits-5-9.zip', import.meta.url));

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;
let datasetId: string;
let testDatasetId: string;

before(async () => {
  env = await createTestEnv('e2eopts');
  api = await startApi(env);
  worker = await startWorker(env);
  const ds = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', SAMPLE);
  assert.equal(ds.status, 201, JSON.stringify(ds.body));
  datasetId = ds.body.id;
  await mkdir(join(env.STORAGE_DIR, 'fx'), { recursive: true });
  const testZip = join(env.STORAGE_DIR, 'fx', 'test.zip');
  await makeDigitsZip(testZip, { digits: [5, 6, 7, 8, 9], perClass: 20, offset: 700 });
  const test = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', testZip);
  assert.equal(test.status, 201, JSON.stringify(test.body));
  testDatasetId = test.body.id;
});
after(async () => {
  await worker?.stop();
  await api?.close();
});

const get = async (path: string) => (await request(api.url).get(path)).body;
const finished = (id: string, timeoutMs = 240_000) =>
  waitFor(`job ${id} to finish`, async () => {
    const job = await get(`/v1/fine-tunes/${id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : null;
  }, timeoutMs, 250);

describe('engine options through the API', () => {
  let firstJob: { id: string; result: { classes: string[] } };

  test('two phases with checkpoints, a test set and the scratch baseline', async () => {
    const created = await request(api.url).post('/v1/fine-tunes').send({
      baseModel: 'bm_mnist_cnn', dataset: datasetId, testDataset: testDatasetId, seed: 3,
      trainableLayers: 1, earlyStopping: false, baseline: 'scratch', topK: 2,
      hyperparameters: { epochs: 3, fineTuneEpochs: 2, batchSize: 16, learningRate: 0.003 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const job = await finished(created.body.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    firstJob = job;

    const { data: metrics } = await get(`/v1/fine-tunes/${job.id}/metrics`);
    assert.deepEqual(metrics.map((m: { epoch: number; phase: string }) => `${m.phase}:${m.epoch}`), ['head:1', 'head:2', 'head:3', 'fine-tune:4', 'fine-tune:5']);

    const { data: cks } = await get(`/v1/fine-tunes/${job.id}/checkpoints`);
    assert.equal(cks.length, 5);
    assert.equal(cks.filter((c: { isBest: boolean }) => c.isBest).length, 1);
    const best = cks.find((c: { isBest: boolean }) => c.isBest);
    assert.equal(best.valLoss, Math.min(...cks.map((c: { valLoss: number }) => c.valLoss)));
    const download = (url: string) => request(api.url).get(url).buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    });
    // A phase-2 checkpoint is stored complete; a head-phase one as the head plus a reference to the
    // frozen base, downloaded as the complete model (assembled on the first request, then kept).
    const full = cks.find((c: { phase: string }) => c.phase === 'fine-tune');
    const fullDl = await download(full.url);
    assert.equal(fullDl.status, 200);
    assert.equal((fullDl.body as Buffer).length, full.bytes);
    const head = cks.find((c: { phase: string }) => c.phase === 'head');
    for (let i = 0; i < 2; i++) {
      const dl = await download(head.url);
      assert.equal(dl.status, 200);
      const zipPath = join(tmpdir(), `graft-e2e-ck-${process.pid}-${i}.zip`);
      await writeFile(zipPath, dl.body as Buffer);
      try {
        const names = await zipNames(zipPath);
        assert.deepEqual(names.slice(0, 3), ['model.json', 'weights.bin', 'labels.json'], 'a complete model zip');
        assert.ok(!names.includes('checkpoint.json'));
      } finally {
        await rm(zipPath, { force: true });
      }
    }

    const r = job.result;
    assert.equal(r.test.images, 100);
    assert.equal(typeof r.test.accuracy, 'number');
    assert.equal(r.validation.topK.k, 2);
    assert.ok(r.validation.topK.accuracy >= r.validation.accuracy);
    assert.equal(r.baseline.kind, 'scratch');
    assert.equal(typeof r.baseline.valAccuracy, 'number');
    assert.equal(r.baseline.transferGain, r.valAccuracy - r.baseline.valAccuracy);
    const { data: events } = await get(`/v1/fine-tunes/${job.id}/events?limit=100`);
    assert.ok(events.some((e: { type: string }) => e.type === 'baseline_epoch'));
  });

  test('a succeeded fine-tune is the base of the next one (same classes: training continues)', async () => {
    const base = await get(`/v1/base-models/${firstJob.id}`);
    assert.equal(base.id, firstJob.id);
    assert.equal(base.featureLayer, 'features');
    const created = await request(api.url).post('/v1/fine-tunes').send({ baseModel: firstJob.id, dataset: datasetId, seed: 4, hyperparameters: { epochs: 2 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const job = await finished(created.body.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.deepEqual(job.result.classes, firstJob.result.classes);
    const { data: events } = await get(`/v1/fine-tunes/${job.id}/events?limit=100`);
    assert.ok(events.some((e: { type: string }) => e.type === 'continue'), events.map((e: { type: string }) => e.type).join());
  });
});

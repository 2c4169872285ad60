/**
 * Predictions through the API, end to end: a job trained by a worker process, then its validation
 * images (named in its training.json) sent to `POST /v1/fine-tunes/:id/predict` — the answers score
 * exactly the validation accuracy the job reported. Multipart and base64 JSON agree; input order is
 * kept; the model stays loaded; checkpoints predict; every limit answers its own code; the event
 * loop stays free while a thread loads a model.
 */
import assert from 'node:assert/strict';
import { openAsBlob } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Graft, GraftApiError, type FineTune } from '@graft/client';
import { readArchiveImages } from '@graft/engine';
import { sotuExamples, toCsv } from '../../scripts/text/sotu.ts';
import { createTestEnv, type TestEnv } from '../helpers/env.ts';
import { zipEntry } from '../helpers/zip-read.ts';
import { startApi, startWorker, type WorkerProcess } from '../helpers/processes.ts';

const SAMPLE = fileURLToPath(new URL('../../samples/digits-5-9.zip', import.meta.url));

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;
let graft: Graft;
let job: FineTune;
let validation: { path: string; label: string; data: Buffer }[];


async function time<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await fn();
  return [v, performance.now() - t];
}

before(async () => {
  env = await createTestEnv('predict');
  api = await startApi(env);
  worker = await startWorker(env);
  graft = new Graft({ baseUrl: api.url });
  const dataset = await graft.datasets.upload({ task: 'image-classification', file: await openAsBlob(SAMPLE) });
  const created = await graft.fineTunes.create({
    baseModel: 'bm_mnist_cnn', dataset: dataset.id, seed: 11, earlyStopping: false, hyperparameters: { epochs: 4, batchSize: 16, learningRate: 0.003 },
  });
  job = await graft.fineTunes.waitUntilDone(created.id, { timeoutMs: 180_000, pollIntervalMs: 250 });
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  const training = JSON.parse((await zipEntry(await (await graft.fineTunes.download(job.id)).bytes(), 'training.json')).toString('utf8'));
  const names = new Set<string>(training.split.validation);
  validation = [];
  for await (const img of readArchiveImages(SAMPLE, names)) validation.push({ path: img.path, label: img.path.split('/').at(-2)!, data: img.data });
  validation.sort((a, b) => a.path.localeCompare(b.path));
  assert.equal(validation.length, job.result!.validationImages);
});
after(async () => {
  await worker?.stop();
  await api?.close();
});

describe('POST /v1/fine-tunes/:id/predict', () => {
  test('predictions on the validation images score the accuracy the job reported; the event loop stays free meanwhile', async (t) => {
    // The first request starts a thread and loads the model: /healthz keeps answering at once.
    const first = graft.fineTunes.predict(job.id, validation.slice(0, 32).map((v) => v.data));
    let settled = false;
    void first.finally(() => (settled = true));
    const latencies: number[] = [];
    while (!settled) {
      const [res, ms] = await time(() => fetch(`${api.url}/healthz`));
      assert.equal(res.status, 200);
      latencies.push(ms);
      await new Promise((r) => setTimeout(r, 20));
    }
    const cold = await first;
    assert.ok(cold.timing.loadMs > 0);
    // On the pure-JS backends an image layers model is converted and checked, then answered by ONNX Runtime.
    assert.deepEqual(cold.runtime, { name: 'onnx', reason: null });
    const slowest = Math.max(...latencies);
    const figures = `cold request ${cold.timing.queuedMs + cold.timing.loadMs + cold.timing.inferenceMs} ms (thread start ${cold.timing.queuedMs}, load ${cold.timing.loadMs}, inference ${cold.timing.inferenceMs}); /healthz meanwhile: ${latencies.length} calls, slowest ${slowest.toFixed(0)} ms`;
    t.diagnostic(figures);
    assert.ok(slowest < 1000, figures);

    const predictions = [...cold.data];
    for (let i = 32; i < validation.length; i += 32) {
      const page = await graft.fineTunes.predict(job.id, validation.slice(i, i + 32).map((v) => v.data));
      assert.equal(page.timing.loadMs, 0, 'the model stays loaded');
      predictions.push(...page.data);
    }
    assert.equal(predictions.length, validation.length);
    assert.deepEqual(cold.labels, job.result!.classes);
    const correct = predictions.filter((p, i) => p.label === validation[i]!.label).length;
    assert.equal(correct / validation.length, job.result!.valAccuracy, `${correct}/${validation.length} against reported ${job.result!.valAccuracy}`);
    for (const p of predictions) {
      assert.equal(p.topK.length, 3);
      assert.equal(p.topK[0]!.label, p.label);
      assert.equal(p.probability, p.topK[0]!.probability);
      assert.ok(Math.abs(p.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-4);
    }
  });

  test('base64 JSON answers what multipart answers, in input order, with topK', async () => {
    const four = validation.slice(0, 4);
    const multipart = await graft.fineTunes.predict(job.id, four.map((v) => v.data), { topK: 2 });
    const res = await fetch(`${api.url}/v1/fine-tunes/${job.id}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [...four].reverse().map((v, i) => ({ image: (i === 0 ? 'data:image/png;base64,' : '') + v.data.toString('base64') })), topK: 2 }),
    });
    assert.equal(res.status, 200);
    const json = (await res.json()) as typeof multipart;
    assert.deepEqual(json.data.map((p) => p.index), [0, 1, 2, 3]);
    assert.deepEqual(json.data.map((p) => p.probabilities), multipart.data.map((p) => p.probabilities).reverse());
    assert.equal(multipart.data[0]!.topK.length, 2);
    assert.equal(json.model, job.id);
    assert.equal(json.checkpoint, null);
  });

  test('a checkpoint predicts too', async () => {
    const { data: cks } = await graft.fineTunes.checkpoints(job.id);
    const out = await graft.fineTunes.predict(job.id, [validation[0]!.data], { checkpoint: cks[0]!.id });
    assert.equal(out.checkpoint, cks[0]!.id);
    assert.equal(out.data.length, 1);
    assert.ok(out.timing.loadMs > 0, 'a checkpoint is another model');
  });

  test('limits and bad inputs answer their own codes', async () => {
    const code = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => (e instanceof GraftApiError ? [e.status, e.code, e.param] : e));
    const many = Array.from({ length: 33 }, (_, i) => validation[i % validation.length]!.data);
    assert.deepEqual(await code(graft.fineTunes.predict(job.id, many)), [413, 'too_many_inputs', 'inputs']);
    const post = (body: unknown) =>
      fetch(`${api.url}/v1/fine-tunes/${job.id}/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => [r.status, ((await r.json()) as { error: { code: string; param?: string } }).error] as const);
    assert.deepEqual(await post({ inputs: Array.from({ length: 33 }, () => ({ image: 'AAAA' })) }), [413, { code: 'too_many_inputs', message: '33 inputs; at most 32 per request: split them.', param: 'inputs' }]);
    const [status, error] = await post({ inputs: [{ image: validation[0]!.data.toString('base64') }, { image: Buffer.from('not an image').toString('base64') }] });
    assert.deepEqual([status, error.code, error.param], [422, 'invalid_input', 'inputs.1']);
    const [s2, e2] = await post({ inputs: [{ image: '***' }] });
    assert.deepEqual([s2, e2.code, e2.param], [422, 'invalid_input', 'inputs.0']);
    const [s3, e3] = await post({ inputs: ['a text for an image model'] });
    assert.deepEqual([s3, e3.code, e3.param], [422, 'invalid_input', 'inputs.0']);
    const [s4, e4] = await post({ inputs: [] });
    assert.deepEqual([s4, e4.code], [400, 'invalid_request']);
    const [s5, e5] = await post({ inputs: [{ image: 'AAAA' }], topK: 0 });
    assert.deepEqual([s5, e5.code, e5.param], [400, 'invalid_request', 'topK']);
    assert.deepEqual(await code(graft.fineTunes.predict('ft_nope', ['x'])), [404, 'fine_tune_not_found', undefined]);
    assert.deepEqual(await code(graft.fineTunes.predict(job.id, [validation[0]!.data], { checkpoint: 'ck_nope' })), [404, 'checkpoint_not_found', undefined]);

    const queued = await graft.fineTunes.create({ baseModel: 'bm_mnist_cnn', dataset: job.dataset, hyperparameters: { epochs: 500, batchSize: 2 } });
    assert.deepEqual(await code(graft.fineTunes.predict(queued.id, [validation[0]!.data])), [409, 'model_not_ready', undefined]);
    await graft.fineTunes.cancel(queued.id);
    await graft.fineTunes.waitUntilDone(queued.id, { timeoutMs: 60_000 });
  });

  test('a request that outlives PREDICT_TIMEOUT_MS is 504 prediction_timeout', async () => {
    // A second API whose limit (1 ms, counted once its thread has started) is shorter than loading the model and 32 inferences
    // (100 ms was not, on an idle machine).
    const strict = await startApi(env, { PREDICT_TIMEOUT_MS: '1' });
    try {
      const client = new Graft({ baseUrl: strict.url });
      const err = await client.fineTunes.predict(job.id, validation.slice(0, 32).map((v) => v.data)).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof GraftApiError, String(err));
      assert.deepEqual([err.status, err.code], [504, 'prediction_timeout']);
      assert.equal((await fetch(`${strict.url}/healthz`)).status, 200);
    } finally {
      await strict.close();
    }
  });
});

describe('POST /v1/fine-tunes/:id/predict on a text model', () => {
  test('texts as a JSON array score the validation accuracy the job reported', async () => {
    const rows = sotuExamples({ label: 'century', perClass: 30, sentences: 1, maxChars: 200, seed: 21 });
    const dataset = await graft.datasets.upload({ task: 'text-classification', file: new TextEncoder().encode(toCsv(rows)), filename: 'centuries.csv' });
    const created = await graft.fineTunes.create({ baseModel: 'bm_graft_text_encoder', dataset: dataset.id, seed: 5, earlyStopping: false, hyperparameters: { epochs: 3, batchSize: 16, learningRate: 0.01 } });
    const text = await graft.fineTunes.waitUntilDone(created.id, { timeoutMs: 300_000 });
    assert.equal(text.status, 'succeeded', JSON.stringify(text.error));
    const bundle = await (await graft.fineTunes.download(text.id)).bytes();
    const training = JSON.parse((await zipEntry(bundle, 'training.json')).toString('utf8'));
    const encoderFormat = JSON.parse((await zipEntry(bundle, 'text.json')).toString('utf8')).encoder.format as string;
    // Example ids are line numbers of the CSV (the header is line 1).
    const val = (training.split.validation as string[]).map((line) => rows[Number(line) - 2]!);
    const out = await graft.fineTunes.predict(text.id, val.map((r) => r.text));
    assert.equal(out.task, 'text-classification');
    assert.deepEqual(out.runtime, { name: encoderFormat === 'onnx' ? 'onnx' : 'tfjs', reason: null }, `the bundle's encoder is ${encoderFormat}`);
    assert.deepEqual(out.labels, text.result!.classes);
    const correct = out.data.filter((p, i) => p.label === val[i]!.label).length;
    assert.ok(Math.abs(correct / val.length - text.result!.valAccuracy!) < 1e-9, `${correct}/${val.length} against reported ${text.result!.valAccuracy}`);

    const image = await graft.fineTunes.predict(text.id, [validation[0]!.data]).then(() => null, (e: unknown) => e);
    assert.ok(image instanceof GraftApiError && image.code === 'invalid_input' && image.param === 'inputs.0', String(image));
  });
});

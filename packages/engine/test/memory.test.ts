/**
 * Memory: a phase's peak is planned before training — a batch that does not fit trains as
 * micro-batches with accumulated gradients (the same step as the full batch), and a phase where one
 * example does not fit fails the job at once with `insufficient_memory`. The reported case (the
 * scratch baseline of MobileNetV2 at batch 16 on the wasm heap) trains.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { resolveCatalogBase } from '../src/bases/catalog.ts';
import { TrainingError } from '../src/errors.ts';
import { fineTune, initBackend, type TrainingEvent } from '../src/index.ts';
import { accumulatedStep } from '../src/train/accumulate.ts';
import { buildHead, headForwardTraining, type LossOptions } from '../src/train/head.ts';
import { memoryBudget, parseBytes, wasmHeapCap } from '../src/train/memory-plan.ts';
import { makeDigitsZip } from './fixtures.ts';
import { mnistBase, specFor } from './train-helpers.ts';

let dir: string;
let backend = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-memory-'));
  backend = (await initBackend()).name;
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `f` with TRAINER_MEMORY_LIMIT set, restoring the environment after. */
async function withMemoryLimit<T>(limit: string, f: () => Promise<T>): Promise<T> {
  const before = process.env.TRAINER_MEMORY_LIMIT;
  process.env.TRAINER_MEMORY_LIMIT = limit;
  try {
    return await f();
  } finally {
    if (before === undefined) delete process.env.TRAINER_MEMORY_LIMIT;
    else process.env.TRAINER_MEMORY_LIMIT = before;
  }
}

test('gradient accumulation over micro-batches is the full batch step (within 1e-5): dense head with dropout, L2 and class weights', async () => {
  const n = 16;
  const dim = 6;
  const classes = 3;
  const heads = [0, 1].map(() => buildHead(dim, classes, 'none', { units: 8, dropout: 0.3, l2: 0.01, seed: 11 }));
  const classWeights = tf.tensor1d([1, 2, 0.5]);
  const x = tf.randomNormal([n, dim], 0, 1, 'float32', 5) as tf.Tensor2D;
  const y = tf.tensor1d(Array.from({ length: n }, (_, i) => i % classes), 'int32');
  const results = [];
  for (const [i, microBatch] of [n, 3].entries()) {
    const head = heads[i]!;
    const loss: LossOptions = { numClasses: classes, labelSmoothing: 0.1, classWeights, l2: 0.01, kernels: head.kernels };
    const optimizer = tf.train.sgd(0.5);
    const out = await accumulatedStep(optimizer, head.variables, [x], y, ([xs], rows) => headForwardTraining(head, xs as tf.Tensor2D, 1234, rows), loss, microBatch);
    results.push({ out, weights: head.variables.map((v) => v.dataSync() as Float32Array) });
    optimizer.dispose();
  }
  const [full, micro] = results;
  assert.ok(Math.abs(full!.out.loss - micro!.out.loss) < 1e-5, `loss ${full!.out.loss} vs ${micro!.out.loss}`);
  assert.equal(full!.out.correct, micro!.out.correct);
  let maxDiff = 0;
  let moved = 0;
  full!.weights.forEach((w, k) => w.forEach((v, j) => {
    maxDiff = Math.max(maxDiff, Math.abs(v - micro!.weights[k]![j]!));
    moved = Math.max(moved, Math.abs(v - (heads[0]!.variables[k]!.dataSync()[j]! )));
  }));
  console.log(`accumulation (6 micro-batches of ≤3 vs one batch of 16, SGD): max weight difference ${maxDiff.toExponential(2)}`);
  assert.ok(maxDiff < 1e-5, `weights differ by ${maxDiff}`);
  tf.dispose([x, y, classWeights]);
  for (const h of heads) h.model.dispose();
});

test('the budget: the installed wasm heap cap, TRAINER_MEMORY_LIMIT with suffixes', () => {
  assert.equal(wasmHeapCap(), 4294901760, 'tfjs-backend-wasm 4.22 grows its heap to 4 GiB − 64 KiB');
  assert.equal(parseBytes('512m'), 512 * 2 ** 20);
  assert.equal(parseBytes('2G'), 2 * 2 ** 30);
  assert.equal(parseBytes('1000'), 1000);
  assert.equal(parseBytes('lots'), null);
  const limited = memoryBudget(backend as 'wasm', { TRAINER_MEMORY_LIMIT: '64m' });
  assert.ok(limited.bytes <= 64 * 2 ** 20);
  assert.match(limited.source, /TRAINER_MEMORY_LIMIT of 64 MiB/);
});

test('a plan that cannot fit fails at once with insufficient_memory, before any epoch or batch', async () => {
  const zip = join(dir, 'digits.zip');
  await makeDigitsZip(zip, { digits: [5, 6], perClass: 20 });
  const events: TrainingEvent[] = [];
  let batches = 0;
  const started = performance.now();
  const err = await withMemoryLimit('16k', () =>
    fineTune({
      base: mnistBase(),
      datasetPath: zip,
      spec: specFor({ baseline: 'scratch', earlyStopping: false, hyperparameters: { epochs: 2, batchSize: 16 } }),
      outDir: join(dir, 'tiny'),
      hooks: { onEvent: (e) => { events.push(e); }, onBatch: () => { batches++; }, onEpoch: () => { batches++; } },
    }).then(() => null, (e: unknown) => e),
  );
  assert.ok(err instanceof TrainingError, `expected a TrainingError, got ${String(err)}`);
  assert.equal(err.code, 'insufficient_memory');
  assert.match(err.message, /needs an estimated \d+ [KM]iB .*more than the \d+ KiB available \(TRAINER_MEMORY_LIMIT of 16 KiB minus/);
  assert.equal(batches, 0, 'no batch or epoch ran');
  assert.ok(!events.some((e) => e.type === 'features' || e.type === 'baseline'), 'failed before computing features');
  console.log(`insufficient_memory after ${Math.round(performance.now() - started)} ms: ${err.message}`);
});

test('a batch over the budget trains as micro-batches, says so, and the measured step peak stays within the budget', async () => {
  const zip = join(dir, 'digits-micro.zip');
  await makeDigitsZip(zip, { digits: [5, 6], perClass: 40 });
  const events: TrainingEvent[] = [];
  // Room for the feature pass (256 per call) and about 20 examples of the MNIST CNN from scratch.
  const limit = tf.memory().numBytes + 12 * 2 ** 20;
  let out!: Awaited<ReturnType<typeof fineTune>>;
  const before = tf.memory().numBytes;
  const profile = await withMemoryLimit(String(limit), () => tf.profile(async () => {
    out = await fineTune({
      base: mnistBase(),
      datasetPath: zip,
      spec: specFor({ baseline: 'scratch', earlyStopping: false, hyperparameters: { epochs: 1, batchSize: 64 } }),
      outDir: join(dir, 'micro'),
      hooks: { onEvent: (e) => { events.push(e); } },
    });
  }));
  const micro = events.filter((e) => e.type === 'micro_batching');
  assert.equal(micro.length, 1, `one phase micro-batched: ${micro.map((e) => e.message).join(' | ')}`);
  const data = micro[0]!.data as { phase: string; batchSize: number; microBatch: number; estimatedPeakBytes: number; estimatedMicroBatchPeakBytes: number; budgetBytes: number };
  console.log(`micro_batching: ${micro[0]!.message}`);
  assert.equal(data.phase, 'baseline');
  assert.equal(data.batchSize, 64);
  assert.ok(data.microBatch >= 1 && data.microBatch < 64);
  assert.ok(data.estimatedPeakBytes > data.budgetBytes && data.estimatedMicroBatchPeakBytes <= data.budgetBytes);
  assert.equal(out.result.baseline?.epochsRun, 1);
  assert.ok(Number.isFinite(out.result.baseline?.valLoss));
  // What tfjs held at the job's peak (tf.profile) stayed under the limit the plan was given.
  console.log(`job peak ${((profile.peakBytes - before) / 2 ** 20).toFixed(2)} MiB above ${(before / 2 ** 20).toFixed(2)} MiB in use; limit ${(limit / 2 ** 20).toFixed(2)} MiB`);
  assert.ok(profile.peakBytes <= limit, `peak ${profile.peakBytes} over the limit ${limit}`);
});

const slow = process.env.GRAFT_SLOW_TESTS === '1';

/**
 * The reported case: the scratch baseline of MobileNetV2 (224x224 inputs) at batch 16 ran the wasm
 * heap out of memory right after the head phase. With 40 training images (3 baseline steps) it
 * takes about 4.5 minutes on 2 loaded cores, so by default one step's worth (16 training images)
 * proves it through the same pipeline; GRAFT_SLOW_TESTS=1 runs the 40 images.
 */
test('the scratch baseline of bm_mobilenet_v2 at batch 16 (28x28 grey digits) trains as micro-batches instead of running out of memory', { timeout: 20 * 60_000 }, async () => {
  const train = slow ? 40 : 16;
  const zip = join(dir, 'mobilenet-digits.zip');
  await makeDigitsZip(zip, { digits: [5, 6], perClass: (train + 10) / 2 });
  const base = resolveCatalogBase('bm_mobilenet_v2')!;
  const events: TrainingEvent[] = [];
  const started = performance.now();
  const out = await fineTune({
    base,
    datasetPath: zip,
    spec: specFor({ dataset: 'ds_digits', validationSplit: 10 / (train + 10), baseline: 'scratch', earlyStopping: false, hyperparameters: { epochs: 1, batchSize: 16 } }, base, 1),
    outDir: join(dir, 'mobilenet'),
    hooks: { onEvent: (e) => { events.push(e); } },
  });
  const ms = performance.now() - started;
  const micro = events.find((e) => e.type === 'micro_batching');
  console.log(`MobileNetV2 scratch baseline, ${out.result.trainImages} training images, batch 16 on ${backend}: ${Math.round(ms / 1000)} s; ${micro?.message ?? 'no micro-batching'}`);
  assert.equal(out.result.trainImages, train);
  assert.equal(out.result.baseline?.epochsRun, 1);
  if (backend === 'wasm') {
    assert.ok(micro, 'the wasm heap cannot hold batch 16: micro-batching is reported');
    assert.equal((micro.data as { phase: string }).phase, 'baseline');
    assert.ok((micro.data as { microBatch: number }).microBatch < 16);
  }
});

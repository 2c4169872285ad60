/**
 * The two-phase schedule on graft's MNIST base (digits 0-4 → 5-9): phase 2 unfreezes exactly the
 * requested layers; early stopping stops and restores the best epoch; same seed → same metrics
 * with phase 2 and augmentation; cancellation within one batch in every phase.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { fineTune, type TrainingEvent } from '../src/index.ts';
import { directoryLoader } from '../src/bases/model-io.ts';
import { assertCancelsWithinOneBatch, bundleFiles, bundleLayersModel, mnistBase, specFor } from './train-helpers.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
const base = mnistBase();
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-two-phase-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function weightsByName(model: tf.LayersModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const l of model.layers) l.weights.forEach((w) => out.set(w.originalName, w.read().dataSync() as Float32Array));
  return out;
}

test('two phases: the head, then conv2 unfrozen at the lower rate; conv1 stays bit-identical', async () => {
  const batches: { phase: string; epoch: number; epochs: number }[] = [];
  const epochs: { phase: string; epoch: number; valAccuracy: number | null }[] = [];
  const events: TrainingEvent[] = [];
  let t = performance.now();
  const headOnly = await fineTune({
    base,
    datasetPath: SAMPLE,
    spec: specFor({ hyperparameters: { epochs: 6 }, earlyStopping: false }),
    outDir: join(dir, 'head-only'),
  });
  const headOnlyMs = performance.now() - t;
  t = performance.now();
  const out = await fineTune({
    base,
    datasetPath: SAMPLE,
    spec: specFor({ hyperparameters: { epochs: 6, fineTuneEpochs: 4 }, trainableLayers: 1, earlyStopping: false }),
    outDir: join(dir, 'two-phase'),
    hooks: {
      onBatch: (p) => { batches.push(p); },
      onEpoch: (m) => { epochs.push(m); },
      onEvent: (e) => { events.push(e); },
    },
  });
  const twoPhaseMs = performance.now() - t;
  const r = out.result;
  console.log(
    `head only (6 epochs): val acc ${headOnly.result.valAccuracy?.toFixed(3)} loss ${headOnly.result.valLoss?.toFixed(4)} in ${headOnlyMs.toFixed(0)} ms; ` +
      `+ fine-tune conv2 (4 epochs): val acc ${r.valAccuracy?.toFixed(3)} loss ${r.valLoss?.toFixed(4)} in ${twoPhaseMs.toFixed(0)} ms`,
  );
  assert.equal(r.epochsRun, 10);
  assert.deepEqual(epochs.map((e) => `${e.phase}:${e.epoch}`), [1, 2, 3, 4, 5, 6].map((e) => `head:${e}`).concat([7, 8, 9, 10].map((e) => `fine-tune:${e}`)));
  assert.deepEqual([...new Set(batches.map((b) => b.phase))], ['head', 'fine-tune']);
  assert.ok(batches.every((b) => b.epochs === 10), 'progress counts both phases');
  assert.equal(batches.length, 10 * 8);
  assert.ok(events.some((e) => e.type === 'phase' && e.message.includes('conv2')));
  assert.ok(r.valLoss! < headOnly.result.valLoss! + 0.05, 'phase 2 does not make things worse');
  assert.ok(r.valAccuracy! >= 0.8);
  // What phase 2 touched: conv2 (and the head), nothing else.
  const original = await tf.loadLayersModel(await directoryLoader((base.source as { dir: string }).dir));
  const model = await bundleLayersModel(out.modelZipPath);
  const training = JSON.parse((await bundleFiles(out.modelZipPath)).get('training.json')!.toString('utf8')) as Record<string, unknown>;
  const before = await weightsByName(original);
  const after = await weightsByName(model);
  for (const name of ['conv1/kernel', 'conv1/bias']) assert.deepEqual(after.get(name), before.get(name), `${name} frozen, bit-identical`);
  for (const name of ['conv2/kernel', 'conv2/bias']) assert.notDeepEqual(after.get(name), before.get(name), `${name} was trained`);
  assert.deepEqual((training!.trainableLayers as { names: string[] }).names, ['conv2']);
  assert.equal(training!.cutLayer, 'features');
  assert.deepEqual((training!.phases as { phase: string; epochsRun: number; learningRate: number }[]).map((p) => [p.phase, p.epochsRun, p.learningRate]), [
    ['head', 6, 0.001],
    ['fine-tune', 4, 0.0001],
  ]);
  assert.equal((training!.history as unknown[]).length, 10);
  assert.deepEqual(training!.spec, specFor({ hyperparameters: { epochs: 6, fineTuneEpochs: 4 }, trainableLayers: 1, earlyStopping: false }));
  original.dispose();
  model.dispose();
});

test('early stopping: stops after `patience` epochs without improvement and restores the best epoch', async () => {
  const seen: { epoch: number; valLoss: number | null }[] = [];
  const spec = specFor({ hyperparameters: { epochs: 40, learningRate: 0.01 }, earlyStopping: { patience: 2 } });
  const out = await fineTune({ base, datasetPath: SAMPLE, spec, outDir: join(dir, 'es'), hooks: { onEpoch: (m) => { seen.push(m); } } });
  const r = out.result;
  const best = seen.reduce((a, b) => (b.valLoss! < a.valLoss! ? b : a));
  console.log(`early stopping: ${r.epochsRun} of 40 epochs, best epoch ${r.bestEpoch} (val loss ${best.valLoss?.toFixed(4)}), val acc ${r.valAccuracy}`);
  assert.equal(r.stoppedEarly, true);
  assert.ok(r.epochsRun < 40);
  assert.equal(r.bestEpoch, best.epoch);
  assert.equal(r.epochsRun, best.epoch + 2, 'two epochs without improvement after the best');
  assert.equal(r.valLoss, best.valLoss, 'the exported model is the best epoch');
  // Without restoring: the last epoch's weights.
  const seen2: { epoch: number; valLoss: number | null }[] = [];
  const noRestore = await fineTune({
    base,
    datasetPath: SAMPLE,
    spec: specFor({ hyperparameters: { epochs: 40, learningRate: 0.01 }, earlyStopping: { patience: 2, restoreBestWeights: false } }),
    outDir: join(dir, 'es2'),
    hooks: { onEpoch: (m) => { seen2.push(m); } },
  });
  assert.equal(noRestore.result.epochsRun, r.epochsRun);
  assert.equal(noRestore.result.bestEpoch, noRestore.result.epochsRun);
  assert.equal(noRestore.result.valLoss, seen2.at(-1)!.valLoss);
});

test('same seed, data and backend → identical metrics with phase 2 and augmentation; no tensor leaks', async () => {
  const spec = specFor({
    hyperparameters: { epochs: 2, fineTuneEpochs: 2 },
    trainableLayers: { from: 'conv1' },
    augmentation: { flip: 'none', rotation: 12, zoom: 0.1, brightness: 0.1, contrast: 0.2 },
  });
  const tensorsBefore = tf.memory().numTensors;
  const a = await fineTune({ base, datasetPath: SAMPLE, spec, outDir: join(dir, 'det-a') });
  const b = await fineTune({ base, datasetPath: SAMPLE, spec, outDir: join(dir, 'det-b') });
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor outlives fineTune');
  assert.deepEqual({ ...a.result, trainingMs: 0 }, { ...b.result, trainingMs: 0 });
  const [za, zb] = await Promise.all([readFile(join(dir, 'det-a', 'model', 'weights.bin')), readFile(join(dir, 'det-b', 'model', 'weights.bin'))]);
  assert.ok(za.equals(zb), 'bit-identical weights');
  const c = await fineTune({ base, datasetPath: SAMPLE, spec: { ...spec, seed: 8 }, outDir: join(dir, 'det-c') });
  assert.notDeepEqual(c.result.validation, a.result.validation, 'another seed, another run');
  console.log(`phase 2 + augmentation, 2+2 epochs: val acc ${a.result.valAccuracy}, loss ${a.result.valLoss?.toFixed(4)}, ${a.result.trainingMs} ms`);
});

test('cancellation stops within one batch in every phase (augmented head, fine-tune, baseline)', async () => {
  const spec = specFor({
    hyperparameters: { epochs: 2, fineTuneEpochs: 2 },
    trainableLayers: 1,
    augmentation: { flip: 'none', rotation: 5, zoom: 0, brightness: 0, contrast: 0 },
    baseline: 'scratch',
  });
  for (const phase of ['head', 'fine-tune', 'baseline']) {
    await assertCancelsWithinOneBatch({ base, datasetPath: SAMPLE, spec, outDir: join(dir, `cancel-${phase}`) }, (p) => p.phase === phase && p.batch === 2, phase);
  }
});

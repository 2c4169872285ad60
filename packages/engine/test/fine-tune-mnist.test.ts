/**
 * End to end on the real sample: fine-tune graft's MNIST 0-4 CNN on digits 5-9, reload the exported
 * model.zip and check it reproduces the reported validation accuracy; determinism; cancellation.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import {
  fineTune,
  loadPredictor,
  readArchiveImages,
  TrainingCancelled,
  TrainingError,
  type FineTuneOutcome,
  type TrainingEvent,
} from '../src/index.ts';
import { writeZip } from '../src/util/zip.ts';
import { greyPng, makeDigitsZip, mnistPixels } from './fixtures.ts';
import { assertCancelsWithinOneBatch, bundleFiles, bundleLayersModel, mnistBase, specFor } from './train-helpers.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
let dir: string;

// The skeleton's recipe: head only, every epoch (no early stopping), no checkpoints asked of these tests.
const spec = (over: { epochs?: number; batchSize?: number; learningRate?: number; seed?: number } = {}) =>
  specFor({ hyperparameters: { epochs: over.epochs ?? 10, batchSize: over.batchSize ?? 32, learningRate: over.learningRate ?? 0.001 }, earlyStopping: false }, mnistBase(), over.seed ?? 7);
const base = mnistBase();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-engine-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let first: FineTuneOutcome;
const events: TrainingEvent[] = [];
const epochs: { epoch: number; valAccuracy: number | null }[] = [];

test('fine-tunes bm_mnist_cnn on digits 5-9 well above chance, reporting events, epochs and batches', async () => {
  let batches = 0;
  const started = Date.now();
  first = await fineTune({
    base,
    datasetPath: SAMPLE,
    spec: spec(),
    outDir: join(dir, 'a'),
    hooks: {
      onEvent: (e) => { events.push(e); },
      onEpoch: (m) => { epochs.push(m); },
      onBatch: (p) => { batches++; assert.equal(p.batches, 8); }, // 240 training images / 32
    },
  });
  const r = first.result;
  console.log(`sample fine-tune, 10 epochs: ${Date.now() - started} ms; valAccuracy ${r.valAccuracy}, valLoss ${r.valLoss?.toFixed(4)}`);
  assert.deepEqual(r.classes, ['eight', 'five', 'nine', 'seven', 'six']);
  assert.equal(r.trainImages, 240);
  assert.equal(r.validationImages, 60);
  assert.equal(r.epochsRun, 10);
  assert.equal(r.backend, 'wasm');
  assert.ok(r.valAccuracy! > 0.8, `valAccuracy ${r.valAccuracy}`);
  assert.equal(batches, 80);
  assert.deepEqual(epochs.map((e) => e.epoch), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(epochs.at(-1)!.valAccuracy, r.valAccuracy);
  assert.deepEqual(events.map((e) => e.type).slice(0, 2), ['backend', 'dataset']);
  assert.ok(!events.some((e) => e.type === 'imbalance'));
  // The last event says where the time went: every stage that ran, and the feature pass split into decoding and the frozen base.
  const timings = events.at(-1)!;
  assert.equal(timings.type, 'stage_timings');
  const { totalMs, stages, inputPass } = timings.data as { totalMs: number; stages: Record<string, number>; inputPass: { decodeMs: number; encoderMs: number } };
  assert.deepEqual(Object.keys(stages), ['prepareData', 'openBase', 'prepareInputs', 'buildModel', 'headPhase', 'fineTunePhase', 'checkpoints', 'baseline', 'evaluate', 'summarize', 'export']);
  assert.ok(stages.headPhase! > 0 && inputPass.encoderMs > 0 && inputPass.decodeMs + inputPass.encoderMs <= stages.prepareInputs!, JSON.stringify(timings.data));
  assert.ok(Object.values(stages).reduce((a, b) => a + b, 0) <= totalMs + Object.keys(stages).length, JSON.stringify(timings.data));
  assert.match(timings.message, /^Time by stage: data .*frozen base .* in all\.$/);
  assert.deepEqual(r.confusionMatrix.map((row) => row.reduce((a, b) => a + b, 0)), [12, 12, 12, 12, 12]);
  assert.deepEqual(r.perClass.map((c) => c.support), [12, 12, 12, 12, 12]);
  assert.ok(first.modelZipBytes > 0 && first.modelZipBytes < 1_000_000);
});

test('model.zip reloads as a predictor and gives the reported validation accuracy on the validation images', async () => {
  const predictor = await loadPredictor(first.modelZipPath);
  const { labels, training } = predictor;
  assert.equal(predictor.task, 'image-classification');
  assert.deepEqual(labels, first.result.classes);
  const files = await bundleFiles(first.modelZipPath);
  assert.deepEqual([...files.keys()], ['model.json', 'weights.bin', 'labels.json', 'preprocessing.json', 'training.json', 'MODEL_CARD.md', 'card.json']);
  assert.deepEqual(JSON.parse(files.get('preprocessing.json')!.toString('utf8')), { height: 28, width: 28, channels: 1, resize: 'bilinear', scale: 1 / 255, offset: 0 });
  const model = await bundleLayersModel(first.modelZipPath);
  assert.equal(model.layers.some((l) => l instanceof tf.LayersModel), false, 'flat graph, no nested model');
  model.dispose();
  const split = training!.split as { train: string[]; validation: string[] };
  assert.equal(split.validation.length, 60);
  assert.equal(split.train.length, 240);
  assert.equal(JSON.stringify(training).includes(dir), false, 'no local paths in training.json');
  const images: { path: string; data: Uint8Array }[] = [];
  for await (const image of readArchiveImages(SAMPLE, new Set(split.validation))) images.push(image);
  const predictions = await predictor.predict(images.map((i) => i.data), { topK: 2 });
  const correct = predictions.filter((p, i) => p.label === images[i]!.path.split('/')[0]).length;
  const accuracy = correct / split.validation.length;
  console.log(`reloaded model.zip: validation accuracy ${accuracy} (reported ${first.result.valAccuracy})`);
  assert.ok(Math.abs(accuracy - first.result.valAccuracy!) <= 0.02, `reloaded ${accuracy} vs reported ${first.result.valAccuracy}`);
  // Each prediction: probabilities over the labels summing to 1, its label the most probable, top-2 in order.
  for (const p of predictions) {
    assert.equal(p.probabilities.length, labels.length);
    assert.ok(Math.abs(p.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    assert.equal(p.topK.length, 2);
    assert.equal(p.topK[0]!.label, p.label);
    assert.equal(p.topK[0]!.probability, Math.max(...p.probabilities));
    assert.ok(p.topK[0]!.probability >= p.topK[1]!.probability);
  }
  // Raw input of the wrong kind, or bytes that are no image, are refused by name.
  await assert.rejects(predictor.predict(['a text']), (err: unknown) => err instanceof TypeError && /classifies images/.test(err.message));
  await assert.rejects(predictor.predict([images[0]!.data, new Uint8Array([1, 2, 3])]), (err: unknown) => err instanceof TrainingError && err.code === 'unreadable_image' && /Input 1/.test(err.message));
  predictor.dispose();
  // A zip that is not a model bundle (the dataset itself) is refused by the loader.
  await assert.rejects(loadPredictor(SAMPLE), /is not a graft model bundle/);
});

test('same seed, data and backend → identical metrics; memory does not grow', async () => {
  const tensorsBefore = tf.memory().numTensors;
  const again = await fineTune({ base, datasetPath: SAMPLE, spec: spec(), outDir: join(dir, 'b') });
  assert.deepEqual({ ...again.result, trainingMs: 0 }, { ...first.result, trainingMs: 0 });
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor outlives fineTune');
});

test('an AbortSignal stops training within one batch with TrainingCancelled', async () => {
  await assertCancelsWithinOneBatch({ base, datasetPath: SAMPLE, spec: spec({ epochs: 5 }), outDir: join(dir, 'c') }, (p) => p.epoch === 2 && p.batch === 3);
  // Already aborted: refused before any work.
  await assert.rejects(fineTune({ base, datasetPath: SAMPLE, spec: spec(), outDir: join(dir, 'd'), signal: AbortSignal.abort() }), TrainingCancelled);
});

test('an imbalanced dataset gets an imbalance warning; a tiny class still trains', async () => {
  const zip = join(dir, 'imbalanced.zip');
  await makeDigitsZip(zip, { digits: [5, 6], perClass: [40, 1], offset: 100 });
  const seen: TrainingEvent[] = [];
  const out = await fineTune({ base, datasetPath: zip, spec: spec({ epochs: 2 }), outDir: join(dir, 'e'), hooks: { onEvent: (e) => { seen.push(e); } } });
  const warning = seen.find((e) => e.type === 'imbalance');
  assert.equal(warning?.level, 'warning');
  assert.equal(warning?.data?.imbalanceRatio, 40);
  assert.match(warning!.message, /classWeights: "auto"/, 'the warning suggests class weights');
  assert.deepEqual(seen.find((e) => e.type === 'dataset')?.data?.classes, [
    { name: 'five', train: 32, validation: 8 },
    { name: 'six', train: 1, validation: 0 },
  ]);
  assert.equal(out.result.trainImages, 33);
});

test('user-actionable failures are TrainingErrors with a code', async () => {
  const oneClass = join(dir, 'one-class.zip');
  await makeDigitsZip(oneClass, { digits: [5], perClass: 3 });
  await assert.rejects(
    fineTune({ base, datasetPath: oneClass, spec: spec(), outDir: join(dir, 'f') }),
    (err: unknown) => err instanceof TrainingError && err.code === 'too_few_classes',
  );
  await assert.rejects(
    fineTune({ base: { descriptor: { ...base.descriptor, id: 'bm_nope' }, source: { kind: 'directory', dir: join(dir, 'no-such-model') } }, datasetPath: SAMPLE, spec: spec(), outDir: join(dir, 'g') }),
    (err: unknown) => err instanceof TrainingError && err.code === 'base_model_unavailable',
  );
  // A PNG whose header is fine (so the archive passes inspection) but whose pixel data is not.
  const broken = Buffer.from(greyPng(mnistPixels(5, 0), 28, 28));
  broken.fill(0x55, 40, broken.length - 20);
  const damaged = join(dir, 'damaged.zip');
  await writeZip(damaged, [
    { name: 'five/ok.png', data: greyPng(mnistPixels(5, 1), 28, 28) },
    { name: 'five/broken.png', data: broken },
    { name: 'six/ok.png', data: greyPng(mnistPixels(6, 1), 28, 28) },
  ]);
  await assert.rejects(
    fineTune({ base, datasetPath: damaged, spec: spec(), outDir: join(dir, 'h') }),
    // The whole dataset is decoded before training (the upload's own check), so a damaged image stops the job at once.
    (err: unknown) => err instanceof TrainingError && err.code === 'unreadable_entry' && err.message.includes('five/broken.png'),
  );
  // Options the base or dataset cannot honour.
  const code = (c: string, includes?: string) => (err: unknown) => err instanceof TrainingError && err.code === c && (!includes || err.message.includes(includes));
  await assert.rejects(fineTune({ base, datasetPath: SAMPLE, spec: specFor({ cutLayer: 'nope' }), outDir: join(dir, 'i') }), code('invalid_cut_layer', 'conv1, pool1, conv2, pool2, features, dense, digits'));
  await assert.rejects(fineTune({ base, datasetPath: SAMPLE, spec: specFor({ trainableLayers: { from: 'dense' } }), outDir: join(dir, 'j') }), code('invalid_layer', '"dense"'));
  await assert.rejects(fineTune({ base, datasetPath: SAMPLE, spec: specFor({ classWeights: { five: 2, ten: 1 } }), outDir: join(dir, 'k') }), code('invalid_class_weights', '"ten"'));
  const otherClasses = join(dir, 'other-classes.zip');
  await makeDigitsZip(otherClasses, { digits: [5, 1], perClass: 3 });
  await assert.rejects(
    fineTune({ base, datasetPath: SAMPLE, testDatasetPath: otherClasses, spec: specFor({ testDataset: 'ds_other' }), outDir: join(dir, 'l') }),
    code('class_mismatch', 'one'),
  );
});

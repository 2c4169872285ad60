/**
 * Unit tests of the training options' building blocks: class weights, augmentation, early
 * stopping, layer selection and cut errors, the training loss (label smoothing, class weights,
 * L2), top-k scoring, the feature-cache key and the decoded-image cache file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { Augmentation } from '@graft/contracts';
import { isAugmenting } from '../src/pipeline/stages/plan-phases.ts';
import { augmentBatch, drawAugmentParams, transformFor } from '../src/tasks/image/augment.ts';
import { initBackend } from '../src/backend/backend.ts';
import { resolveClassWeights } from '../src/train/class-weights.ts';
import { EarlyStopper } from '../src/train/early-stopping.ts';
import { TrainingError } from '../src/errors.ts';
import { featureCacheKey } from '../src/data/feature-cache.ts';
import { canonicalJson } from '../src/util/hash.ts';
import { cutBase, missingGradientKernels, selectTrainableLayers } from '../src/train/freezing.ts';
import { buildHead, trainingLoss } from '../src/train/head.ts';
import { ImageCache, ImageCacheWriter, imageCacheFiles, imageCacheKey } from '../src/tasks/image/image-cache.ts';
import { clampTopK, Scorer } from '../src/evaluate/metrics.ts';
import { mulberry32 } from '../src/util/random.ts';

let dir: string;
before(async () => {
  await initBackend();
  dir = await mkdtemp(join(tmpdir(), 'graft-options-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const NO_AUG: Augmentation = { flip: 'none', rotation: 0, zoom: 0, brightness: 0, contrast: 0 };

test('class weights: auto is n / (k × n_c) on the training counts; a record must name real classes', () => {
  // 100 training images: 70 / 20 / 10 → 100/(3·70), 100/(3·20), 100/(3·10).
  const auto = resolveClassWeights('auto', ['a', 'b', 'c'], [70, 20, 10])!;
  assert.deepEqual(auto.map((w) => +w.toFixed(6)), [0.47619, 1.666667, 3.333333]);
  // Balanced: the weighted count of every class is n / k.
  [70, 20, 10].forEach((n, i) => assert.ok(Math.abs(n * auto[i]! - 100 / 3) < 1e-9));
  assert.equal(resolveClassWeights('none', ['a', 'b'], [1, 2]), null);
  assert.deepEqual(resolveClassWeights({ b: 2.5 }, ['a', 'b', 'c'], [1, 1, 1]), [1, 2.5, 1]);
  assert.throws(
    () => resolveClassWeights({ b: 2, cat: 3 }, ['a', 'b'], [1, 1]),
    (e: unknown) => e instanceof TrainingError && e.code === 'invalid_class_weights' && e.message.includes('"cat"'),
  );
});

test('augmentation: same seed → same batch; shapes kept; values stay in 0..255; off → identity', () => {
  const aug: Augmentation = { flip: 'both', rotation: 20, zoom: 0.2, brightness: 0.2, contrast: 0.3 };
  assert.equal(isAugmenting(aug), true);
  assert.equal(isAugmenting(NO_AUG), false);
  assert.equal(isAugmenting(null), false);
  const x = tf.randomUniform([6, 12, 10, 3], 0, 255, 'float32', 5) as tf.Tensor4D;
  const a = augmentBatch(x, aug, mulberry32(11));
  const b = augmentBatch(x, aug, mulberry32(11));
  const c = augmentBatch(x, aug, mulberry32(12));
  assert.deepEqual(a.shape, [6, 12, 10, 3]);
  assert.deepEqual(a.dataSync(), b.dataSync(), 'deterministic given the seed');
  assert.notDeepEqual(a.dataSync(), c.dataSync(), 'another seed, another batch');
  assert.ok(a.min().dataSync()[0]! >= 0 && a.max().dataSync()[0]! <= 255);
  const same = augmentBatch(x, NO_AUG, mulberry32(1));
  assert.deepEqual(same.dataSync(), x.dataSync(), 'no augmentation → the same pixels');
  tf.dispose([x, a, b, c, same]);
});

test('augmentation: a horizontal flip mirrors the columns exactly; transforms are the identity at zero', () => {
  const px = tf.tensor4d(Array.from({ length: 2 * 3 * 4 }, (_, i) => i), [1, 3, 4, 2]);
  const random = () => 0.1; // < 0.5: flip drawn
  const flipped = augmentBatch(px, { ...NO_AUG, flip: 'horizontal' }, random);
  assert.deepEqual(flipped.arraySync(), tf.reverse(px, 2).arraySync());
  const p = drawAugmentParams(NO_AUG, mulberry32(3));
  assert.deepEqual(transformFor(p, 5, 7).map((v) => +v.toFixed(12)), [1, 0, 0, 0, 1, 0, 0, 0]);
  tf.dispose([px, flipped]);
});

test('early stopping: stops after `patience` epochs without an improvement of more than minDelta and restores the best', () => {
  const v = tf.variable(tf.scalar(0));
  const stopper = new EarlyStopper({ patience: 2, minDelta: 0.01, restoreBestWeights: true }, [v]);
  const losses = [1.0, 0.8, 0.795, 0.9];
  const stops = losses.map((loss, i) => {
    v.assign(tf.scalar(i + 1)); // "the weights of epoch i + 1"
    return stopper.update(i + 1, loss);
  });
  assert.deepEqual(stops.map((s) => s.improved), [true, true, false, false], '0.795 is not 0.01 better than 0.8');
  assert.deepEqual(stops.map((s) => s.stop), [false, false, false, true]);
  assert.equal(stopper.restoreBest(), 2);
  assert.equal(v.dataSync()[0], 2, 'the weights of epoch 2 are back');
  stopper.dispose();
  // Carried from an earlier phase: must beat it, and ends back on the weights it started from.
  v.assign(tf.scalar(42));
  const carried = new EarlyStopper({ patience: 1, minDelta: 0, restoreBestWeights: true }, [v], { valLoss: 0.5, epoch: 3 });
  v.assign(tf.scalar(7));
  assert.deepEqual(carried.update(4, 0.6), { improved: false, stop: true });
  assert.equal(carried.restoreBest(), 3);
  assert.equal(v.dataSync()[0], 42);
  carried.dispose();
  v.dispose();
});

test('trainable layers: top k with weights, { from }, and the errors', async () => {
  const input = tf.input({ shape: [8, 8, 1] });
  let x = tf.layers.conv2d({ name: 'c1', filters: 2, kernelSize: 3 }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn1' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ name: 'r1', activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ name: 'c2', filters: 2, kernelSize: 3 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.flatten({ name: 'feat' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ name: 'top', units: 3 }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: x });
  const cut = cutBase(model, 'feat');
  assert.ok(cut.layers.every((l) => !l.trainable));
  assert.deepEqual(selectTrainableLayers(cut, 'none').names, []);
  assert.deepEqual(selectTrainableLayers(cut, 1).names, ['c2']);
  assert.deepEqual(selectTrainableLayers(cut, 2).names, ['bn1', 'c2']);
  assert.deepEqual(selectTrainableLayers(cut, 9), { ...selectTrainableLayers(cut, 9), names: ['c1', 'bn1', 'c2'], clampedFrom: 9 });
  const from = selectTrainableLayers(cut, { from: 'r1' });
  assert.deepEqual(from.layers.map((l) => l.name), ['r1', 'c2', 'feat']);
  assert.deepEqual(from.names, ['c2']);
  assert.throws(() => selectTrainableLayers(cut, { from: 'top' }), (e: unknown) => e instanceof TrainingError && e.code === 'invalid_layer');
  assert.throws(() => cutBase(model, 'nope'), (e: unknown) => e instanceof TrainingError && e.code === 'invalid_cut_layer' && e.message.includes('c1, bn1, r1, c2, feat, top'));
  // On wasm graft registers the conv gradient composites (initBackend): nothing is missing.
  assert.deepEqual(missingGradientKernels(cut, from.layers), []);
  model.dispose();
});

test('training loss: label smoothing, class weights and L2 as Keras defines them', () => {
  const head = buildHead(4, 3, 'none', { units: 0, dropout: 0, l2: 0.5, seed: 1 });
  const probs = tf.tensor2d([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]);
  const labels = tf.tensor1d([0, 2], 'int32');
  const base = { numClasses: 3, labelSmoothing: 0, classWeights: null, l2: 0, kernels: head.kernels };
  const plain = trainingLoss(probs, labels, base).dataSync()[0]!;
  assert.ok(Math.abs(plain - (-Math.log(0.7) - Math.log(0.8)) / 2) < 1e-6);
  // Smoothing 0.3, 3 classes: targets 0.8 / 0.1 / 0.1.
  const smooth = trainingLoss(probs, labels, { ...base, labelSmoothing: 0.3 }).dataSync()[0]!;
  const row = (p: number[], t: number[]) => -t.reduce((a, ti, i) => a + ti * Math.log(p[i]!), 0);
  assert.ok(Math.abs(smooth - (row([0.7, 0.2, 0.1], [0.8, 0.1, 0.1]) + row([0.1, 0.1, 0.8], [0.1, 0.1, 0.8])) / 2) < 1e-6);
  const cw = tf.tensor1d([2, 1, 0.5]);
  const weighted = trainingLoss(probs, labels, { ...base, classWeights: cw }).dataSync()[0]!;
  assert.ok(Math.abs(weighted - (2 * -Math.log(0.7) + 0.5 * -Math.log(0.8)) / 2) < 1e-6, 'mean over the batch of weighted losses');
  const l2 = trainingLoss(probs, labels, { ...base, l2: 0.5 }).dataSync()[0]!;
  const sq = head.kernels.reduce((a, k) => a + k.square().sum().dataSync()[0]!, 0);
  assert.ok(Math.abs(l2 - plain - 0.5 * sq) < 1e-5);
  assert.equal(head.dense, null, 'headUnits 0: no hidden layer');
  tf.dispose([probs, labels, cw]);
  head.model.dispose();
});

test('top-k accuracy and evaluation', async () => {
  assert.equal(clampTopK(5, 3), 3);
  assert.equal(clampTopK(3, 10), 3);
  const s = new Scorer(3, 2);
  const probs = tf.tensor2d([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]]);
  await s.add(probs, [0, 1, 0, 2]);
  const e = s.evaluation(['a', 'b', 'c']);
  assert.equal(e.accuracy, 1 / 4);
  assert.deepEqual(e.topK, { k: 2, accuracy: 3 / 4 }, 'row 3 has its class third');
  assert.deepEqual(e.confusionMatrix, [[1, 0, 1], [1, 0, 0], [0, 1, 0]]);
  assert.ok(Math.abs(e.loss! - -(Math.log(0.6) + Math.log(0.4) + Math.log(0.2) + Math.log(0.3)) / 4) < 1e-6);
  probs.dispose();
});

test('feature-cache keys depend on every part, not on property order', () => {
  const pre = { height: 28, width: 28, channels: 1 as const, resize: 'bilinear' as const, scale: 1 / 255, offset: 0 };
  const parts = { baseId: 'bm_x', sourceIdentity: 'directory:sha256:ab', cutLayer: 'features', datasetSha256: 'cd', preprocessing: pre, pooling: 'none' };
  const key = featureCacheKey(parts);
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.equal(featureCacheKey({ pooling: 'none', preprocessing: { ...pre }, datasetSha256: 'cd', cutLayer: 'features', sourceIdentity: 'directory:sha256:ab', baseId: 'bm_x' }), key);
  for (const change of [{ cutLayer: 'pool2' }, { datasetSha256: 'ce' }, { sourceIdentity: 'directory:sha256:ac' }, { preprocessing: { ...pre, offset: -1 } }]) {
    assert.notEqual(featureCacheKey({ ...parts, ...change }), key);
  }
  assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] }), '{"a":[{"c":3,"d":2}],"b":1}');
});

test('the decoded-image cache: uint8 records read back by row; atomic (no file until finished)', async () => {
  const files = imageCacheFiles(join(dir, 'images'), imageCacheKey('abc', { height: 2, width: 2, channels: 1, resize: 'bilinear', scale: 1, offset: 0 }));
  const paths = ['a/1.png', 'a/2.png', 'b/1.png'];
  const pre = { height: 2, width: 2, channels: 1 as const, resize: 'bilinear' as const, scale: 0.5, offset: -1 };
  const writer = await ImageCacheWriter.create(files, paths, [2, 2, 1]);
  await writer.write(2, Float32Array.from([1.4, 2.6, 300, -4]));
  await writer.write(0, Float32Array.from([10, 11, 12, 13]));
  assert.equal(await ImageCache.open(files, { paths, shape: [2, 2, 1], pre }), null, 'not there before finish');
  await assert.rejects(writer.finish(), /incomplete/);
  const w2 = await ImageCacheWriter.create(files, paths, [2, 2, 1]);
  for (const r of [0, 1, 2]) await w2.write(r, Float32Array.from([r, r + 0.4, r + 0.6, 255.7]));
  await w2.finish();
  const cache = (await ImageCache.open(files, { paths, shape: [2, 2, 1], pre }))!;
  assert.deepEqual([...(await cache.read([2, 0]))], [2, 2, 3, 255, 0, 0, 1, 255]);
  assert.equal(await ImageCache.open(files, { paths: ['x'], shape: [2, 2, 1], pre }), null, 'other paths: not this cache');
  const t = cache.inputs(await cache.read([1]), null);
  assert.deepEqual([...t.dataSync()], [-0.5, -0.5, 0, 126.5]);
  t.dispose();
  await cache.close();
  assert.deepEqual((await readdir(join(dir, 'images'))).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
});

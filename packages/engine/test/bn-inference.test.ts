/**
 * Frozen BatchNormalization stays in inference mode (the Keras transfer-learning guide's rule),
 * which tfjs-layers does not do by itself: a base with conv → BN → relu blocks is fine-tuned with
 * its top block unfrozen (and augmentation, so phase 1 also runs the base per batch); the frozen
 * layers' weights and every BN's moving mean/variance must come out bit-identical, while the
 * unfrozen conv kernel and BN gamma/beta change.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { ResolvedBase } from '../src/bases/base-source.ts';
import { fineTune, initBackend } from '../src/index.ts';
import { directoryLoader, directorySaver } from '../src/bases/model-io.ts';
import { mulberry32 } from '../src/util/random.ts';
import { bundleFiles, bundleLayersModel, mnistBase, specFor } from './train-helpers.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
let dir: string;
let base: ResolvedBase;

before(async () => {
  await initBackend();
  dir = await mkdtemp(join(tmpdir(), 'graft-bn-'));
  // conv1 → bn1 → relu → conv2 → bn2 → relu → pool → features, with non-trivial BN statistics.
  const init = (k: number) => tf.initializers.glorotUniform({ seed: k });
  const model = tf.sequential({
    name: 'tiny_bn',
    layers: [
      tf.layers.conv2d({ name: 'conv1', inputShape: [28, 28, 1], filters: 4, kernelSize: 3, kernelInitializer: init(1) }),
      tf.layers.batchNormalization({ name: 'bn1' }),
      tf.layers.activation({ name: 'relu1', activation: 'relu' }),
      tf.layers.conv2d({ name: 'conv2', filters: 8, kernelSize: 3, strides: 2, kernelInitializer: init(2) }),
      tf.layers.batchNormalization({ name: 'bn2' }),
      tf.layers.activation({ name: 'relu2', activation: 'relu' }),
      tf.layers.maxPooling2d({ name: 'pool', poolSize: 2 }),
      tf.layers.flatten({ name: 'features' }),
    ],
  });
  const random = mulberry32(9);
  for (const name of ['bn1', 'bn2']) {
    const layer = model.getLayer(name);
    const n = layer.weights[0]!.shape[0]!;
    // gamma, beta, moving_mean, moving_variance
    layer.setWeights([
      tf.tensor1d(Array.from({ length: n }, () => 0.5 + random())),
      tf.tensor1d(Array.from({ length: n }, () => random() - 0.5)),
      tf.tensor1d(Array.from({ length: n }, () => random() * 0.2)),
      tf.tensor1d(Array.from({ length: n }, () => 0.01 + random() * 0.05)),
    ]);
  }
  const modelDir = join(dir, 'tiny-bn');
  await model.save(directorySaver(modelDir));
  model.dispose();
  const mnist = mnistBase();
  base = {
    descriptor: { ...mnist.descriptor, id: 'bm_tiny_bn', name: 'Tiny conv-BN test base', featureLayer: 'features', featureShape: [288] },
    source: { kind: 'directory', dir: modelDir },
  };
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function weights(model: tf.LayersModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const l of model.layers) for (const w of l.weights) out.set(w.originalName, (await w.read().data()) as Float32Array);
  return out;
}

test('phase 2 with BN: frozen weights and all BN moving statistics bit-identical; unfrozen weights changed', async () => {
  const out = await fineTune({
    base,
    datasetPath: SAMPLE,
    spec: specFor(
      {
        hyperparameters: { epochs: 1, fineTuneEpochs: 2, fineTuneLearningRate: 0.001 },
        trainableLayers: { from: 'conv2' },
        augmentation: { flip: 'none', rotation: 5, zoom: 0, brightness: 0, contrast: 0 },
        earlyStopping: false,
      },
      base,
    ),
    outDir: join(dir, 'out'),
  });
  assert.equal(out.result.epochsRun, 3);
  const original = await tf.loadLayersModel(await directoryLoader((base.source as { dir: string }).dir));
  const model = await bundleLayersModel(out.modelZipPath);
  const training = JSON.parse((await bundleFiles(out.modelZipPath)).get('training.json')!.toString('utf8')) as Record<string, unknown>;
  assert.deepEqual((training!.trainableLayers as { names: string[] }).names, ['conv2', 'bn2']);
  const before = await weights(original);
  const after = await weights(model);
  const identical = ['conv1/kernel', 'conv1/bias', 'bn1/gamma', 'bn1/beta', 'bn1/moving_mean', 'bn1/moving_variance', 'bn2/moving_mean', 'bn2/moving_variance'];
  const changed = ['conv2/kernel', 'conv2/bias', 'bn2/gamma', 'bn2/beta'];
  for (const name of identical) {
    assert.ok(before.has(name), name);
    assert.deepEqual(after.get(name), before.get(name), `${name} bit-identical`);
  }
  for (const name of changed) assert.notDeepEqual(after.get(name), before.get(name), `${name} trained`);

  // The quirk this guards against: tfjs runs BN with batch statistics and updates its moving
  // averages whenever `training` is true, trainable or not.
  for (const l of original.layers) l.trainable = false;
  const x = tf.randomUniform([8, 28, 28, 1], 0, 1, 'float32', 3);
  tf.tidy(() => original.apply(x, { training: true }) as tf.Tensor);
  const updated = await weights(original);
  assert.notDeepEqual(updated.get('bn1/moving_mean'), before.get('bn1/moving_mean'), 'tfjs would have moved a frozen BN');
  x.dispose();
  original.dispose();
  model.dispose();
});

/** Small models on disk for the base tests: a tiny CNN (layers), nsfwjs' graph model unpacked, a graft model zip. */
import { createRequire } from 'node:module';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ImageBaseModel, Preprocessing } from '@graft/contracts';
import { directorySaver, WEIGHTS_FILE } from '../src/bases/model-io.ts';
import { writeZip } from '../src/util/zip.ts';

const require = createRequire(import.meta.url);

export const TINY_PRE: Preprocessing = { height: 16, width: 16, channels: 3, resize: 'bilinear', scale: 1 / 255, offset: 0 };

/** input 16x16x3 → conv1 (4, 3x3, s2) → dw (3x3) → feat (8, 1x1, relu) [8, 8, 8] → pool → logits (3). Seeded. */
export function tinyCnn(headPrefix = ''): tf.LayersModel {
  const input = tf.input({ shape: [16, 16, 3], name: 'image' });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw', depthwiseInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 8, kernelSize: 1, activation: 'relu', name: 'feat', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: `${headPrefix}pool` }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 3, activation: 'softmax', name: `${headPrefix}logits`, kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x, name: 'tiny' });
}

/**
 * Saves a layers model as model.json + weights; with `shards` > 1 the weights are split into that
 * many files under `shardDir` (one manifest group, as tfjs' converter writes them).
 */
export async function saveModelDir(model: tf.LayersModel, dir: string, opts: { shards?: number; shardDir?: string } = {}): Promise<void> {
  await model.save(directorySaver(dir));
  const shards = opts.shards ?? 1;
  if (shards <= 1 && !opts.shardDir) return;
  const modelJson = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const bin = await readFile(join(dir, WEIGHTS_FILE));
  await rm(join(dir, WEIGHTS_FILE));
  const size = Math.ceil(bin.length / shards);
  const paths: string[] = [];
  for (let i = 0; i < shards; i++) {
    const p = `${opts.shardDir ? `${opts.shardDir}/` : ''}group1-shard${i + 1}of${shards}.bin`;
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), bin.subarray(i * size, (i + 1) * size));
    paths.push(p);
  }
  modelJson.weightsManifest = [{ paths, weights: modelJson.weightsManifest.flatMap((g) => g.weights) }];
  await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
}

/** nsfwjs' bundled model as plain files: model.json + binary shards named as its manifest says. */
export async function writeNsfwjsModelDir(name: 'mobilenet_v2' | 'inception_v3' | 'mobilenet_v2_mid', dir: string): Promise<void> {
  const src = join(dirname(require.resolve('nsfwjs')), '..', 'models', name);
  const modelJson = require(join(src, 'model.min.js')) as tf.io.ModelJSON;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
  for (const p of modelJson.weightsManifest.flatMap((g) => g.paths)) {
    await writeFile(join(dir, p), Buffer.from(require(join(src, `${p}.min.js`)) as string, 'base64'));
  }
}

/** A model zip as graft's export writes it, with head layers named graft_head_*. */
export async function writeGraftModelZip(zipPath: string, labels = ['cat', 'dog', 'fox']): Promise<void> {
  const dir = `${zipPath}.d`;
  const model = tinyCnn('graft_head_');
  await model.save(directorySaver(dir));
  model.dispose();
  await writeFile(join(dir, 'labels.json'), JSON.stringify(labels));
  await writeFile(join(dir, 'preprocessing.json'), JSON.stringify(TINY_PRE));
  await writeFile(join(dir, 'training.json'), JSON.stringify({ baseModel: 'bm_tiny' }));
  const names = ['model.json', WEIGHTS_FILE, 'labels.json', 'preprocessing.json', 'training.json'];
  await writeZip(zipPath, await Promise.all(names.map(async (name) => ({ name, data: await readFile(join(dir, name)) }))));
  await rm(dir, { recursive: true, force: true });
}

export function tinyDescriptor(overrides: Partial<ImageBaseModel> = {}): ImageBaseModel {
  return {
    id: 'bm_tiny',
    object: 'base_model',
    name: 'tiny',
    task: 'image-classification',
    description: 'test',
    format: 'tfjs-layers',
    inputShape: [16, 16, 3],
    featureLayer: 'feat',
    featureShape: [8, 8, 8],
    preprocessing: TINY_PRE,
    source: 'test',
    license: 'MIT',
    pretrainedOn: 'nothing',
    ...overrides,
  };
}

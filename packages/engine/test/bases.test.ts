/** The base catalog and openBase over directory, nsfwjs (layers and graph) and model-zip sources. */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/backend.ts';
import { getBaseModel, getBaseModelSource, listBaseModels, resolveCatalogBase, MOBILENET_V2_MID_FEATURE_NODE } from '../src/bases/catalog.ts';
import { TrainingError } from '../src/errors.ts';
import { openBase } from '../src/bases/open-base.ts';
import { cutBase } from '../src/train/freezing.ts';
import { saveModelDir, tinyCnn, tinyDescriptor, writeGraftModelZip } from './bases-fixtures.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-bases-'));
  await initBackend();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const isCode = (code: string, pattern?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof TrainingError, `expected a TrainingError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (pattern) assert.match(err.message, pattern);
  return true;
};

test('the catalog lists every base with its source, and hosted bases say they need network', () => {
  const ids = listBaseModels().map((m) => m.id);
  assert.deepEqual(ids, ['bm_mnist_cnn', 'bm_mobilenet_v2', 'bm_inception_v3', 'bm_mobilenet_v2_mid', 'bm_mobilenet_v1_025_224_hosted', 'bm_mobilenet_v2_100_224_hosted', 'bm_graft_text_encoder']);
  for (const id of ids) {
    const m = getBaseModel(id)!;
    const resolved = resolveCatalogBase(id)!;
    assert.deepEqual(resolved.descriptor, m);
    assert.deepEqual(resolved.source, getBaseModelSource(id));
    if (m.task === 'image-classification') assert.deepEqual(m.inputShape, [m.preprocessing.height, m.preprocessing.width, m.preprocessing.channels]);
    else assert.deepEqual(m.inputShape, [m.preprocessing.maxLength]);
    if (resolved.source.kind === 'url') {
      assert.equal(m.source, `hosted: ${resolved.source.url}`);
      assert.match(m.description, /needs network at the worker/);
    }
  }
  assert.equal(getBaseModel('bm_mobilenet_v2_mid')!.format, 'tfjs-graph');
  assert.equal(getBaseModel('bm_nope'), undefined);
  assert.equal(resolveCatalogBase('bm_nope'), undefined);
});

test('bm_inception_v3: 299x299x3 input, cut at mixed10 → [8, 8, 2048], before its classification head', async () => {
  const t0 = performance.now();
  const opened = await openBase(resolveCatalogBase('bm_inception_v3')!);
  const loadMs = performance.now() - t0;
  const model = opened.layers!;
  assert.equal(opened.format, 'tfjs-layers');
  assert.equal(opened.graph, null);
  assert.equal(opened.previous, null);
  assert.deepEqual(model.inputs[0]!.shape, [null, 299, 299, 3]);
  // mixed10 is the last Concatenate; nsfwjs' head follows it (AveragePooling2D 8x8, Flatten, Dense 256/128/5).
  const after = model.layers.slice(model.layers.findIndex((l) => l.name === 'mixed10') + 1).map((l) => l.getClassName());
  assert.deepEqual(after, ['AveragePooling2D', 'Flatten', 'Dense', 'Dropout', 'Dense', 'Dropout', 'Dense']);
  const cut = cutBase(model, opened.descriptor.featureLayer);
  assert.deepEqual(cut.outputs[0]!.shape, [null, ...opened.descriptor.featureShape]);
  const t1 = performance.now();
  const y = tf.tidy(() => (cut.predict(tf.zeros([1, 299, 299, 3])) as tf.Tensor).mean([1, 2]));
  assert.deepEqual(y.shape, [1, 2048]);
  console.log(`Inception V3: load ${loadMs.toFixed(0)} ms, one 299x299 feature pass ${(performance.now() - t1).toFixed(0)} ms (${tf.getBackend()})`);
  y.dispose();
  opened.dispose();
});

test('bm_mobilenet_v2_mid: a graph model run to its 1792-d feature node; the pooled 7x7x1792 map agrees', async () => {
  const t0 = performance.now();
  const opened = await openBase(resolveCatalogBase('bm_mobilenet_v2_mid')!);
  const loadMs = performance.now() - t0;
  assert.equal(opened.format, 'tfjs-graph');
  assert.equal(opened.layers, null);
  assert.equal(opened.cutLayer, MOBILENET_V2_MID_FEATURE_NODE);
  assert.deepEqual(opened.graph!.inputs[0]!.shape, [-1, 224, 224, 3]);
  const x = tf.randomUniform([2, 224, 224, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const t1 = performance.now();
  const f = opened.graphFeatures!(x);
  assert.deepEqual(f.shape, [2, 1792]);
  await f.data();
  const passMs = (performance.now() - t1) / 2;
  const spatial = opened.graph!.execute(x, MOBILENET_V2_MID_FEATURE_NODE.replace('feature_vector/SpatialSqueeze', 'MobilenetV2/Conv_1/Relu6')) as tf.Tensor;
  assert.deepEqual(spatial.shape, [2, 7, 7, 1792]);
  const diff = tf.tidy(() => spatial.mean([1, 2]).sub(f).abs().max().dataSync()[0]!);
  assert.ok(diff < 1e-4, `pooled map vs feature node: ${diff}`);
  console.log(`MobileNetV2 1.4 (graph): load ${loadMs.toFixed(0)} ms, feature pass ${passMs.toFixed(0)} ms/image (batch 2)`);
  tf.dispose([x, f, spatial]);
  opened.dispose();

  // Another node of the graph can be asked for; a missing one is invalid_cut_layer.
  await assert.rejects(openBase(resolveCatalogBase('bm_mobilenet_v2_mid')!, { cutLayer: 'no/such/node' }), isCode('invalid_cut_layer', /not a node of this graph model.*Candidates: .*SpatialSqueeze/));
  await assert.rejects(openBase(resolveCatalogBase('bm_mobilenet_v2_mid')!, { cutLayer: 'input' }), isCode('invalid_cut_layer', /Placeholder node/));
});

test('directory source: loads, cuts, rejects an unknown cut layer and a descriptor of the wrong format', async () => {
  const modelDir = join(dir, 'tiny');
  const model = tinyCnn();
  await saveModelDir(model, modelDir, { shards: 2, shardDir: 'weights' });
  const opened = await openBase({ descriptor: tinyDescriptor(), source: { kind: 'directory', dir: modelDir } });
  const cut = cutBase(opened.layers!, 'feat');
  assert.deepEqual(cut.outputs[0]!.shape, [null, 8, 8, 8]);
  const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 9);
  const same = tf.tidy(() => (model.predict(x) as tf.Tensor).sub(opened.layers!.predict(x) as tf.Tensor).abs().max().dataSync()[0]!);
  assert.equal(same, 0);
  assert.throws(() => cutBase(opened.layers!, 'nope'), isCode('invalid_cut_layer', /no layer "nope" to cut at.*conv1, dw, feat, pool, logits/));
  opened.dispose();
  model.dispose();
  x.dispose();

  await assert.rejects(openBase({ descriptor: tinyDescriptor({ format: 'tfjs-graph' }), source: { kind: 'directory', dir: modelDir } }), isCode('base_model_unavailable', /is a tfjs-layers model but the base is described as tfjs-graph/));
  await assert.rejects(openBase({ descriptor: tinyDescriptor(), source: { kind: 'directory', dir: join(dir, 'missing') } }), isCode('base_model_unavailable', /"bm_tiny" cannot be loaded: .*model.json cannot be read \(ENOENT\)/));
});

test('model-zip source: a previous graft fine-tune opens with its labels and graft_head_* layers; cached unpack is reused', async () => {
  const zip = join(dir, 'ft.zip');
  await writeGraftModelZip(zip, ['cat', 'dog', 'fox']);
  const cacheDir = join(dir, 'cache');
  const base = { descriptor: tinyDescriptor({ id: 'ft_1' }), source: { kind: 'model-zip' as const, path: zip } };
  const opened = await openBase(base, { cacheDir });
  assert.deepEqual(opened.previous, { labels: ['cat', 'dog', 'fox'], headLayerNames: ['graft_head_pool', 'graft_head_logits'] });
  assert.deepEqual(opened.layers!.outputs[0]!.shape, [null, 3]);
  opened.dispose();
  const unpacked = await readdir(join(cacheDir, 'model-zips'));
  assert.equal(unpacked.length, 1);
  assert.match(unpacked[0]!, /^[0-9a-f]{64}$/);
  const again = await openBase(base, { cacheDir });
  assert.deepEqual(again.previous!.labels, ['cat', 'dog', 'fox']);
  again.dispose();
  assert.deepEqual(await readdir(join(cacheDir, 'model-zips')), unpacked);

  // Without a cache, the unpacked copy is temporary and gone after loading.
  const before = (await readdir(tmpdir())).filter((n) => n.startsWith('graft-model-zip-')).length;
  const temp = await openBase(base, { cacheDir: null });
  assert.equal((await readdir(tmpdir())).filter((n) => n.startsWith('graft-model-zip-')).length, before);
  temp.dispose();
});

test('an aborted signal cancels openBase', async () => {
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(openBase(resolveCatalogBase('bm_mobilenet_v2')!, { signal: ac.signal }), (err: Error) => err.name === 'TrainingCancelled');
});

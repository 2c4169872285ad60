/**
 * MobileNetV2 (nsfwjs weights, 224x224): the feature cache is reused across jobs and gives the
 * same result as running the base every batch (its speed is measured in bench/feature-cache.ts),
 * and phase 2 through depthwise layers with their BatchNorms in
 * inference mode (the wasm depthwise gradient composites of wasm-conv-grad.ts).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { resolveCatalogBase } from '../src/bases/catalog.ts';
import { fineTune, initBackend, loadPredictor, readArchiveImages, type TrainingEvent } from '../src/index.ts';
import { mulberry32 } from '../src/util/random.ts';
import { writeZip } from '../src/util/zip.ts';
import { rgbPng } from './fixtures.ts';
import { bundleFiles, bundleLayersModel, catalogLayers, specFor } from './train-helpers.ts';

const base = resolveCatalogBase('bm_mobilenet_v2')!;
let dir: string;
let zip: string;

before(async () => {
  await initBackend();
  dir = await mkdtemp(join(tmpdir(), 'graft-mobilenet-2p-'));
  // Reddish vs bluish noise, 8 per class (resized to 224x224 by preprocessing).
  const random = mulberry32(5);
  const files: { name: string; data: Uint8Array }[] = [];
  for (const [cls, rgb] of [['red', [200, 40, 40]], ['blue', [40, 60, 200]]] as const) {
    for (let i = 0; i < 8; i++) {
      const px = new Uint8Array(32 * 32 * 3);
      for (let p = 0; p < 32 * 32; p++) px.set(rgb.map((v) => Math.max(0, Math.min(255, v + Math.round((random() - 0.5) * 90)))), p * 3);
      files.push({ name: `${cls}/${i}.png`, data: rgbPng(px, 32, 32) });
    }
  }
  zip = join(dir, 'colours.zip');
  await writeZip(zip, files);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});


test('the feature cache is reused by a second job on the same data and base, with the same result', async () => {
  const cacheDir = join(dir, 'cache');
  const common = { dataset: 'ds_colours', validationSplit: 0.25, checkpointEvery: 1_000_000, earlyStopping: false as const };
  const spec = specFor({ ...common, hyperparameters: { epochs: 3, batchSize: 4 } }, base, 1);
  const events: TrainingEvent[] = [];
  const first = await fineTune({ base, datasetPath: zip, spec, outDir: join(dir, 'cached'), cacheDir, hooks: { onEvent: (e) => { events.push(e); } } });
  assert.ok(events.some((e) => e.type === 'features' && e.data?.reused === false));
  const reuseEvents: TrainingEvent[] = [];
  const second = await fineTune({ base, datasetPath: zip, spec, outDir: join(dir, 'reused'), cacheDir, hooks: { onEvent: (e) => { reuseEvents.push(e); } } });
  assert.ok(reuseEvents.some((e) => e.type === 'features' && e.data?.reused === true), 'the second job says it reused the features');
  assert.deepEqual(second.result.confusionMatrix, first.result.confusionMatrix);
  assert.equal(second.result.valLoss, first.result.valLoss);
  // Augmentation makes the base run on every batch (a 1° rotation: nearly the same images).
  const aug = await fineTune({
    base,
    datasetPath: zip,
    spec: specFor({ ...common, hyperparameters: { epochs: 2, batchSize: 4 }, augmentation: { rotation: 1 } }, base, 1),
    outDir: join(dir, 'per-batch'),
  });
  assert.equal(aug.result.epochsRun, 2);
  assert.equal(first.result.validationImages, 4);
});

test("phase 2 through MobileNetV2's top layers (a depthwise conv included): frozen BN statistics unchanged, unfrozen layers trained", async () => {
  const epochs: { phase: string; durationMs: number }[] = [];
  const spec = specFor(
    { dataset: 'ds_colours', validationSplit: 0.25, hyperparameters: { epochs: 1, fineTuneEpochs: 1, batchSize: 4 }, trainableLayers: 6, earlyStopping: false, checkpointEvery: 1_000_000 },
    base,
    1,
  );
  const out = await fineTune({ base, datasetPath: zip, spec, outDir: join(dir, 'two-phase'), hooks: { onEpoch: (m) => { epochs.push(m); } } });
  console.log(`MobileNetV2 phase 2 (top 6 layers with weights): ${epochs.map((e) => `${e.phase} ${e.durationMs} ms`).join(', ')}; val acc ${out.result.valAccuracy}`);
  const model = await bundleLayersModel(out.modelZipPath);
  const training = JSON.parse((await bundleFiles(out.modelZipPath)).get('training.json')!.toString('utf8')) as Record<string, unknown>;
  const names = (training.trainableLayers as { names: string[] }).names;
  assert.deepEqual(names, ['block_16_depthwise', 'block_16_depthwise_BN', 'block_16_project', 'block_16_project_BN', 'Conv_1', 'Conv_1_bn']);
  const original = await catalogLayers('bm_mobilenet_v2');
  const value = (m: tf.LayersModel, layer: string, i: number) => m.getLayer(layer).getWeights()[i]!.dataSync();
  for (const layer of original.layers) {
    if (layer.weights.length === 0 || !model.layers.some((l) => l.name === layer.name)) continue;
    const isBn = layer.getClassName() === 'BatchNormalization';
    layer.weights.forEach((w, i) => {
      const same = tf.util.arraysEqual(value(model, layer.name, i), value(original, layer.name, i));
      const statistic = isBn && /moving_(mean|variance)/.test(w.originalName);
      if (!names.includes(layer.name) || statistic) assert.ok(same, `${w.originalName} unchanged`);
    });
  }
  for (const trained of ['block_16_depthwise', 'Conv_1', 'Conv_1_bn']) {
    assert.ok(!tf.util.arraysEqual(value(model, trained, 0), value(original, trained, 0)), `${trained} trained`);
  }
  model.dispose();
  original.dispose();
});

test('a graph base (nsfwjs MobileNetV2 1.4 graph) is a frozen feature extractor: trains the head, exports graph + head', async () => {
  const graphBase = resolveCatalogBase('bm_mobilenet_v2_mid')!;
  const events: TrainingEvent[] = [];
  const t = performance.now();
  const out = await fineTune({
    base: graphBase,
    datasetPath: zip,
    spec: specFor({ dataset: 'ds_colours', validationSplit: 0.25, hyperparameters: { epochs: 2, batchSize: 4 }, checkpointEvery: 1_000_000 }, graphBase, 1),
    outDir: join(dir, 'graph'),
    hooks: { onEvent: (e) => { events.push(e); } },
  });
  console.log(`graph base (MobileNetV2 1.4): ${(performance.now() - t).toFixed(0)} ms, val acc ${out.result.valAccuracy}, zip ${out.modelZipBytes} bytes`);
  const files = await bundleFiles(out.modelZipPath);
  for (const name of ['pipeline.json', 'base/model.json', 'base/weights.bin']) assert.ok(files.has(name), `the zip holds the graph (${name})`);
  assert.equal(JSON.parse(files.get('pipeline.json')!.toString('utf8')).kind, 'graph+head');
  const head = await bundleLayersModel(out.modelZipPath);
  assert.deepEqual(head.inputs[0]!.shape, [null, 1792], 'model.json is the head on the 1792 features');
  head.dispose();
  // The loader runs graph then head, from image bytes.
  const z = await loadPredictor(out.modelZipPath);
  const images: Uint8Array[] = [];
  for await (const { data } of readArchiveImages(zip, new Set(['red/0.png', 'blue/0.png']))) images.push(data);
  const p = await z.predict(images);
  assert.equal(p.length, 2);
  assert.ok(p.every((q) => q.probabilities.length === 2 && Math.abs(q.probabilities[0]! + q.probabilities[1]! - 1) < 1e-5));
  z.dispose();
  await assert.rejects(
    fineTune({ base: graphBase, datasetPath: zip, spec: specFor({ dataset: 'ds_colours', trainableLayers: 2 }, graphBase, 1), outDir: join(dir, 'graph-2') }),
    (e: unknown) => (e as { code?: string }).code === 'graph_model_frozen',
  );
});

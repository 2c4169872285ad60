/**
 * The frozen-feature path on ONNX Runtime inside a job (GRAFT_FROZEN_RUNTIME): on the bundled sample
 * (`bm_mnist_cnn`, head on cached features, a test set), the ONNX path gives the tfjs path's metrics
 * within a small tolerance, says so in its `backend` event and training.json, caches the converted
 * base and keeps its features apart from tfjs' in the feature cache; a conversion that failed its
 * check falls back to tfjs (an event says why) with the tfjs path's exact numbers.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fineTune, initBackend, type FineTuneOutcome, type TrainingEvent } from '../src/index.ts';
import { openBase } from '../src/bases/open-base.ts';
import { CONVERTER_VERSION, modelChecksum, onnxCacheFiles, onnxCacheKey } from '../src/onnx/index.ts';
import { cutBase } from '../src/train/freezing.ts';
import { makeDigitsZip } from './fixtures.ts';
import { bundleFiles, mnistBase, specFor } from './train-helpers.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
const base = mnistBase();
await initBackend();
let dir: string;
let testZip: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-onnx-features-'));
  testZip = join(dir, 'test-set.zip');
  await makeDigitsZip(testZip, { digits: [5, 6, 7, 8, 9], perClass: 4, offset: 300 });
});
after(async () => {
  delete process.env.GRAFT_FROZEN_RUNTIME;
  await rm(dir, { recursive: true, force: true });
});

const spec = specFor({ hyperparameters: { epochs: 6, learningRate: 0.01, batchSize: 32 }, earlyStopping: false, checkpointEvery: 1_000_000, testDataset: 'ds_test_set' });

interface Run { out: FineTuneOutcome; events: TrainingEvent[]; losses: { loss: number; valLoss: number | null }[] }

async function job(name: string, runtime: 'onnx' | 'tfjs', cacheDir: string): Promise<Run> {
  process.env.GRAFT_FROZEN_RUNTIME = runtime;
  const events: TrainingEvent[] = [];
  const losses: Run['losses'] = [];
  const out = await fineTune({
    base,
    datasetPath: SAMPLE,
    testDatasetPath: testZip,
    spec,
    outDir: join(dir, name),
    cacheDir,
    hooks: { onEvent: (e) => { events.push(e); }, onEpoch: (m) => { losses.push({ loss: m.loss, valLoss: m.valLoss }); } },
  });
  return { out, events, losses };
}

const backendEvents = (events: TrainingEvent[]) => events.filter((e) => e.type === 'backend');

function assertClose(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected} (tolerance ${tolerance})`);
}

let tfjsRun: Run;

test('the ONNX feature path gives the tfjs path\'s metrics within tolerance and reports its path', async () => {
  const cacheDir = join(dir, 'cache');
  tfjsRun = await job('tfjs', 'tfjs', cacheDir);
  assert.equal(backendEvents(tfjsRun.events).length, 1, 'tfjs by setting: only the first backend event');
  assert.equal(backendEvents(tfjsRun.events)[0]!.data!.frozenRuntime, 'tfjs');

  const onnx = await job('onnx', 'onnx', cacheDir);
  const [first, second] = backendEvents(onnx.events);
  assert.equal(first!.data!.frozenRuntime, 'onnx');
  assert.ok(second, 'a second backend event names the feature runtime');
  assert.equal(second.data!.featureRuntime, 'onnx');
  assert.equal(second.data!.fallback, false);
  const o = second.data!.onnx as { relError: number; cached: boolean; threads: number };
  assert.ok(o.relError < 1e-4, `checked against tfjs: ${o.relError}`);
  assert.equal(o.cached, false);
  assert.match(second.message, /ONNX Runtime/);
  // Its features are its own cache entry: not the tfjs job's.
  const features = onnx.events.filter((e) => e.type === 'features');
  assert.ok(features.some((e) => e.data?.reused === false && typeof e.data?.key === 'string'), 'features computed, not reused from the tfjs job');
  const tfjsKey = tfjsRun.events.find((e) => e.type === 'features' && e.data?.key)!.data!.key;
  assert.notEqual(features.find((e) => e.data?.key)!.data!.key, tfjsKey);
  assert.equal((await readdir(join(cacheDir, 'onnx'))).filter((f) => f.endsWith('.onnx')).length, 1, 'the converted base is cached');

  const a = tfjsRun.out.result;
  const b = onnx.out.result;
  const nVal = a.confusionMatrix.flat().reduce((s, v) => s + v, 0);
  assertClose(b.valAccuracy!, a.valAccuracy!, 1 / nVal + 1e-9, 'validation accuracy (at most one example apart)');
  assertClose(b.valLoss!, a.valLoss!, 1e-3, 'validation loss');
  assertClose(b.test!.accuracy!, a.test!.accuracy!, 1 / 20 + 1e-9, 'test accuracy');
  assertClose(b.test!.loss!, a.test!.loss!, 1e-3, 'test loss');
  assert.equal(onnx.losses.length, tfjsRun.losses.length);
  for (const [i, e] of onnx.losses.entries()) assertClose(e.loss, tfjsRun.losses[i]!.loss, 1e-3, `epoch ${i + 1} training loss`);
  const training = JSON.parse((await bundleFiles(onnx.out.modelZipPath)).get('training.json')!.toString('utf8')) as { featureRuntime?: string };
  assert.equal(training.featureRuntime, 'onnx');

  // A second job reuses the converted base and its features.
  const again = await job('onnx-again', 'onnx', cacheDir);
  assert.equal((backendEvents(again.events)[1]!.data!.onnx as { cached: boolean }).cached, true);
  assert.ok(again.events.some((e) => e.type === 'features' && e.data?.reused === true));
  assert.deepEqual(again.losses, onnx.losses, 'same features, same seed: same run');
});

test('a conversion that failed its check falls back to tfjs, says why, and gives the tfjs numbers', async () => {
  assert.ok(tfjsRun, 'the first test ran');
  const cacheDir = join(dir, 'cache-failed');
  // Plant the record a failed check leaves (no .onnx file): the job must not use ONNX Runtime.
  const opened = await openBase(base, { cacheDir: null });
  const cut = cutBase(opened.layers!, spec.cutLayer);
  const key = onnxCacheKey({ checksum: modelChecksum(cut), cutLayer: spec.cutLayer, pooling: 'none' });
  opened.dispose();
  const files = onnxCacheFiles(cacheDir, key);
  await mkdir(join(cacheDir, 'onnx'), { recursive: true });
  await writeFile(files.record, JSON.stringify({ version: CONVERTER_VERSION, key, ok: false, reason: 'the converted model differs from tfjs by 3.0e-2 (planted by the test)' }));

  const run = await job('fallback', 'onnx', cacheDir);
  const { out, events } = run;
  const second = backendEvents(events)[1];
  assert.ok(second, 'the fallback is said in an event');
  assert.equal(second.data!.featureRuntime, 'tfjs');
  assert.equal(second.data!.fallback, true);
  assert.match(second.message, /stay on TensorFlow\.js: the converted model differs from tfjs by 3\.0e-2/);
  assert.deepEqual(run.losses, tfjsRun.losses, 'the tfjs path, bit for bit');
  assert.equal(out.result.valLoss, tfjsRun.out.result.valLoss);
  assert.equal(out.result.test!.loss, tfjsRun.out.result.test!.loss);
  const training = JSON.parse(await readFile(join(dir, 'fallback', 'model', 'training.json'), 'utf8')) as { featureRuntime?: string };
  assert.equal(training.featureRuntime, 'tfjs');
});

test('augmented batches run through the frozen base on ONNX Runtime too, with the tfjs path\'s metrics within tolerance', async () => {
  const augmented = { ...spec, augmentation: { flip: 'none' as const, rotation: 10, zoom: 0.1, brightness: 0.1, contrast: 0.1 } };
  const run = async (name: string, runtime: 'onnx' | 'tfjs'): Promise<Run> => {
    process.env.GRAFT_FROZEN_RUNTIME = runtime;
    const events: TrainingEvent[] = [];
    const losses: Run['losses'] = [];
    const out = await fineTune({
      base, datasetPath: SAMPLE, spec: { ...augmented, testDataset: null }, outDir: join(dir, name), cacheDir: join(dir, 'cache-augmented'),
      hooks: { onEvent: (e) => { events.push(e); }, onEpoch: (m) => { losses.push({ loss: m.loss, valLoss: m.valLoss }); } },
    });
    return { out, events, losses };
  };
  const tfjs = await run('aug-tfjs', 'tfjs');
  const onnx = await run('aug-onnx', 'onnx');
  const said = onnx.events.filter((e) => e.type === 'augmentation' && e.data?.frozenRuntime);
  assert.equal(said.length, 1, 'one event says where the augmented batches run');
  assert.equal(said[0]!.data!.frozenRuntime, 'onnx');
  assert.match(said[0]!.message, /ONNX Runtime/);
  assert.equal(tfjs.events.filter((e) => e.type === 'augmentation' && e.data?.frozenRuntime).length, 0, 'tfjs by setting: nothing to say');
  // The same augmentation draws (same seed); features within 1e-4 of each other.
  assert.equal(onnx.losses.length, tfjs.losses.length);
  for (const [i, e] of onnx.losses.entries()) assertClose(e.loss, tfjs.losses[i]!.loss, 1e-2, `epoch ${i + 1} training loss`);
  const nVal = tfjs.out.result.confusionMatrix.flat().reduce((s, v) => s + v, 0);
  assertClose(onnx.out.result.valAccuracy!, tfjs.out.result.valAccuracy!, 2 / nVal + 1e-9, 'validation accuracy (at most two examples apart)');
  assertClose(onnx.out.result.valLoss!, tfjs.out.result.valLoss!, 1e-2, 'validation loss');
});

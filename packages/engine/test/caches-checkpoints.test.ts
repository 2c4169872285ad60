/**
 * Cross-job caches, checkpoints, the scratch baseline, test-set evaluation with top-k, and a
 * previous fine-tune as the base ("continue training"), on graft's MNIST base and the sample.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ResolvedBase } from '../src/bases/base-source.ts';
import { readFeatureCache } from '../src/data/feature-cache.ts';
import { fineTune, inspectArchive, loadPredictor, readArchiveImages, type TrainingEvent } from '../src/index.ts';
import { openImageEncoder } from '../src/tasks/image/encoder.ts';
import { makeDigitsZip } from './fixtures.ts';
import { bundleLayersModel, mnistBase, specFor } from './train-helpers.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
const base = mnistBase();
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-caches-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('the feature cache: a second job on the same dataset and base reuses the features (identical), much faster', async () => {
  const cacheDir = join(dir, 'cache');
  const spec = specFor({ hyperparameters: { epochs: 3 }, earlyStopping: false, checkpointEvery: 1_000_000 });
  const runs: { events: TrainingEvent[]; ms: number; out: Awaited<ReturnType<typeof fineTune>> }[] = [];
  for (const name of ['first', 'second']) {
    const events: TrainingEvent[] = [];
    const t = performance.now();
    const out = await fineTune({ base, datasetPath: SAMPLE, spec, outDir: join(dir, name), cacheDir, hooks: { onEvent: (e) => { events.push(e); } } });
    runs.push({ events, ms: performance.now() - t, out });
  }
  const featureEvent = (events: TrainingEvent[]) => events.filter((e) => e.type === 'features').at(-1)!;
  const computed = featureEvent(runs[0]!.events);
  const reused = featureEvent(runs[1]!.events);
  assert.equal(computed.data?.reused, false);
  assert.equal(reused.data?.reused, true);
  assert.match(reused.message, /Reused cached features for 300 images/);
  assert.deepEqual({ ...runs[1]!.out.result, trainingMs: 0 }, { ...runs[0]!.out.result, trainingMs: 0 }, 'same features → same model');
  // The cached file holds exactly what the base computes.
  const files = await readdir(join(cacheDir, 'features'));
  assert.deepEqual(files.filter((f) => f.endsWith('.tmp')), []);
  assert.equal(files.filter((f) => f.endsWith('.f32')).length, 1);
  const paths = (await inspectArchive(SAMPLE)).images.map((i) => i.path).sort();
  const encoder = await openImageEncoder(base, { cutLayer: 'features' });
  const fresh = await encoder.inputs.pass(SAMPLE, { ids: paths, features: 'all', cache: null });
  assert.equal(reused.data?.key, computed.data?.key, 'same cache key');
  const cached = await readFeatureCache(cacheDir, basename(files.find((f) => f.endsWith('.f32'))!, '.f32'), paths, encoder.dim);
  assert.ok(cached, 'cache readable for these paths and dim');
  assert.deepEqual(cached, fresh, 'bit-identical features');
  encoder.dispose();
  // A job that needs images (phase 2) reuses the decoded-image cache the next time too.
  const phase2 = specFor({ hyperparameters: { epochs: 1, fineTuneEpochs: 1 }, trainableLayers: 1, checkpointEvery: 1_000_000 });
  const seen: TrainingEvent[][] = [[], []];
  for (const [i, name] of ['img-a', 'img-b'].entries()) {
    await fineTune({ base, datasetPath: SAMPLE, spec: phase2, outDir: join(dir, name), cacheDir, hooks: { onEvent: (e) => { seen[i]!.push(e); } } });
  }
  assert.ok(seen[0]!.some((e) => e.type === 'images' && e.data?.reused !== true));
  assert.ok(seen[1]!.some((e) => e.type === 'images' && e.data?.reused === true));
  assert.ok(seen[1]!.some((e) => e.type === 'features' && e.data?.reused === true));
  assert.equal((await readdir(join(cacheDir, 'images'))).length, 2, 'one .u8 + one .json');
  await assert.rejects(stat(join(dir, 'img-a', '.work')), 'the per-job work directory is gone');
});

test('checkpoints every epoch: loadable zips, isBest on each new lowest val loss, the last best is the restored epoch', async () => {
  const reported: { epoch: number; phase: string; batch: number | null; valLoss: number | null; isBest: boolean; zipPath: string; bytes: number }[] = [];
  const out = await fineTune({
    base,
    datasetPath: SAMPLE,
    spec: specFor({ hyperparameters: { epochs: 6, fineTuneEpochs: 2, learningRate: 0.01 }, trainableLayers: 1, earlyStopping: { patience: 3 } }),
    outDir: join(dir, 'ckpt'),
    hooks: { onCheckpoint: (c) => { reported.push(c); } },
  });
  const r = out.result;
  assert.equal(reported.length, r.epochsRun, 'one per epoch');
  assert.deepEqual(out.checkpoints.map((c) => c.zipPath), reported.map((c) => c.zipPath));
  assert.deepEqual(reported.map((c) => basename(c.zipPath)), reported.map((c) => `${c.phase}-e${c.epoch}.zip`));
  let lowest = Infinity;
  for (const c of reported) {
    assert.equal(c.isBest, c.valLoss! < lowest, `epoch ${c.epoch}: isBest iff lowest so far`);
    lowest = Math.min(lowest, c.valLoss!);
    assert.equal((await stat(c.zipPath)).size, c.bytes);
  }
  // The head phase's checkpoints are heads on the frozen base; phase 2 changes the base: complete ones.
  const templates = new Set(out.checkpoints.filter((c) => c.phase === 'head').map((c) => c.templatePath));
  assert.equal(templates.size, 1);
  assert.ok([...templates][0]);
  assert.ok(out.checkpoints.filter((c) => c.phase === 'fine-tune').every((c) => c.templatePath === null));
  const head = out.checkpoints.find((c) => c.phase === 'head')!;
  const fullSize = (await stat([...templates][0]!)).size;
  // (The MNIST CNN's base is small beside a 128-unit head on 800 features; on MobileNetV2 with the default head about 0.6 MB against 3.5 MB: bench/RESULTS.md.)
  assert.ok(head.bytes < fullSize, `a head checkpoint (${head.bytes} bytes) is smaller than the complete model (${fullSize} bytes)`);
  const best = reported.filter((c) => c.isBest).at(-1)!;
  assert.equal(reported.filter((c) => c.valLoss === lowest).length, 1, 'exactly one best at the end');
  assert.equal(best.valLoss, lowest);
  assert.equal(best.epoch, r.bestEpoch, 'the best checkpoint is the epoch the exported model has');
  // Every checkpoint is a model zip like the final one, loadable by the same loader; the best one scores what it reported.
  const final = await loadPredictor(out.modelZipPath);
  const validation = new Set((final.training!.split as { validation: string[] }).validation);
  final.dispose();
  const images: { path: string; data: Uint8Array }[] = [];
  for await (const image of readArchiveImages(SAMPLE, validation)) images.push(image);
  for (const c of reported) {
    const z = await loadPredictor(c.zipPath);
    assert.deepEqual(z.labels, r.classes);
    assert.deepEqual((z.training!.checkpoint as { epoch: number }).epoch, c.epoch);
    const predictions = await z.predict(images.map((i) => i.data));
    assert.ok(predictions.every((p) => p.probabilities.length === 5));
    if (c === best) {
      let loss = 0;
      predictions.forEach((p, i) => {
        loss -= Math.log(Math.max(1e-7, p.probabilities[r.classes.indexOf(images[i]!.path.split('/')[0]!)]!));
      });
      assert.ok(Math.abs(loss / validation.size - best.valLoss!) < 1e-4, `best checkpoint's val loss ${loss / validation.size} vs ${best.valLoss}`);
    }
    z.dispose();
  }
  // Every N batches: named with the batch, the baseline never checkpointed.
  const every: { phase: string; epoch: number; batch: number | null }[] = [];
  await fineTune({
    base,
    datasetPath: SAMPLE,
    spec: specFor({ hyperparameters: { epochs: 2 }, checkpointEvery: 5, baseline: 'scratch', earlyStopping: false }),
    outDir: join(dir, 'ckpt-n'),
    hooks: { onCheckpoint: (c) => { every.push(c); } },
  });
  // 8 batches per epoch, 16 steps: after steps 5, 10, 15.
  assert.deepEqual(every.map((c) => `${c.phase}-e${c.epoch}-b${c.batch}`), ['head-e1-b5', 'head-e2-b2', 'head-e2-b7']);
  // Head checkpoints (base frozen) beside the one complete template they are assembled from.
  const files = (await readdir(join(dir, 'ckpt-n', 'checkpoints'))).sort();
  assert.deepEqual(files.filter((f) => f.endsWith('.zip') && !f.startsWith('frozen-base-')), ['head-e1-b5.zip', 'head-e2-b2.zip', 'head-e2-b7.zip']);
  // Each with its resume state beside it.
  assert.deepEqual(files.filter((f) => f.endsWith('.resume')), ['head-e1-b5.resume', 'head-e2-b2.resume', 'head-e2-b7.resume']);
  assert.equal(files.filter((f) => f.startsWith('frozen-base-')).length, 1);
});

test('the scratch baseline and a test set with top-k', async () => {
  const testZip = join(dir, 'test-set.zip');
  await makeDigitsZip(testZip, { digits: [5, 6, 7, 8, 9], perClass: 20, offset: 300 });
  const subsetZip = join(dir, 'test-subset.zip');
  await makeDigitsZip(subsetZip, { digits: [5, 9], perClass: 10, offset: 400 });
  const epochs: { phase: string; epoch: number }[] = [];
  const events: TrainingEvent[] = [];
  const checkpoints: string[] = [];
  const out = await fineTune({
    base,
    datasetPath: SAMPLE,
    testDatasetPath: testZip,
    spec: specFor({ hyperparameters: { epochs: 5 }, baseline: 'scratch', topK: 2, testDataset: 'ds_test_set' }),
    outDir: join(dir, 'baseline'),
    hooks: { onEpoch: (m) => { epochs.push(m); }, onEvent: (e) => { events.push(e); }, onCheckpoint: (c) => { checkpoints.push(c.phase); } },
  });
  const r = out.result;
  const b = r.baseline!;
  console.log(
    `transfer: val acc ${r.valAccuracy?.toFixed(3)}, test acc ${r.test?.accuracy?.toFixed(3)} (top-2 ${r.test?.topK.accuracy?.toFixed(3)}); ` +
      `scratch baseline: val acc ${b.valAccuracy?.toFixed(3)}, test acc ${b.testAccuracy?.toFixed(3)}, ${b.epochsRun} epochs in ${b.trainingMs} ms; transfer gain ${b.transferGain?.toFixed(3)}`,
  );
  assert.equal(b.kind, 'scratch');
  assert.ok(b.epochsRun >= 1 && b.epochsRun <= 5);
  assert.ok(b.trainingMs > 0);
  assert.equal(b.transferGain, r.valAccuracy! - b.valAccuracy!);
  assert.ok(b.testAccuracy !== null);
  assert.ok(epochs.some((e) => e.phase === 'baseline'));
  assert.ok(!checkpoints.includes('baseline'), 'the baseline is never checkpointed');
  assert.equal(events.some((e) => e.type === 'taskMismatch'), r.valAccuracy! <= b.valAccuracy! + 0.01);
  // Test set: 100 images, every class; top-2 ≥ top-1; validation mirrors the top-level fields.
  const t = r.test!;
  assert.equal(t.images, 100);
  assert.equal(t.topK.k, 2);
  assert.ok(t.topK.accuracy! >= t.accuracy!);
  assert.deepEqual(t.perClass.map((c) => c.support), [20, 20, 20, 20, 20]);
  assert.deepEqual(t.confusionMatrix.map((row) => row.reduce((a, x) => a + x, 0)), [20, 20, 20, 20, 20]);
  assert.equal(r.validation!.accuracy, r.valAccuracy);
  assert.equal(r.validation!.loss, r.valLoss);
  assert.deepEqual(r.validation!.confusionMatrix, r.confusionMatrix);
  assert.deepEqual(r.validation!.perClass, r.perClass);
  // Reloaded: the exported model scores the test set as reported.
  const z = await loadPredictor(out.modelZipPath);
  const testImages: { path: string; data: Uint8Array }[] = [];
  for await (const image of readArchiveImages(testZip, new Set((await inspectArchive(testZip)).images.map((i) => i.path)))) testImages.push(image);
  const predicted = await z.predict(testImages.map((i) => i.data));
  const correct = predicted.filter((p, i) => p.label === testImages[i]!.path.split('/')[0]).length;
  assert.equal(correct / 100, t.accuracy);
  z.dispose();
  // A test set with a subset of the classes; topK clamped to the number of classes.
  const sub = await fineTune({
    base,
    datasetPath: SAMPLE,
    testDatasetPath: subsetZip,
    spec: specFor({ hyperparameters: { epochs: 2 }, topK: 50, testDataset: 'ds_subset' }),
    outDir: join(dir, 'subset'),
  });
  assert.equal(sub.result.test!.images, 20);
  assert.equal(sub.result.test!.topK.k, 5);
  assert.equal(sub.result.test!.topK.accuracy, 1, 'top-5 of 5 classes');
  assert.deepEqual(sub.result.test!.perClass.map((c) => c.support), [0, 10, 10, 0, 0]);
});

test('a previous fine-tune as the base: same classes → its head continues; other classes → a fresh head', async () => {
  const first = await fineTune({ base, datasetPath: SAMPLE, spec: specFor({ hyperparameters: { epochs: 8 }, earlyStopping: false }), outDir: join(dir, 'prev') });
  const previous: ResolvedBase = {
    descriptor: { ...base.descriptor, id: 'ft_prev', name: 'ft_prev (fine-tuned from bm_mnist_cnn)', featureLayer: 'features' },
    source: { kind: 'model-zip', path: first.modelZipPath },
  };
  const run = async (datasetPath: string, outDir: string) => {
    const events: TrainingEvent[] = [];
    const epochs: { valLoss: number | null }[] = [];
    const out = await fineTune({
      base: previous,
      datasetPath,
      spec: specFor({ hyperparameters: { epochs: 1 }, earlyStopping: false }, previous),
      outDir,
      cacheDir: join(dir, 'continue-cache'), // the unpacked model zip goes here, not to the machine-wide default
      hooks: { onEvent: (e) => { events.push(e); }, onEpoch: (m) => { epochs.push(m); } },
    });
    return { out, cont: events.find((e) => e.type === 'continue')!, firstValLoss: epochs[0]!.valLoss! };
  };
  const same = await run(SAMPLE, join(dir, 'continue'));
  assert.equal(same.cont.data?.continued, true);
  console.log(`continue training: previous val loss ${first.result.valLoss?.toFixed(4)}, after 1 more epoch ${same.firstValLoss.toFixed(4)}`);
  assert.ok(same.firstValLoss < first.result.valLoss! + 0.05, 'starts from the trained head, not from scratch');
  const model = await bundleLayersModel(same.out.modelZipPath);
  assert.equal(model.layers.filter((l) => l.name === 'graft_head_output').length, 1, 'one head: the old one was cut off');
  model.dispose();
  const other = join(dir, 'digits-0-2.zip');
  await makeDigitsZip(other, { digits: [0, 1, 2], perClass: 20 });
  const fresh = await run(other, join(dir, 'fresh'));
  assert.equal(fresh.cont.data?.continued, false);
  assert.match(fresh.cont.message, /classes .* differ/);
  assert.deepEqual(fresh.out.result.classes, ['one', 'two', 'zero']);
});

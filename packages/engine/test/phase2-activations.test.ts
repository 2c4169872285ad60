/**
 * Phase 2 on the frozen part's activations computed once (pipeline/stages/phase2-activations.ts):
 * the same job with the activations kept (memory, disk) and recomputed every batch
 * (GRAFT_PHASE2_CACHE=off) gives the same metrics — bit for bit on tfjs (the same kernels on the same
 * rows), within float tolerance when the frozen part runs on ONNX Runtime — and the frozen part runs
 * once per example instead of once per example and epoch (the `frozen_activations` event's count).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { fineTune, loadPredictor, readArchiveImages, type FineTuneOutcome, type TrainingEvent } from '../src/index.ts';
import { mnistBase, specFor } from './train-helpers.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
const base = mnistBase();
// conv2 unfrozen: the frozen part is conv1 and its pooling, the boundary its output.
const spec = specFor({ hyperparameters: { epochs: 2, fineTuneEpochs: 3 }, trainableLayers: 1, earlyStopping: false });
const FINE_TUNE_EPOCHS = 3;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-phase2-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  out: FineTuneOutcome;
  events: TrainingEvent[];
  epochs: { phase: string; loss: number; valLoss: number | null; valAccuracy: number | null }[];
}

const ENV = ['GRAFT_FROZEN_RUNTIME', 'GRAFT_PHASE2_CACHE', 'GRAFT_PHASE2_CACHE_MEMORY_MB', 'GRAFT_PHASE2_CACHE_DISK_MB'] as const;

async function job(name: string, env: Partial<Record<(typeof ENV)[number], string>>, cacheDir: string | null = null): Promise<Run> {
  const saved = ENV.map((k) => process.env[k]);
  for (const k of ENV) delete process.env[k];
  Object.assign(process.env, env);
  const events: TrainingEvent[] = [];
  const epochs: Run['epochs'] = [];
  try {
    const out = await fineTune({
      base,
      datasetPath: SAMPLE,
      spec,
      outDir: join(dir, name),
      cacheDir,
      hooks: { onEvent: (e) => { events.push(e); }, onEpoch: (m) => { epochs.push(m); } },
    });
    return { out, events, epochs };
  } finally {
    ENV.forEach((k, i) => (saved[i] === undefined ? delete process.env[k] : (process.env[k] = saved[i])));
  }
}

const phaseData = (r: Run) => r.events.find((e) => e.type === 'phase' && (e.data as { epochs?: number } | undefined)?.epochs === FINE_TUNE_EPOCHS)!.data!.frozenActivations as Record<string, unknown>;
const frozenRuns = (r: Run) => r.events.find((e) => e.type === 'frozen_activations')!.data!.frozenRuns as number;
const fineTuneEpochs = (r: Run) => r.epochs.filter((e) => e.phase === 'fine-tune');

let recomputed: Run;

test('tfjs: kept in memory, kept on disk and recomputed every epoch give bit-identical metrics; the frozen part runs once', async () => {
  const tensorsBefore = tf.memory().numTensors;
  recomputed = await job('tfjs-off', { GRAFT_FROZEN_RUNTIME: 'tfjs', GRAFT_PHASE2_CACHE: 'off' });
  const memory = await job('tfjs-memory', { GRAFT_FROZEN_RUNTIME: 'tfjs' });
  const disk = await job('tfjs-disk', { GRAFT_FROZEN_RUNTIME: 'tfjs', GRAFT_PHASE2_CACHE_MEMORY_MB: '0' });
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor outlives the jobs');

  const { trainImages, validationImages } = recomputed.out.result;
  const perEpoch = trainImages + validationImages;
  assert.equal(phaseData(recomputed).cached, false);
  assert.equal(frozenRuns(recomputed), FINE_TUNE_EPOCHS * perEpoch, 'without the cache: every example, every epoch');
  for (const [run, location] of [[memory, 'memory'], [disk, 'disk']] as const) {
    const d = phaseData(run);
    assert.equal(d.cached, true);
    assert.equal(d.location, location);
    assert.equal(d.runtime, 'tfjs');
    assert.deepEqual(d.examples, { train: trainImages, validation: validationImages });
    assert.equal(frozenRuns(run), perEpoch, `${location}: the frozen part ran once per example`);
    // Same rows through the same tfjs kernels: the same numbers, bit for bit.
    assert.deepEqual(fineTuneEpochs(run).map((e) => [e.loss, e.valLoss, e.valAccuracy]), fineTuneEpochs(recomputed).map((e) => [e.loss, e.valLoss, e.valAccuracy]), `${location}: per-epoch metrics`);
    assert.deepEqual({ ...run.out.result, trainingMs: 0 }, { ...recomputed.out.result, trainingMs: 0 }, `${location}: the job's result`);
  }
  console.log(`phase 2 (3 epochs, conv2 unfrozen): activations ${phaseData(memory).bytes} bytes in ${phaseData(memory).ms} ms; val acc ${memory.out.result.valAccuracy}, loss ${memory.out.result.valLoss}`);
});

test('over the disk budget: recomputed every batch, said so, same numbers', async () => {
  const over = await job('tfjs-over', { GRAFT_FROZEN_RUNTIME: 'tfjs', GRAFT_PHASE2_CACHE_MEMORY_MB: '0', GRAFT_PHASE2_CACHE_DISK_MB: '0' });
  const d = phaseData(over);
  assert.equal(d.cached, false);
  assert.equal(d.reason, 'over_disk_budget');
  assert.match(over.events.find((e) => e.type === 'phase' && e.message.includes('GRAFT_PHASE2_CACHE_DISK_MB'))!.message, /run on every batch instead/);
  assert.equal(frozenRuns(over), frozenRuns(recomputed));
  assert.deepEqual({ ...over.out.result, trainingMs: 0 }, { ...recomputed.out.result, trainingMs: 0 });
});

test('ONNX Runtime computes the frozen part once, checked against tfjs; metrics within tolerance of tfjs recomputing it', async () => {
  const cacheDir = join(dir, 'cache');
  const onnx = await job('onnx', { GRAFT_FROZEN_RUNTIME: 'onnx' }, cacheDir);
  const d = phaseData(onnx);
  assert.equal(d.cached, true);
  assert.equal(d.runtime, 'onnx', JSON.stringify(d));
  assert.ok((d.onnx as { relError: number }).relError < 1e-4);
  const perEpoch = onnx.out.result.trainImages + onnx.out.result.validationImages;
  assert.equal(frozenRuns(onnx), perEpoch);
  // Tolerance: ONNX Runtime's activations differ from tfjs' in the last bits (checked < 1e-4 relative);
  // over 2 + 3 epochs that moves losses by well under 1e-3 and accuracy by at most one example.
  const nVal = onnx.out.result.validationImages;
  const a = recomputed.out.result;
  const b = onnx.out.result;
  assert.ok(Math.abs(b.valAccuracy! - a.valAccuracy!) <= 1 / nVal + 1e-9, `val accuracy ${b.valAccuracy} vs ${a.valAccuracy}`);
  assert.ok(Math.abs(b.valLoss! - a.valLoss!) <= 1e-3, `val loss ${b.valLoss} vs ${a.valLoss}`);
  for (const [i, e] of fineTuneEpochs(onnx).entries()) {
    const r = fineTuneEpochs(recomputed)[i]!;
    assert.ok(Math.abs(e.loss - r.loss) <= 1e-3, `fine-tune epoch ${i + 1} loss ${e.loss} vs ${r.loss}`);
    assert.ok(Math.abs(e.valLoss! - r.valLoss!) <= 1e-3, `fine-tune epoch ${i + 1} val loss ${e.valLoss} vs ${r.valLoss}`);
  }
  // The evaluation ran the frozen part on ONNX Runtime too; the downloaded model (all tfjs) scores what the job reported.
  assert.equal(onnx.events.find((e) => e.type === 'evaluation')!.data?.frozenPartRuntime, 'onnx');
  const model = await loadPredictor(onnx.out.modelZipPath);
  const validation = new Set((model.training!.split as { validation: string[] }).validation);
  const images: { path: string; data: Uint8Array }[] = [];
  for await (const image of readArchiveImages(SAMPLE, validation)) images.push(image);
  const predictions = await model.predict(images.map((i) => i.data));
  model.dispose();
  let lossSum = 0;
  let correct = 0;
  predictions.forEach((p, i) => {
    const truth = b.classes.indexOf(images[i]!.path.split('/')[0]!);
    lossSum -= Math.log(Math.min(1 - 1e-7, Math.max(1e-7, p.probabilities[truth]!)));
    if (p.probabilities.indexOf(Math.max(...p.probabilities)) === truth) correct++;
  });
  console.log(`downloaded model on the validation images: loss ${lossSum / nVal}, accuracy ${correct / nVal}; reported ${b.valLoss}, ${b.valAccuracy}`);
  assert.ok(Math.abs(lossSum / nVal - b.valLoss!) < 1e-4, `downloaded model's val loss ${lossSum / nVal} vs reported ${b.valLoss}`);
  assert.equal(correct / nVal, b.valAccuracy);
  // A second job reuses the converted frozen part.
  const again = await job('onnx-again', { GRAFT_FROZEN_RUNTIME: 'onnx' }, cacheDir);
  assert.equal((phaseData(again).onnx as { cached: boolean }).cached, true);
  const numbers = (r: Run) => fineTuneEpochs(r).map((e) => [e.loss, e.valLoss, e.valAccuracy]);
  assert.deepEqual(numbers(again), numbers(onnx), 'same converted part, same seed: the same run');
});

test('with augmentation the training batches recompute (said in the phase event); validation activations are kept', async () => {
  const out = await fineTune({
    base,
    datasetPath: SAMPLE,
    spec: specFor({ hyperparameters: { epochs: 1, fineTuneEpochs: 1 }, trainableLayers: 1, augmentation: { flip: 'none', rotation: 5, zoom: 0, brightness: 0, contrast: 0 } }),
    outDir: join(dir, 'augmented'),
    hooks: {
      onEvent: (e) => {
        if (e.type !== 'phase' || !(e.data as Record<string, unknown>)?.frozenActivations) return;
        const d = (e.data as { frozenActivations: Record<string, unknown> }).frozenActivations;
        assert.equal(d.augmentation, true);
        assert.deepEqual((d.examples as { train: number }).train, 0);
        assert.match(e.message, /Augmentation is on: the training batches run the frozen layers on every augmented batch/);
      },
    },
  });
  assert.ok(out.result.valAccuracy !== null);
});

test('with augmentation and the frozen part on ONNX Runtime, the augmented training batches run it there too, within tolerance of tfjs', async () => {
  const augmented = specFor({ hyperparameters: { epochs: 1, fineTuneEpochs: 2 }, trainableLayers: 1, earlyStopping: false, augmentation: { flip: 'none', rotation: 5, zoom: 0.1, brightness: 0, contrast: 0 } });
  const run = async (runtime: 'onnx' | 'tfjs') => {
    const saved = process.env.GRAFT_FROZEN_RUNTIME;
    process.env.GRAFT_FROZEN_RUNTIME = runtime;
    const events: TrainingEvent[] = [];
    const epochs: Run['epochs'] = [];
    try {
      const out = await fineTune({
        base, datasetPath: SAMPLE, spec: augmented, outDir: join(dir, `augmented-${runtime}`), cacheDir: join(dir, 'cache-augmented'),
        hooks: { onEvent: (e) => { events.push(e); }, onEpoch: (m) => { epochs.push(m); } },
      });
      return { out, events, epochs };
    } finally {
      if (saved === undefined) delete process.env.GRAFT_FROZEN_RUNTIME;
      else process.env.GRAFT_FROZEN_RUNTIME = saved;
    }
  };
  const tfjs = await run('tfjs');
  const onnx = await run('onnx');
  const phaseMessage = (r: Run) => r.events.find((e) => e.type === 'phase' && (e.data as Record<string, unknown>)?.frozenActivations)!.message;
  assert.match(phaseMessage(onnx), /every augmented batch \(ONNX Runtime\)/);
  assert.match(phaseMessage(tfjs), /every augmented batch \(TensorFlow\.js\)/);
  assert.equal(onnx.epochs.length, tfjs.epochs.length);
  for (const [i, e] of onnx.epochs.entries()) {
    assert.ok(Math.abs(e.loss - tfjs.epochs[i]!.loss) <= 1e-2, `epoch ${i + 1} (${e.phase}) training loss: ${e.loss} vs ${tfjs.epochs[i]!.loss}`);
  }
  assert.ok(Math.abs(onnx.out.result.valLoss! - tfjs.out.result.valLoss!) <= 1e-2, `validation loss: ${onnx.out.result.valLoss} vs ${tfjs.out.result.valLoss}`);
});

/**
 * The memory plan's estimates (packages/engine/src/train/memory-plan.ts) against measured peaks:
 * the bytes tfjs holds (tf.profile's peak minus what was in use before) over a phase's first
 * training step — weights it creates, Adam's slots, the forward pass kept for the backward and the
 * gradients — built as the engine's stages build them, at a few batch sizes.
 *
 *   node --import tsx bench/memory-plan.ts
 */
import { cpus, loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend, resolveCatalogBase } from '@graft/engine';
import { openBase } from '../packages/engine/src/bases/open-base.ts';
import { cutBase, selectTrainableLayers, splitForward, unfreeze } from '../packages/engine/src/train/freezing.ts';
import { cloneWithFreshWeights } from '../packages/engine/src/train/fresh-weights.ts';
import { buildHead, featureLayout, headForwardTraining, poolFeatures, type LossOptions } from '../packages/engine/src/train/head.ts';
import { accumulatedStep } from '../packages/engine/src/train/accumulate.ts';
import { estimateBaseline, estimateFineTune, estimateInference, peakBytes, type PhaseEstimate } from '../packages/engine/src/train/memory-plan.ts';

const backend = await initBackend();
const MiB = 2 ** 20;
const rows: string[] = [];
console.log(`${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(1)).join(' ')}, backend ${backend.name}`);

async function measure(f: () => Promise<void>): Promise<number> {
  const before = tf.memory().numBytes;
  const p = await tf.profile(f);
  return p.peakBytes - before;
}

function record(base: string, what: string, batch: number, e: PhaseEstimate, measured: number) {
  const est = peakBytes(e, batch);
  const row = `| ${base} | ${what} | ${batch} | ${(est / MiB).toFixed(1)} | ${(measured / MiB).toFixed(1)} | ${(est / measured).toFixed(2)} |`;
  rows.push(row);
  console.log(row);
}

async function cutOf(id: string) {
  const r = resolveCatalogBase(id)!;
  const opened = await openBase(r);
  return cutBase(opened.layers!, r.descriptor.featureLayer);
}

const lossFor = (kernels: tf.Variable[]): LossOptions => ({ numClasses: 2, labelSmoothing: 0, classWeights: null, l2: 0, kernels });

async function baseline(id: string, batches: number[]) {
  const cut = await cutOf(id);
  const layout = featureLayout(cut.outputs[0]!.shape.slice(1) as number[]);
  for (const b of batches) {
    let e: PhaseEstimate | null = null;
    const measured = await measure(async () => {
      const scratch = await cloneWithFreshWeights(cut, 1);
      for (const l of scratch.layers) l.trainable = true;
      const head = buildHead(layout.dim, 2, layout.pooling, { units: 0, dropout: 0.2, l2: 0, seed: 1 });
      e = estimateBaseline(cut, head.variables.reduce((s, v) => s + v.size, 0), b)!;
      const vars = [...scratch.trainableWeights.map((w) => w.read() as tf.Variable), ...head.variables];
      const x = tf.randomUniform([b, ...(cut.inputs[0]!.shape.slice(1) as number[])]);
      const y = tf.tensor1d(Array.from({ length: b }, (_, i) => i % 2), 'int32');
      const opt = tf.train.adam(0.001);
      await accumulatedStep(opt, vars, [x], y, ([xs], rows) => headForwardTraining(head, poolFeatures(head, scratch.apply(xs!, { training: true }) as tf.Tensor), 1, rows), lossFor(head.kernels), b);
      opt.dispose();
      tf.dispose([x, y]);
      scratch.dispose();
      head.model.dispose();
    });
    record(id, 'scratch baseline (BN on batch statistics)', b, e!, measured);
  }
  cut.dispose();
}

async function fineTunePhase(id: string, k: number, batches: number[]) {
  const cut = await cutOf(id);
  const layout = featureLayout(cut.outputs[0]!.shape.slice(1) as number[]);
  const selection = selectTrainableLayers(cut, k);
  for (const b of batches) {
    let e: PhaseEstimate | null = null;
    const measured = await measure(async () => {
      const head = buildHead(layout.dim, 2, layout.pooling, { units: 0, dropout: 0.2, l2: 0, seed: 1 });
      e = estimateFineTune(cut, selection.layers, head.variables.reduce((s, v) => s + v.size, 0), b)!;
      const vars = [...head.variables, ...unfreeze(selection.layers)];
      const forward = splitForward(cut, selection.layers);
      const x = tf.randomUniform([b, ...(cut.inputs[0]!.shape.slice(1) as number[])]);
      const y = tf.tensor1d(Array.from({ length: b }, (_, i) => i % 2), 'int32');
      const boundary = forward.frozen(x, 32);
      const opt = tf.train.adam(0.001);
      await accumulatedStep(opt, vars, boundary, y, (bs, rows) => headForwardTraining(head, poolFeatures(head, forward.trainable(bs)), 1, rows), lossFor(head.kernels), b);
      opt.dispose();
      tf.dispose([x, y, ...boundary]);
      head.model.dispose();
    });
    for (const l of selection.layers) l.trainable = false;
    record(id, `fine-tune, top ${k} weighted layers (BN moving statistics)`, b, e!, measured);
  }
  cut.dispose();
}

async function inference(id: string, chunks: number[]) {
  const cut = await cutOf(id);
  for (const b of chunks) {
    const e = estimateInference('evaluation', cut, b)!;
    const x = tf.randomUniform([b, ...(cut.inputs[0]!.shape.slice(1) as number[])]);
    const measured = await measure(async () => {
      tf.tidy(() => {
        cut.predict(x);
      });
    });
    x.dispose();
    record(id, 'inference (features, evaluation)', b, e, measured);
  }
  cut.dispose();
}

await baseline('bm_mnist_cnn', [32, 128]);
await inference('bm_mnist_cnn', [256]);
await baseline('bm_mobilenet_v2', [1, 2, 4]);
await fineTunePhase('bm_mobilenet_v2', 10, [4, 16]);
await fineTunePhase('bm_mobilenet_v2', 30, [4, 16]);
await inference('bm_mobilenet_v2', [8, 32]);
console.log('\n| base | phase | batch | estimated MiB | measured MiB | estimate / measured |\n|---|---|---:|---:|---:|---:|');
console.log(rows.join('\n'));

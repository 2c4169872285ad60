/**
 * Peak memory of a job's phases, estimated from the model and the batch size before anything
 * trains, against the budget of the backend in use; a batch that does not fit trains as
 * micro-batches (train/accumulate.ts), and a phase where even one example does not fit fails the
 * job at once with `insufficient_memory` instead of dying mid-run.
 *
 * The estimate: a phase's new state (its trainable parameters' gradients, Adam's two slots and the
 * update's temporaries, an accumulator when micro-batching, weights the phase creates) plus, per
 * example, what tfjs holds at the peak of a training step: every kernel's saved tensors from the
 * forward pass and every gradient of the backward pass (engine.gradients keeps both until the step
 * ends), as a factor of each taped layer's output size. The factors were measured with tf.profile
 * on one-layer probes (a layer between two 1x1 convolutions, batch 40 vs 8, wasm backend) and the
 * whole estimate checked against measured peaks (bench/RESULTS.md, "Memory"). Inference (the
 * frozen part, feature passes, evaluation) frees activations as it goes: its peak per example is a
 * fraction of the layers' outputs, measured on MobileNetV2.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { BackendChoice } from '../backend/backend.ts';
import { TrainingError } from '../errors.ts';

const F32 = 4;

/** Bytes held per output byte of a layer under the gradient tape, by class (training-mode BN apart). */
const TAPED_FACTOR: Record<string, number> = {
  Conv2D: 3,
  DepthwiseConv2D: 4,
  SeparableConv2D: 5,
  Dense: 10,
  BatchNormalization: 6, // inference mode (moving statistics)
  ReLU: 4,
  Activation: 2,
  ZeroPadding2D: 2,
  MaxPooling2D: 3,
  AveragePooling2D: 3,
  GlobalAveragePooling2D: 2,
  Dropout: 5,
  Add: 2,
  Concatenate: 2,
  Flatten: 1,
  Reshape: 1,
  InputLayer: 0,
};
/** Batch statistics: moments, the centred input and their gradients. */
const BATCHNORM_TRAINING_FACTOR = 15;
/** Classes not measured: a layer of a few kernels. */
const DEFAULT_TAPED_FACTOR = 6;
/** Inference peak per example as a share of the sum of layer outputs (MobileNetV2 224: 29 MB of 84 MB). */
const INFERENCE_SHARE = 0.4;
/** Adam: gradient + m + v + the update's temporaries, per trainable parameter. */
const OPTIMIZER_STATE_FACTOR = 5;

export type PhaseKind = 'head' | 'fine-tune' | 'baseline' | 'features' | 'evaluation';

export interface PhaseEstimate {
  phase: PhaseKind;
  /** Bytes a step needs whatever its batch size (new weights, gradients, optimizer slots). */
  fixedBytes: number;
  /** Bytes per example at the step's peak. */
  perExampleBytes: number;
  /** Examples per step as requested (batch size or inference chunk). */
  batchSize: number;
  /** Trains with an optimizer (accumulation possible); inference phases only have a chunk size. */
  trains: boolean;
}

export function peakBytes(e: PhaseEstimate, batch = e.batchSize): number {
  return e.fixedBytes + e.perExampleBytes * batch;
}

/** Elements per example of a layer's output(s); null when a dimension is unknown. */
function outputElements(layer: tf.layers.Layer): number | null {
  const shape = layer.outputShape as (number | null)[] | (number | null)[][];
  const shapes = Array.isArray(shape[0]) ? (shape as (number | null)[][]) : [shape as (number | null)[]];
  let sum = 0;
  for (const s of shapes) {
    let n = 1;
    for (const d of s.slice(1)) {
      if (d === null) return null;
      n *= d;
    }
    sum += n;
  }
  return sum;
}

function inputElements(model: tf.LayersModel): number | null {
  let sum = 0;
  for (const input of model.inputs) {
    let n = 1;
    for (const d of input.shape.slice(1)) {
      if (d === null) return null;
      n *= d;
    }
    sum += n;
  }
  return sum;
}

export interface TapedRegion {
  /** The layers run under the gradient tape, in order. */
  layers: readonly tf.layers.Layer[];
  /** BatchNormalization with batch statistics (the scratch baseline) or moving ones (phase 2). */
  batchNormTraining: boolean;
}

/** Elements per example of a layer's (first) input; null when unknown. */
function inputElementsOf(layer: tf.layers.Layer): number | null {
  const input = layer.inboundNodes[0]?.inputTensors[0];
  if (!input) return null;
  let n = 1;
  for (const d of input.shape.slice(1)) {
    if (d === null) return null;
    n *= d;
  }
  return n;
}

/** A layer's own bias add and activation are kernels of their own (Conv2D, Dense, …). */
function extraKernels(layer: tf.layers.Layer): number {
  const config = layer.getConfig() as { useBias?: boolean; activation?: string };
  return (config.useBias ? 1 : 0) + (config.activation && config.activation !== 'linear' ? 2 : 0);
}

/**
 * The wasm backend's filter gradient of a stride-1 convolution with a kernel larger than 1x1 is an
 * im2col (wasm-conv-grad.ts): a slice and a transposed copy of the input per filter tap, held until
 * the kernel returns. Only the largest such temporary counts (one kernel runs at a time).
 */
function convTemporaryBytes(layer: tf.layers.Layer): number {
  if (layer.getClassName() !== 'Conv2D') return 0;
  const config = layer.getConfig() as { kernelSize?: number | number[]; strides?: number | number[] };
  const k = [config.kernelSize ?? 1].flat();
  const s = [config.strides ?? 1].flat();
  const taps = (k[0] ?? 1) * (k[1] ?? k[0] ?? 1);
  if (taps <= 1 || s.some((v) => v !== 1)) return 0;
  return 2 * taps * (inputElementsOf(layer) ?? 0) * F32;
}

/** Per-example bytes of a training step through `region` (null when a layer's size is unknown). */
export function tapedBytesPerExample(region: TapedRegion): number | null {
  let bytes = 0;
  let temporary = 0;
  for (const layer of region.layers) {
    const n = outputElements(layer);
    if (n === null) return null;
    const cls = layer.getClassName();
    const factor = cls === 'BatchNormalization' && region.batchNormTraining ? BATCHNORM_TRAINING_FACTOR : (TAPED_FACTOR[cls] ?? DEFAULT_TAPED_FACTOR);
    bytes += n * F32 * (factor + (cls === 'Conv2D' || cls === 'DepthwiseConv2D' ? extraKernels(layer) : 0));
    temporary = Math.max(temporary, convTemporaryBytes(layer));
  }
  return bytes + temporary;
}

/** Per-example bytes of an inference pass through `layers` (null when a layer's size is unknown). */
export function inferenceBytesPerExample(model: tf.LayersModel, layers: readonly tf.layers.Layer[] = model.layers): number | null {
  const input = inputElements(model);
  if (input === null) return null;
  let sum = 0;
  for (const layer of layers) {
    const n = outputElements(layer);
    if (n === null) return null;
    sum += n;
  }
  return (input + INFERENCE_SHARE * sum) * F32;
}

const weightSize = (shape: readonly (number | null)[]) => shape.reduce<number>((a, b) => a * (b ?? 1), 1);

const countParams = (layers: readonly tf.layers.Layer[], trainableOnly: boolean) =>
  layers.reduce((s, l) => s + (trainableOnly ? l.trainableWeights : l.weights).reduce((t, w) => t + weightSize(w.shape), 0), 0);

/** The scratch baseline: a fresh copy of every weight, all trainable, BN on batch statistics, the whole cut under the tape. */
export function estimateBaseline(cut: tf.LayersModel, headParams: number, batchSize: number): PhaseEstimate | null {
  const perExample = tapedBytesPerExample({ layers: cut.layers, batchNormTraining: true });
  const input = inputElements(cut);
  if (perExample === null || input === null) return null;
  const params = countParams(cut.layers, false) + headParams;
  const trainable = cut.layers.reduce((s, l) => s + l.weights.filter((w) => !/moving_(mean|variance)$/.test(w.originalName)).reduce((t, w) => t + weightSize(w.shape), 0), 0) + headParams;
  return { phase: 'baseline', fixedBytes: (params + OPTIMIZER_STATE_FACTOR * trainable) * F32, perExampleBytes: perExample + input * F32, batchSize, trains: true };
}

/**
 * Phase 2: the layers from the lowest unfrozen one up to the cut under the tape (BN in inference
 * mode); the frozen part below runs in inference chunks first, and its outputs (the boundary) are
 * kept for the step.
 */
export function estimateFineTune(cut: tf.LayersModel, unfrozen: readonly tf.layers.Layer[], headParams: number, batchSize: number): PhaseEstimate | null {
  const names = new Set(unfrozen.map((l) => l.name));
  const lowest = cut.layers.findIndex((l) => names.has(l.name));
  if (lowest < 0) return null;
  const region = cut.layers.slice(lowest);
  const taped = tapedBytesPerExample({ layers: region, batchNormTraining: false });
  const frozenPass = inferenceBytesPerExample(cut, cut.layers.slice(0, lowest));
  const input = inputElements(cut);
  const boundary = lowest > 0 ? outputElements(cut.layers[lowest - 1]!) : input;
  if (taped === null || frozenPass === null || input === null || boundary === null) return null;
  const trainable = countParams(unfrozen, false) + headParams;
  // The frozen pass runs first (in chunks of its own), then the step: the larger of the two.
  return { phase: 'fine-tune', fixedBytes: OPTIMIZER_STATE_FACTOR * trainable * F32, perExampleBytes: (input + boundary) * F32 + Math.max(taped, frozenPass), batchSize, trains: true };
}

/** The head phase: the head's state, and per example its input (features) or an augmented batch through the frozen encoder in chunks. */
export function estimateHead(featureDim: number, headParams: number, batchSize: number, encoderPass: { perExampleBytes: number; chunk: number } | null): PhaseEstimate {
  const headExample = (featureDim * 3 + 64) * F32;
  const fixed = OPTIMIZER_STATE_FACTOR * headParams * F32 + (encoderPass ? encoderPass.perExampleBytes * Math.min(encoderPass.chunk, batchSize) : 0);
  return { phase: 'head', fixedBytes: fixed, perExampleBytes: headExample, batchSize, trains: true };
}

/** An inference pass (features, validation, evaluation) through the whole cut, `chunk` examples per call. */
export function estimateInference(phase: 'features' | 'evaluation', cut: tf.LayersModel, chunk: number): PhaseEstimate | null {
  const perExample = inferenceBytesPerExample(cut);
  if (perExample === null) return null;
  return { phase, fixedBytes: 0, perExampleBytes: perExample, batchSize: chunk, trains: false };
}

export interface MemoryBudget {
  /** Bytes a phase may add to what is in use now. */
  bytes: number;
  /** How it was derived, for messages: "wasm heap cap 4096 MiB − 12 MiB in use". */
  source: string;
}

const MiB = 2 ** 20;
/** Bytes for messages: MiB, or KiB below one MiB. */
export const mib = (bytes: number) => (Math.abs(bytes) >= MiB ? `${Math.round(bytes / MiB)} MiB` : `${Math.ceil(bytes / 1024)} KiB`);

/** Sizes as the environment writes them: bytes, or with a k/m/g (binary) suffix. */
export function parseBytes(value: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(value);
  if (!m) return null;
  const scale = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * scale);
}

const require = createRequire(import.meta.url);
/** wasm32's own limit: 65,535 pages of 64 KiB (what emscripten builds allow when growth is on). */
const WASM32_HEAP_MAX = 4294901760;
let wasmCap: number | null = null;

/**
 * The largest heap the installed tfjs-backend-wasm can grow to: its emscripten glue's
 * `getHeapMax()` (4,294,901,760 bytes in 4.22; measured: allocations fail with "memory access out of
 * bounds" once the heap reaches 4096 MiB), or wasm32's limit if the glue cannot be read.
 */
export function wasmHeapCap(): number {
  if (wasmCap !== null) return wasmCap;
  wasmCap = WASM32_HEAP_MAX;
  try {
    const glue = readFileSync(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.node.js'), 'utf8');
    const m = /getHeapMax\(\)\s*\{\s*return\s+(\d+)\s*;?\s*\}/.exec(glue);
    if (m) wasmCap = Math.min(Number(m[1]), WASM32_HEAP_MAX);
  } catch {
    // keep wasm32's limit
  }
  return wasmCap;
}

/** MemAvailable of /proc/meminfo (what can be allocated without swapping), else os.freemem(). */
function availableMemory(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return os.freemem();
}

/** A cgroup v2 memory limit minus its current use, when the process runs under one. */
function cgroupHeadroom(): number | null {
  try {
    const max = readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    if (max === 'max') return null;
    const current = Number(readFileSync('/sys/fs/cgroup/memory.current', 'utf8').trim());
    return Number(max) - current;
  } catch {
    return null;
  }
}

/** Share of free memory a job may plan to use on the cpu and tfjs-node backends. */
const DEFAULT_FRACTION = 0.7;
/** Room left on the wasm heap for fragmentation and tfjs' own buffers. */
const WASM_RESERVE = 0.05;

/**
 * What a phase may add now: on wasm, the heap cap (less a reserve) minus the bytes tfjs holds; on
 * cpu and tfjs-node (memory outside any heap cap), GRAFT_MEMORY_FRACTION (default 0.7) of the
 * available memory (or of the cgroup's headroom when smaller). TRAINER_MEMORY_LIMIT (bytes, or
 * 512m, 2g, …) caps the process's tensors on any backend.
 */
export function memoryBudget(backend: BackendChoice, env: NodeJS.ProcessEnv = process.env): MemoryBudget {
  const inUse = tf.memory().numBytes;
  let bytes: number;
  let source: string;
  if (backend === 'wasm') {
    const cap = wasmHeapCap();
    bytes = cap * (1 - WASM_RESERVE) - inUse;
    source = `the wasm heap's cap of ${mib(cap)} (less ${WASM_RESERVE * 100} % reserve) minus ${mib(inUse)} in use`;
  } else {
    const fraction = Number(env.GRAFT_MEMORY_FRACTION ?? DEFAULT_FRACTION);
    const share = Number.isFinite(fraction) && fraction > 0 && fraction <= 1 ? fraction : DEFAULT_FRACTION;
    const cgroup = cgroupHeadroom();
    const free = cgroup !== null ? Math.min(cgroup, availableMemory()) : availableMemory();
    bytes = share * free;
    source = `${Math.round(share * 100)} % of ${mib(free)} available${cgroup !== null ? ' (cgroup headroom included)' : ''}`;
  }
  const limit = env.TRAINER_MEMORY_LIMIT ? parseBytes(env.TRAINER_MEMORY_LIMIT) : null;
  if (limit !== null && limit - inUse < bytes) {
    bytes = limit - inUse;
    source = `TRAINER_MEMORY_LIMIT of ${mib(limit)} minus ${mib(inUse)} in use`;
  }
  return { bytes: Math.max(0, bytes), source };
}

export interface PhaseFit {
  estimate: PhaseEstimate;
  /** Examples per optimizer micro-step (or inference call) that fit; ≤ the batch size. */
  microBatch: number;
}

/**
 * The largest micro-batch of `e` that fits `budget`. Throws TrainingError `insufficient_memory`
 * (with the estimate and the budget) when even one example does not fit.
 */
export function fitPhase(e: PhaseEstimate, budget: MemoryBudget): PhaseFit {
  const room = budget.bytes - e.fixedBytes;
  const fits = e.perExampleBytes > 0 ? Math.floor(room / e.perExampleBytes) : room >= 0 ? e.batchSize : 0;
  if (fits < 1) {
    throw new TrainingError(
      'insufficient_memory',
      `The ${e.phase} phase needs an estimated ${mib(peakBytes(e, 1))} for a single example (${mib(e.fixedBytes)} of weights, gradients and optimizer state + ${mib(e.perExampleBytes)} per example), ` +
        `more than the ${mib(budget.bytes)} available (${budget.source}). ` +
        (e.trains ? 'Unfreeze fewer layers, drop the scratch baseline, or run on a worker with more memory (the cpu and tfjs-node backends are not bound by the wasm heap).' : 'Run on a worker with more memory.'),
    );
  }
  // Inference runs the encoder's own chunk size: it must fit whole (only training steps are split).
  if (!e.trains && fits < e.batchSize) {
    throw new TrainingError(
      'insufficient_memory',
      `The ${e.phase} pass runs ${e.batchSize} examples per call and needs an estimated ${mib(peakBytes(e))}, more than the ${mib(budget.bytes)} available (${budget.source}). Run on a worker with more memory.`,
    );
  }
  return { estimate: e, microBatch: Math.min(e.batchSize, fits) };
}

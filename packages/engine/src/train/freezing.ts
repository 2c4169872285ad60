/**
 * Where a tfjs layers encoder is cut and which of its layers phase 2 unfreezes (the Keras
 * transfer-learning guide's recipe: `base_model.layers[fine_tune_at:]` trainable, the rest frozen),
 * whether the backend can compute their gradients, and phase 2's forward pass split at the lowest
 * unfrozen layer. Any tfjs layers model: an image CNN, a text transformer with several inputs.
 */
import * as tf from '@tensorflow/tfjs';
import type { TrainableLayers } from '@graft/contracts';
import { HEAD_LAYER_PREFIX } from '../bases/open-base.ts';
import { TrainingError } from '../errors.ts';
import { batchSizeOf, sliceBatch, type ModelInput } from './model-input.ts';

/** Layers a base can be cut at: single-output, not the input, not a previous graft head's. */
export function cuttableLayers(model: tf.LayersModel): string[] {
  return model.layers
    .filter((l) => l.getClassName() !== 'InputLayer' && !l.name.startsWith(HEAD_LAYER_PREFIX))
    .filter((l) => {
      try {
        return !Array.isArray(l.output);
      } catch {
        return false; // a layer used several times has no single output
      }
    })
    .map((l) => l.name);
}

/**
 * The base from its input up to `cutLayer`, every layer frozen. Shares the base's weights.
 * Throws TrainingError `invalid_cut_layer`, naming the valid layers, when the layer is not one.
 */
export function cutBase(model: tf.LayersModel, cutLayer: string): tf.LayersModel {
  const valid = cuttableLayers(model);
  if (!valid.includes(cutLayer)) {
    const shown = valid.length > 300 ? [...valid.slice(0, 300), `… (${valid.length - 300} more)`] : valid;
    throw new TrainingError('invalid_cut_layer', `The base has no layer "${cutLayer}" to cut at. Valid layers, input to output: ${shown.join(', ')}.`);
  }
  const output = model.getLayer(cutLayer).output as tf.SymbolicTensor;
  const cut = tf.model({ inputs: model.inputs, outputs: output, name: `${model.name}_cut` });
  for (const layer of cut.layers) layer.trainable = false;
  return cut;
}

export interface TrainableSelection {
  /** Every layer phase 2 unfreezes, in the cut model's (topological) order. */
  layers: tf.layers.Layer[];
  /** The names of those that have weights. */
  names: string[];
  /** How `k` was clamped (k larger than the layers with weights), for an event. */
  clampedFrom: number | null;
}

const hasWeights = (l: tf.layers.Layer) => l.weights.length > 0;

/**
 * 'none' → nothing; k → the top k layers that have weights (below and including the cut layer);
 * { from } → that layer and every layer after it up to the cut (TrainingError `invalid_layer` when
 * the cut model has no such layer).
 */
export function selectTrainableLayers(cut: tf.LayersModel, spec: TrainableLayers): TrainableSelection {
  const layers = cut.layers.filter((l) => l.getClassName() !== 'InputLayer');
  if (spec === 'none') return { layers: [], names: [], clampedFrom: null };
  if (typeof spec === 'number') {
    const weighted = layers.filter(hasWeights);
    const chosen = weighted.slice(Math.max(0, weighted.length - spec));
    return { layers: chosen, names: chosen.map((l) => l.name), clampedFrom: spec > weighted.length ? spec : null };
  }
  const at = layers.findIndex((l) => l.name === spec.from);
  if (at < 0) {
    throw new TrainingError(
      'invalid_layer',
      `trainableLayers.from names "${spec.from}", which is not a layer of the base below the cut (${cut.outputs[0]!.sourceLayer.name}). Layers with weights: ${layers.filter(hasWeights).map((l) => l.name).join(', ') || 'none'}.`,
    );
  }
  const chosen = layers.slice(at);
  return { layers: chosen, names: chosen.filter(hasWeights).map((l) => l.name), clampedFrom: null };
}

/** The variables (trainable weights) of some layers, after making them trainable. */
export function unfreeze(layers: readonly tf.layers.Layer[]): tf.Variable[] {
  for (const l of layers) l.trainable = true;
  return layers.flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
}

/** Gradient kernels a layer class needs: [for its own weights, to pass the gradient to its input]. */
const GRAD_KERNELS: Record<string, [string[], string[]]> = {
  Conv2D: [['Conv2DBackpropFilter'], ['Conv2DBackpropInput']],
  DepthwiseConv2D: [['DepthwiseConv2dNativeBackpropFilter'], ['DepthwiseConv2dNativeBackpropInput']],
  SeparableConv2D: [['DepthwiseConv2dNativeBackpropFilter', 'Conv2DBackpropFilter'], ['DepthwiseConv2dNativeBackpropInput', 'Conv2DBackpropInput']],
  Conv2DTranspose: [['Conv2DBackpropFilter'], ['Conv2D']],
};

/**
 * Kernels the active backend lacks for training `trainable` (layers of `model`, in order): the
 * weight-gradient kernels of each trainable layer and the input-gradient kernels of every layer
 * above the lowest trainable one (the gradient passes through them on its way down).
 */
export function missingGradientKernels(model: tf.LayersModel, trainable: readonly tf.layers.Layer[]): { kernel: string; layer: string }[] {
  if (trainable.length === 0) return [];
  const backend = tf.getBackend();
  const layers = model.layers;
  const chosen = new Set(trainable.map((l) => l.name));
  const lowest = layers.findIndex((l) => chosen.has(l.name));
  const missing: { kernel: string; layer: string }[] = [];
  const seen = new Set<string>();
  layers.forEach((l, i) => {
    if (i < lowest) return;
    const needs = GRAD_KERNELS[l.getClassName()];
    if (!needs) return;
    const kernels = [...(chosen.has(l.name) ? needs[0] : []), ...(i > lowest ? needs[1] : [])];
    for (const k of kernels) {
      if (!seen.has(k) && !tf.getKernel(k, backend)) {
        seen.add(k);
        missing.push({ kernel: k, layer: l.name });
      }
    }
  });
  return missing;
}

/**
 * Throws `unsupported_on_backend` when the backend lacks a kernel `what` (phase 2, the scratch
 * baseline) needs: before any expensive work, not hours into training.
 */
export function assertGradientKernels(model: tf.LayersModel, trainable: readonly tf.layers.Layer[], what: string): void {
  const missing = missingGradientKernels(model, trainable);
  if (!missing.length) return;
  throw new TrainingError(
    'unsupported_on_backend',
    `The ${tf.getBackend()} backend lacks ${missing.map((m) => `${m.kernel} (needed by layer ${m.layer})`).join(', ')}, so ${what} cannot train these layers here. ` +
      'Use trainableLayers "none" (feature extraction), unfreeze fewer layers, or run on a backend that has the kernel (GRAFT_TF_BACKEND=node or cpu).',
  );
}

/** An error from tfjs about a missing kernel or gradient, as `unsupported_on_backend`; else null. */
export function asUnsupportedOnBackend(err: unknown): TrainingError | null {
  const msg = err instanceof Error ? err.message : String(err);
  const m = /Kernel '(\w+)' not registered for backend '(\w+)'|gradient function not found for (\w+)/.exec(msg);
  if (!m) return null;
  const kernel = m[1] ?? m[3];
  return new TrainingError(
    'unsupported_on_backend',
    `Training these layers needs the TensorFlow.js kernel ${kernel}, which the ${tf.getBackend()} backend does not have. Use trainableLayers "none" (feature extraction) or a backend that has it (GRAFT_TF_BACKEND=node or cpu).`,
  );
}

/**
 * Phase 2's forward pass in two parts, so the gradient tape records only the unfrozen top of the
 * base: `frozen` runs the layers below the lowest unfrozen one (inference mode, outside the tape)
 * up to the tensors that feed the unfrozen region; `trainable` runs the region from those tensors
 * to the cut output (inference mode too: BatchNormalization keeps its moving statistics). Without
 * the split, tfjs keeps every activation of the whole base for the backward pass (about 1 GB for
 * MobileNetV2 at 224x224, batch 32).
 */
export interface SplitForward {
  /** The symbolic tensors at the boundary (the region's inputs from below; model inputs among them). */
  boundary: tf.SymbolicTensor[];
  /** `chunk`: examples per inference call (activation memory is per call; the boundary tensors are small). */
  frozen(x: ModelInput, chunk?: number): tf.Tensor[];
  trainable(boundaryValues: readonly tf.Tensor[]): tf.Tensor;
}

export function splitForward(cut: tf.LayersModel, trainable: readonly tf.layers.Layer[]): SplitForward {
  const layers = cut.layers;
  const chosen = new Set(trainable.map((l) => l.name));
  const lowest = layers.findIndex((l) => chosen.has(l.name));
  const region = new Set(lowest < 0 ? [] : layers.slice(lowest).map((l) => l.name));
  const boundary: tf.SymbolicTensor[] = [];
  const seen = new Set<number>();
  for (const layer of layers) {
    if (!region.has(layer.name)) continue;
    for (const node of layer.inboundNodes) {
      for (const input of node.inputTensors) {
        if (!region.has(input.sourceLayer.name) && !seen.has(input.id)) {
          seen.add(input.id);
          boundary.push(input);
        }
      }
    }
  }
  const output = cut.outputs[0]!;
  const inputAt = new Map(cut.inputs.map((t, i) => [t.id, i]));
  // Boundary tensors the frozen part computes (the others are model inputs, taken as they are).
  const computed = boundary.filter((b) => !inputAt.has(b.id));
  const listOf = (x: ModelInput) => (Array.isArray(x) ? x : [x]);
  const runFrozen = (x: ModelInput): tf.Tensor[] => {
    let out: tf.Tensor | tf.Tensor[];
    try {
      // tfjs' own executor frees each activation once nothing below needs it (inference mode).
      out = cut.execute(x, computed.map((b) => b.name));
    } catch {
      // A layer applied several times (shared weights) has no single output tfjs can fetch by name.
      const xs = listOf(x);
      const values = new Map<number, tf.Tensor>(cut.inputs.map((t, i) => [t.id, xs[i]!]));
      out = computed.map((b) => evaluateSymbolic(b, values));
    }
    const values = Array.isArray(out) ? out : [out];
    let k = 0;
    // Copies of inputs, so callers may dispose every boundary value without touching `x`.
    return boundary.map((b) => (inputAt.has(b.id) ? listOf(x)[inputAt.get(b.id)!]!.clone() : values[k++]!));
  };
  return {
    boundary,
    frozen: (x, chunk = Infinity) =>
      tf.tidy(() => {
        if (computed.length === 0) return boundary.map((b) => listOf(x)[inputAt.get(b.id)!]!.clone());
        const n = batchSizeOf(x);
        if (n <= chunk) return runFrozen(x);
        const parts: tf.Tensor[][] = [];
        // Each chunk in its own scope: tfjs keeps a call's activations until its scope ends.
        for (let start = 0; start < n; start += chunk) parts.push(tf.tidy(() => runFrozen(sliceBatch(x, start, Math.min(chunk, n - start)))));
        return boundary.map((_, i) => tf.concat(parts.map((p) => p[i]!)));
      }),
    trainable: (boundaryValues) => {
      const values = new Map<number, tf.Tensor>(boundary.map((b, i) => [b.id, boundaryValues[i]!]));
      return evaluateSymbolic(output, values);
    },
  };
}

/** The value of a symbolic tensor of a layers graph, given values of some tensors below it (inference mode). */
function evaluateSymbolic(sym: tf.SymbolicTensor, values: Map<number, tf.Tensor>): tf.Tensor {
  const known = values.get(sym.id);
  if (known) return known;
  if (sym.inputs.length === 0) throw new Error(`no value for ${sym.name} (an input of the graph)`);
  const inputs = sym.inputs.map((i) => evaluateSymbolic(i, values));
  const out = sym.sourceLayer.apply(inputs.length === 1 ? inputs[0]! : inputs, { ...(sym.callArgs ?? {}), training: false }) as tf.Tensor | tf.Tensor[];
  const value = Array.isArray(out) ? out[sym.outputTensorIndex ?? 0]! : out;
  values.set(sym.id, value);
  return value;
}

/**
 * One converter per tfjs layer class: the layer's config and weights → ONNX nodes, with the exact
 * semantics tfjs-layers 4.22 gives the layer in inference mode. Layout: tfjs is NHWC; ONNX's Conv and
 * pools are NCHW. Rank-4 values carry their layout (`nchw` or `native` = tfjs' own), and each
 * converter asks for the one it needs; the context transposes on demand and remembers the result, so
 * a chain of convs stays NCHW and only Flatten/Reshape/Dense on a map (and the graph's ends) pay a
 * transpose.
 */
import type * as tf from '@tensorflow/tfjs';
import type { AttrValue, OnnxGraph } from './graph.ts';
import { windowPads } from './padding.ts';

export interface Value {
  name: string;
  /** `nchw` only for rank 4; everything else is `native` (tfjs' axis order). */
  layout: 'nchw' | 'native';
  /** tfjs' (native) shape, batch first (null when unknown). */
  shape: (number | null)[];
}

export interface ConvertContext {
  g: OnnxGraph;
  nchw(v: Value): Value;
  native(v: Value): Value;
  /** Adds the multiply-adds × 2 of one image through a layer (null when a size is unknown). */
  countFlops(flops: number | null): void;
}

export type LayerConverter = (ctx: ConvertContext, layer: tf.layers.Layer, inputs: Value[], outShape: (number | null)[]) => Value;

export class UnsupportedLayerError extends Error {
  constructor(readonly layer: string, readonly className: string, reason: string) {
    super(`layer "${layer}" (${className}): ${reason}`);
    this.name = 'UnsupportedLayerError';
  }
}

type Config = Record<string, unknown>;
const cfg = (layer: tf.layers.Layer) => layer.getConfig() as Config;
const unsupported = (layer: tf.layers.Layer, reason: string) => new UnsupportedLayerError(layer.name, layer.getClassName(), reason);

const pair = (v: unknown, fallback: number): [number, number] => {
  if (v == null) return [fallback, fallback];
  if (typeof v === 'number') return [v, v];
  const a = v as number[];
  return [a[0] ?? fallback, a[1] ?? a[0] ?? fallback];
};

/** A layer's weights by their short name (`kernel`, `bias`, `gamma`, `moving_mean`, …), as float32 copies. */
function weights(layer: tf.layers.Layer): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const w of layer.weights) {
    const short = w.originalName.split('/').at(-1)!;
    const t = w.read();
    out.set(short, { shape: t.shape, data: Float32Array.from(t.dataSync() as Float32Array) });
  }
  return out;
}

function need<T>(map: Map<string, T>, key: string, layer: tf.layers.Layer): T {
  const v = map.get(key);
  if (!v) throw unsupported(layer, `has no "${key}" weight (weights: ${[...map.keys()].join(', ') || 'none'})`);
  return v;
}

/** Row-major transpose of `data` with `shape` by `perm` (numpy's transpose); rank ≤ 4. */
export function transposeArray(data: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const rank = shape.length;
  if (rank > 4 || perm.length !== rank) throw new Error(`transpose: rank ${rank}, perm [${perm}]`);
  // Pad to rank 4 with leading 1s so one loop nest serves every rank.
  const s = [...new Array<number>(4 - rank).fill(1), ...shape];
  const p = [...[0, 1, 2, 3].slice(0, 4 - rank), ...perm.map((a) => a + 4 - rank)];
  const strides = [s[1]! * s[2]! * s[3]!, s[2]! * s[3]!, s[3]!, 1];
  const [n0, n1, n2, n3] = p.map((a) => s[a]!) as [number, number, number, number];
  const [t0, t1, t2, t3] = p.map((a) => strides[a]!) as [number, number, number, number];
  const out = new Float32Array(data.length);
  let o = 0;
  for (let a = 0; a < n0; a++) {
    for (let b = 0; b < n1; b++) {
      for (let c = 0; c < n2; c++) {
        const base = a * t0 + b * t1 + c * t2;
        for (let d = 0; d < n3; d++) out[o++] = data[base + d * t3]!;
      }
    }
  }
  return out;
}

function checkChannelsLast(layer: tf.layers.Layer): void {
  const format = cfg(layer).dataFormat;
  if (format != null && format !== 'channelsLast') throw unsupported(layer, `data format ${String(format)} (only channelsLast)`);
}

function checkPadding(layer: tf.layers.Layer): string {
  const p = String(cfg(layer).padding);
  if (p !== 'same' && p !== 'valid') throw unsupported(layer, `padding "${p}"`);
  return p;
}

const padAttrs = (p: { pads: number[] } | { autoPad: 'SAME_UPPER' }): Record<string, AttrValue> =>
  'pads' in p ? { pads: { ints: p.pads } } : { auto_pad: { string: p.autoPad } };

/** Maps a tfjs axis of a rank-r value to its ONNX axis in that value's layout. */
function axisIn(v: Value, axis: number): number {
  const rank = v.shape.length;
  const a = axis < 0 ? axis + rank : axis;
  return v.layout === 'nchw' ? [0, 2, 3, 1][a]! : a;
}

// ---- activations ------------------------------------------------------------------------------

/**
 * A tfjs activation (by its class name, as `layer.activation.getClassName()` or an Activation
 * layer's config gives it) on `v`, with tfjs' own formula. Softmax-like ones act on the last tfjs axis.
 */
export function activation(ctx: ConvertContext, v: Value, name: string, hint: string, owner: tf.layers.Layer): Value {
  const { g } = ctx;
  const same = (out: string): Value => ({ ...v, name: out });
  switch (name) {
    case 'linear':
      return v;
    case 'relu':
      return same(g.add('Relu', [v.name], {}, hint));
    case 'relu6':
      return same(g.add('Clip', [v.name, g.scalar(`${hint}/min`, 0), g.scalar(`${hint}/max`, 6)], {}, hint));
    case 'elu':
      return same(g.add('Elu', [v.name], { alpha: { float: 1 } }, hint));
    case 'selu':
      // tfjs' selu uses the same constants as ONNX's defaults.
      return same(g.add('Selu', [v.name], { alpha: { float: 1.6732632423543772 }, gamma: { float: 1.0507009873554805 } }, hint));
    case 'sigmoid':
      return same(g.add('Sigmoid', [v.name], {}, hint));
    case 'hardSigmoid':
      // tfjs: clip(0.2 x + 0.5, 0, 1)
      return same(g.add('HardSigmoid', [v.name], { alpha: { float: 0.2 }, beta: { float: 0.5 } }, hint));
    case 'tanh':
      return same(g.add('Tanh', [v.name], {}, hint));
    case 'softplus':
      return same(g.add('Softplus', [v.name], {}, hint));
    case 'softsign':
      return same(g.add('Softsign', [v.name], {}, hint));
    case 'swish':
      return same(g.add('Mul', [v.name, g.add('Sigmoid', [v.name], {}, `${hint}/sigmoid`)], {}, hint));
    case 'mish':
      return same(g.add('Mul', [v.name, g.add('Tanh', [g.add('Softplus', [v.name], {}, `${hint}/softplus`)], {}, `${hint}/tanh`)], {}, hint));
    case 'gelu': {
      // tfjs: 0.5 x (1 + erf(x / sqrt(2)))
      const erf = g.add('Erf', [g.add('Div', [v.name, g.scalar(`${hint}/sqrt2`, Math.SQRT2)], {}, `${hint}/scaled`)], {}, `${hint}/erf`);
      const cdf = g.add('Mul', [g.add('Add', [erf, g.scalar(`${hint}/one`, 1)], {}, `${hint}/plus1`), g.scalar(`${hint}/half`, 0.5)], {}, `${hint}/cdf`);
      return same(g.add('Mul', [v.name, cdf], {}, hint));
    }
    case 'softmax':
      return same(g.add('Softmax', [v.name], { axis: { int: axisIn(v, -1) } }, hint));
    case 'logSoftmax':
      return same(g.add('LogSoftmax', [v.name], { axis: { int: axisIn(v, -1) } }, hint));
    default:
      throw unsupported(owner, `activation "${name}"`);
  }
}

function activationOf(layer: tf.layers.Layer): string {
  const a = (layer as unknown as { activation?: { getClassName(): string } }).activation;
  return a ? a.getClassName() : 'linear';
}

// ---- convolutions -----------------------------------------------------------------------------

interface ConvGeometry { kernel: [number, number]; strides: [number, number]; dilation: [number, number]; padding: string }

function geometry(layer: tf.layers.Layer): ConvGeometry {
  const c = cfg(layer);
  return { kernel: pair(c.kernelSize, 1), strides: pair(c.strides, 1), dilation: pair(c.dilationRate, 1), padding: checkPadding(layer) };
}

function convNode(ctx: ConvertContext, x: Value, w: string, b: string | null, geo: ConvGeometry, group: number, hint: string): string {
  const pads = windowPads(geo.padding, x.shape.slice(1, 3), geo.kernel, geo.strides, geo.dilation);
  return ctx.g.add('Conv', b ? [x.name, w, b] : [x.name, w], {
    kernel_shape: { ints: geo.kernel },
    strides: { ints: geo.strides },
    dilations: { ints: geo.dilation },
    group: { int: group },
    ...padAttrs(pads),
  }, hint);
}

const spatial = (shape: (number | null)[]) => (shape[1] == null || shape[2] == null ? null : shape[1] * shape[2]);

const conv2d: LayerConverter = (ctx, layer, [input], outShape) => {
  checkChannelsLast(layer);
  const x = ctx.nchw(input!);
  const geo = geometry(layer);
  const ws = weights(layer);
  const k = need(ws, 'kernel', layer); // [kh, kw, in, out]
  const [kh, kw, cin, cout] = k.shape as [number, number, number, number];
  const w = ctx.g.floats(`${layer.name}/kernel`, [cout, cin, kh, kw], transposeArray(k.data, k.shape, [3, 2, 0, 1]));
  const bias = ws.get('bias');
  const b = bias ? ctx.g.floats(`${layer.name}/bias`, [cout], bias.data) : null;
  const pixels = spatial(outShape);
  ctx.countFlops(pixels == null ? null : 2 * pixels * cout * kh * kw * cin);
  const y: Value = { name: convNode(ctx, x, w, b, geo, 1, layer.name), layout: 'nchw', shape: outShape };
  return activation(ctx, y, activationOf(layer), `${layer.name}/act`, layer);
};

/** tfjs depthwise kernel [kh, kw, C, M] → ONNX [C·M, 1, kh, kw] (output channel c·M + m, as TF orders them). */
function depthwiseWeights(ctx: ConvertContext, layer: tf.layers.Layer, k: { shape: number[]; data: Float32Array }): { name: string; channels: number; multiplier: number; kh: number; kw: number } {
  const [kh, kw, c, m] = k.shape as [number, number, number, number];
  const data = transposeArray(k.data, [kh, kw, c * m], [2, 0, 1]);
  return { name: ctx.g.floats(`${layer.name}/depthwise_kernel`, [c * m, 1, kh, kw], data), channels: c, multiplier: m, kh, kw };
}

const depthwiseConv2d: LayerConverter = (ctx, layer, [input], outShape) => {
  checkChannelsLast(layer);
  const x = ctx.nchw(input!);
  const geo = geometry(layer);
  const ws = weights(layer);
  const dw = depthwiseWeights(ctx, layer, need(ws, 'depthwise_kernel', layer));
  const bias = ws.get('bias');
  const b = bias ? ctx.g.floats(`${layer.name}/bias`, [dw.channels * dw.multiplier], bias.data) : null;
  const pixels = spatial(outShape);
  ctx.countFlops(pixels == null ? null : 2 * pixels * dw.channels * dw.multiplier * dw.kh * dw.kw);
  const y: Value = { name: convNode(ctx, x, dw.name, b, geo, dw.channels, layer.name), layout: 'nchw', shape: outShape };
  return activation(ctx, y, activationOf(layer), `${layer.name}/act`, layer);
};

const separableConv2d: LayerConverter = (ctx, layer, [input], outShape) => {
  checkChannelsLast(layer);
  const x = ctx.nchw(input!);
  const geo = geometry(layer);
  const ws = weights(layer);
  const dw = depthwiseWeights(ctx, layer, need(ws, 'depthwise_kernel', layer));
  const pk = need(ws, 'pointwise_kernel', layer); // [1, 1, C·M, F]
  const filters = pk.shape[3]!;
  const pw = ctx.g.floats(`${layer.name}/pointwise_kernel`, [filters, dw.channels * dw.multiplier, 1, 1], transposeArray(pk.data, pk.shape, [3, 2, 0, 1]));
  const bias = ws.get('bias');
  const b = bias ? ctx.g.floats(`${layer.name}/bias`, [filters], bias.data) : null;
  const mid = convNode(ctx, x, dw.name, null, geo, dw.channels, `${layer.name}/depthwise`);
  const pixels = spatial(outShape);
  ctx.countFlops(pixels == null ? null : 2 * pixels * dw.channels * dw.multiplier * (dw.kh * dw.kw + filters));
  const y = ctx.g.add('Conv', b ? [mid, pw, b] : [mid, pw], { kernel_shape: { ints: [1, 1] }, strides: { ints: [1, 1] }, pads: { ints: [0, 0, 0, 0] } }, layer.name);
  return activation(ctx, { name: y, layout: 'nchw', shape: outShape }, activationOf(layer), `${layer.name}/act`, layer);
};

// ---- normalisation, dense, shapes ------------------------------------------------------------

/**
 * Inference-mode batch normalisation: (x − mean) · gamma / sqrt(var + eps) + beta on the channel
 * axis. Emitted as ONNX BatchNormalization; `foldBatchNorm` later merges it into a Conv that
 * feeds only it.
 */
const batchNormalization: LayerConverter = (ctx, layer, [input]) => {
  const c = cfg(layer);
  const rank = input!.shape.length;
  const axis = Number(c.axis ?? -1);
  if (axis !== -1 && axis !== rank - 1) throw unsupported(layer, `axis ${axis} (only the channel axis, the last)`);
  if (rank !== 2 && rank !== 4) throw unsupported(layer, `rank ${rank} input (2 or 4)`);
  const x = rank === 4 ? ctx.nchw(input!) : input!;
  const ws = weights(layer);
  const mean = need(ws, 'moving_mean', layer);
  const variance = need(ws, 'moving_variance', layer);
  const n = mean.data.length;
  const gamma = ws.get('gamma')?.data ?? new Float32Array(n).fill(1);
  const beta = ws.get('beta')?.data ?? new Float32Array(n);
  const eps = Number(c.epsilon ?? 1e-3);
  const y = ctx.g.add('BatchNormalization', [
    x.name,
    ctx.g.floats(`${layer.name}/gamma`, [n], gamma),
    ctx.g.floats(`${layer.name}/beta`, [n], beta),
    ctx.g.floats(`${layer.name}/moving_mean`, [n], mean.data),
    ctx.g.floats(`${layer.name}/moving_variance`, [n], variance.data),
  ], { epsilon: { float: eps } }, layer.name);
  return { ...x, name: y };
};

const dense: LayerConverter = (ctx, layer, [input], outShape) => {
  const x = ctx.native(input!);
  const ws = weights(layer);
  const k = need(ws, 'kernel', layer); // [in, out]
  const [cin, cout] = k.shape as [number, number];
  const bias = ws.get('bias');
  const kernel = ctx.g.floats(`${layer.name}/kernel`, [cin, cout], k.data);
  let y: string;
  if (x.shape.length === 2) {
    y = ctx.g.add('Gemm', bias ? [x.name, kernel, ctx.g.floats(`${layer.name}/bias`, [cout], bias.data)] : [x.name, kernel], {}, layer.name);
  } else {
    y = ctx.g.add('MatMul', [x.name, kernel], {}, layer.name);
    if (bias) y = ctx.g.add('Add', [y, ctx.g.floats(`${layer.name}/bias`, [cout], bias.data)], {}, `${layer.name}/bias`);
  }
  const positions = x.shape.slice(1, -1).reduce<number | null>((a, d) => (a == null || d == null ? null : a * d), 1);
  ctx.countFlops(positions == null ? null : 2 * positions * cin * cout);
  return activation(ctx, { name: y, layout: 'native', shape: outShape }, activationOf(layer), `${layer.name}/act`, layer);
};

const flatten: LayerConverter = (ctx, layer, [input], outShape) => {
  checkChannelsLast(layer);
  // tfjs flattens in NHWC order: go back to it first.
  const x = ctx.native(input!);
  return { name: ctx.g.add('Flatten', [x.name], { axis: { int: 1 } }, layer.name), layout: 'native', shape: outShape };
};

const reshape: LayerConverter = (ctx, layer, [input], outShape) => {
  const x = ctx.native(input!);
  const target = (cfg(layer).targetShape as number[]).map((d) => (d == null ? -1 : d));
  // 0 copies the batch dimension from the input.
  return { name: ctx.g.add('Reshape', [x.name, ctx.g.int64s(`${layer.name}/shape`, [0, ...target])], {}, layer.name), layout: 'native', shape: outShape };
};

const zeroPadding2d: LayerConverter = (ctx, layer, [input], outShape) => {
  checkChannelsLast(layer);
  const x = ctx.nchw(input!);
  const p = cfg(layer).padding as number | [number, number] | [[number, number], [number, number]];
  const [[t, b], [l, r]] = typeof p === 'number' ? [[p, p], [p, p]] : Array.isArray(p[0]) ? (p as [[number, number], [number, number]]) : [[p[0] as number, p[0] as number], [p[1] as number, p[1] as number]];
  const pads = ctx.g.int64s(`${layer.name}/pads`, [0, 0, t, l, 0, 0, b, r]);
  return { name: ctx.g.add('Pad', [x.name, pads], { mode: { string: 'constant' } }, layer.name), layout: 'nchw', shape: outShape };
};

const identity: LayerConverter = (_ctx, _layer, [input]) => input!;

// ---- pooling -------------------------------------------------------------------------------------

const pooling = (op: 'MaxPool' | 'AveragePool'): LayerConverter => (ctx, layer, [input], outShape) => {
  checkChannelsLast(layer);
  const x = ctx.nchw(input!);
  const c = cfg(layer);
  const kernel = pair(c.poolSize, 2);
  const strides = c.strides == null ? kernel : pair(c.strides, kernel[0]);
  const pads = windowPads(checkPadding(layer), x.shape.slice(1, 3), kernel, strides);
  // count_include_pad 0: TF averages over the window's pixels inside the image only.
  const extra: Record<string, AttrValue> = op === 'AveragePool' ? { count_include_pad: { int: 0 } } : {};
  return { name: ctx.g.add(op, [x.name], { kernel_shape: { ints: kernel }, strides: { ints: strides }, ...padAttrs(pads), ...extra }, layer.name), layout: 'nchw', shape: outShape };
};

const globalPooling = (op: 'GlobalAveragePool' | 'GlobalMaxPool'): LayerConverter => (ctx, layer, [input], outShape) => {
  checkChannelsLast(layer);
  if (cfg(layer).keepDims) throw unsupported(layer, 'keepDims');
  const x = ctx.nchw(input!);
  const pooled = ctx.g.add(op, [x.name], {}, `${layer.name}/pool`);
  return { name: ctx.g.add('Flatten', [pooled], { axis: { int: 1 } }, layer.name), layout: 'native', shape: outShape };
};

// ---- merges --------------------------------------------------------------------------------------

/** Inputs in one layout: NCHW if any rank-4 input already is (the common case), else tfjs' own. */
function unify(ctx: ConvertContext, inputs: Value[]): Value[] {
  const rank = inputs[0]!.shape.length;
  if (inputs.some((v) => v.shape.length !== rank)) return inputs.map((v) => ctx.native(v));
  return inputs.some((v) => v.layout === 'nchw') ? inputs.map((v) => ctx.nchw(v)) : inputs;
}

const merge = (op: 'Sum' | 'Mul' | 'Mean' | 'Max' | 'Min'): LayerConverter => (ctx, layer, inputs, outShape) => {
  const xs = unify(ctx, inputs);
  if (xs.some((v) => v.shape.length !== outShape.length)) throw unsupported(layer, 'inputs of different ranks');
  let name: string;
  if (op === 'Mul') {
    name = xs[0]!.name;
    for (let i = 1; i < xs.length; i++) name = ctx.g.add('Mul', [name, xs[i]!.name], {}, i === xs.length - 1 ? layer.name : `${layer.name}/${i}`);
  } else {
    name = ctx.g.add(op, xs.map((v) => v.name), {}, layer.name);
  }
  return { name, layout: xs[0]!.layout, shape: outShape };
};

const concatenate: LayerConverter = (ctx, layer, inputs, outShape) => {
  const xs = unify(ctx, inputs);
  const axis = Number(cfg(layer).axis ?? -1);
  return { name: ctx.g.add('Concat', xs.map((v) => v.name), { axis: { int: axisIn(xs[0]!, axis) } }, layer.name), layout: xs[0]!.layout, shape: outShape };
};

// ---- activation layers ---------------------------------------------------------------------------

const activationLayer: LayerConverter = (ctx, layer, [input]) => activation(ctx, input!, String(cfg(layer).activation), layer.name, layer);

const relu: LayerConverter = (ctx, layer, [input]) => {
  // tfjs' ReLU layer: relu, then clip to maxValue (it ignores Keras' negative_slope and threshold).
  const max = cfg(layer).maxValue as number | null | undefined;
  if (max == null) return { ...input!, name: ctx.g.add('Relu', [input!.name], {}, layer.name) };
  if (max === 6) return activation(ctx, input!, 'relu6', layer.name, layer);
  const r = ctx.g.add('Relu', [input!.name], {}, `${layer.name}/relu`);
  return { ...input!, name: ctx.g.add('Clip', [r, ctx.g.scalar(`${layer.name}/min`, 0), ctx.g.scalar(`${layer.name}/max`, max)], {}, layer.name) };
};

const leakyRelu: LayerConverter = (ctx, layer, [input]) =>
  ({ ...input!, name: ctx.g.add('LeakyRelu', [input!.name], { alpha: { float: Number(cfg(layer).alpha ?? 0.3) } }, layer.name) });

const elu: LayerConverter = (ctx, layer, [input]) =>
  ({ ...input!, name: ctx.g.add('Elu', [input!.name], { alpha: { float: Number(cfg(layer).alpha ?? 1) } }, layer.name) });

const thresholdedRelu: LayerConverter = (ctx, layer, [input]) =>
  ({ ...input!, name: ctx.g.add('ThresholdedRelu', [input!.name], { alpha: { float: Number(cfg(layer).theta ?? 1) } }, layer.name) });

const softmaxLayer: LayerConverter = (ctx, layer, [input]) => {
  const axis = cfg(layer).axis as number | number[] | undefined;
  if (Array.isArray(axis) && axis.length !== 1) throw unsupported(layer, 'softmax over several axes');
  // tfjs' Softmax layer defaults to axis 1 (its DEFAULT_AXIS), not -1.
  const a = Array.isArray(axis) ? axis[0]! : (axis ?? 1);
  return { ...input!, name: ctx.g.add('Softmax', [input!.name], { axis: { int: axisIn(input!, a) } }, layer.name) };
};

const prelu: LayerConverter = (ctx, layer, [input]) => {
  // alpha has the input's shape without the batch (1 on shared axes); in NCHW its channel axis moves first.
  const alpha = need(weights(layer), 'alpha', layer);
  const x = input!;
  const slope = x.layout === 'nchw'
    ? ctx.g.floats(`${layer.name}/alpha`, [alpha.shape[2]!, alpha.shape[0]!, alpha.shape[1]!], transposeArray(alpha.data, alpha.shape, [2, 0, 1]))
    : ctx.g.floats(`${layer.name}/alpha`, alpha.shape, alpha.data);
  return { ...x, name: ctx.g.add('PRelu', [x.name, slope], {}, layer.name) };
};

export const LAYER_CONVERTERS: Record<string, LayerConverter> = {
  Conv2D: conv2d,
  DepthwiseConv2D: depthwiseConv2d,
  SeparableConv2D: separableConv2d,
  BatchNormalization: batchNormalization,
  Dense: dense,
  Flatten: flatten,
  Reshape: reshape,
  ZeroPadding2D: zeroPadding2d,
  MaxPooling2D: pooling('MaxPool'),
  AveragePooling2D: pooling('AveragePool'),
  GlobalAveragePooling2D: globalPooling('GlobalAveragePool'),
  GlobalMaxPooling2D: globalPooling('GlobalMaxPool'),
  Add: merge('Sum'),
  Multiply: merge('Mul'),
  Average: merge('Mean'),
  Maximum: merge('Max'),
  Minimum: merge('Min'),
  Concatenate: concatenate,
  Activation: activationLayer,
  ReLU: relu,
  LeakyReLU: leakyRelu,
  ELU: elu,
  ThresholdedReLU: thresholdedRelu,
  Softmax: softmaxLayer,
  PReLU: prelu,
  // Inference mode: these pass their input through.
  Dropout: identity,
  SpatialDropout1D: identity,
  GaussianNoise: identity,
  GaussianDropout: identity,
  AlphaDropout: identity,
};

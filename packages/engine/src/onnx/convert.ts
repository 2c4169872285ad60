/**
 * graft's converter from a (cut, frozen) tfjs layers model to an ONNX model for ONNX Runtime.
 * The input stays NHWC as tfjs takes it and is transposed once to NCHW; convolutions, pools and
 * their activations run NCHW; the output is the cut layer's value in tfjs' layout, optionally
 * pooled the way the head pools it (global average for maps, flatten for other ranks).
 */
import type * as tf from '@tensorflow/tfjs';
import { foldBatchNorm } from './fold-bn.ts';
import { OnnxGraph, OPSET } from './graph.ts';
import { LAYER_CONVERTERS, UnsupportedLayerError, type ConvertContext, type Value } from './layers.ts';

export { UnsupportedLayerError } from './layers.ts';

/** Bumped whenever the ONNX a model converts to may change (it is part of the cache key). */
export const CONVERTER_VERSION = 1;

export type OutputPooling = 'avg' | 'flatten' | 'none';

export interface ConvertOptions {
  /** What the output is: `avg` global average pool of a map (→ [n, c]), `flatten` (→ [n, d]), `none` the raw value. */
  pooling: OutputPooling;
  name?: string;
}

export interface ConvertedModel {
  bytes: Uint8Array;
  inputName: string;
  outputName: string;
  /** tfjs input shape without the batch, e.g. [224, 224, 3]. */
  inputShape: (number | null)[];
  /** Per-image output shape (after pooling). */
  outputShape: (number | null)[];
  /** Multiply-adds × 2 of convolutions and dense layers for one image; null if a size is unknown. */
  flopsPerImage: number | null;
  /** ONNX op types and how many of each (after folding). */
  ops: Record<string, number>;
  /** BatchNormalizations merged into their convolution. */
  foldedBatchNorms: number;
  layers: number;
}

export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'features';

/** Every layer class the converter knows. */
export const SUPPORTED_LAYERS: readonly string[] = ['InputLayer', ...Object.keys(LAYER_CONVERTERS)];

/**
 * The layers a model uses that the converter does not support, with why (empty: convertible as far
 * as classes go; a layer may still refuse an option, e.g. channelsFirst, when converted).
 */
export function unsupportedLayers(model: tf.LayersModel): { layer: string; className: string }[] {
  return symbolicOrder(model).filter((s) => !(s.sourceLayer.getClassName() in LAYER_CONVERTERS)).map((s) => ({ layer: s.sourceLayer.name, className: s.sourceLayer.getClassName() }));
}

/** The model's symbolic tensors from its input to its output, each after the ones it reads. */
function symbolicOrder(model: tf.LayersModel): tf.SymbolicTensor[] {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) throw new Error(`the converter handles models with one input and one output (this one has ${model.inputs.length} and ${model.outputs.length})`);
  const inputId = model.inputs[0]!.id;
  const order: tf.SymbolicTensor[] = [];
  const seen = new Set<number>([inputId]);
  // Iterative post-order DFS: deep models (Inception: ~300 layers) must not depend on the stack depth.
  const stack: { sym: tf.SymbolicTensor; expanded: boolean }[] = [{ sym: model.outputs[0]!, expanded: false }];
  while (stack.length) {
    const top = stack.pop()!;
    if (seen.has(top.sym.id) && !top.expanded) continue;
    if (top.expanded) { order.push(top.sym); continue; }
    seen.add(top.sym.id);
    if (top.sym.inputs.length === 0) throw new Error(`"${top.sym.name}" is an input the model was not given`);
    stack.push({ sym: top.sym, expanded: true });
    for (const input of [...top.sym.inputs].reverse()) if (!seen.has(input.id)) stack.push({ sym: input, expanded: false });
  }
  return order;
}

/** Converts; throws UnsupportedLayerError naming the first layer it cannot convert. */
export function convertLayersModel(model: tf.LayersModel, opts: ConvertOptions): ConvertedModel {
  const missing = unsupportedLayers(model);
  if (missing.length) {
    const first = missing[0]!;
    const classes = [...new Set(missing.map((m) => m.className))];
    throw new UnsupportedLayerError(first.layer, first.className, `no converter for ${classes.join(', ')} (${missing.length} layer${missing.length > 1 ? 's' : ''}; supported: ${SUPPORTED_LAYERS.join(', ')})`);
  }
  const g = new OnnxGraph();
  const input = model.inputs[0]!;
  const inputName = g.reserve(INPUT_NAME);
  const outputName = g.reserve(OUTPUT_NAME);
  let flops: number | null = 0;
  const toNchw = new Map<string, Value>();
  const toNative = new Map<string, Value>();
  const ctx: ConvertContext = {
    g,
    nchw(v) {
      if (v.layout === 'nchw') return v;
      if (v.shape.length !== 4) throw new Error(`a rank-${v.shape.length} value cannot be NCHW`);
      let t = toNchw.get(v.name);
      if (!t) {
        t = { name: g.add('Transpose', [v.name], { perm: { ints: [0, 3, 1, 2] } }, `${v.name}/nchw`), layout: 'nchw', shape: v.shape };
        toNchw.set(v.name, t);
        toNative.set(t.name, v);
      }
      return t;
    },
    native(v) {
      if (v.layout === 'native') return v;
      let t = toNative.get(v.name);
      if (!t) {
        t = { name: g.add('Transpose', [v.name], { perm: { ints: [0, 2, 3, 1] } }, `${v.name}/nhwc`), layout: 'native', shape: v.shape };
        toNative.set(v.name, t);
        toNchw.set(t.name, v);
      }
      return t;
    },
    countFlops(f) {
      flops = flops == null || f == null ? null : flops + f;
    },
  };

  const values = new Map<number, Value>([[input.id, { name: inputName, layout: 'native', shape: [...input.shape] }]]);
  const order = symbolicOrder(model);
  for (const sym of order) {
    const layer = sym.sourceLayer;
    if ((sym.outputTensorIndex ?? 0) !== 0) throw new UnsupportedLayerError(layer.name, layer.getClassName(), 'layers with several outputs are not supported');
    const inputs = sym.inputs.map((s) => {
      const v = values.get(s.id);
      if (!v) throw new Error(`"${s.name}" has no value yet (graph order)`);
      return v;
    });
    values.set(sym.id, LAYER_CONVERTERS[layer.getClassName()]!(ctx, layer, inputs, [...sym.shape]));
  }

  const cut = values.get(model.outputs[0]!.id)!;
  let out: Value;
  let outputShape: (number | null)[];
  if (opts.pooling === 'avg') {
    if (cut.shape.length !== 4) throw new Error(`average pooling needs a rank-4 output, not rank ${cut.shape.length}`);
    const pooled = g.add('GlobalAveragePool', [ctx.nchw(cut).name], {}, 'features/pool');
    out = { name: g.add('Flatten', [pooled], { axis: { int: 1 } }, 'features/flatten'), layout: 'native', shape: [null, cut.shape[3]!] };
    outputShape = [cut.shape[3]!];
  } else if (opts.pooling === 'flatten') {
    const rest = cut.shape.slice(1);
    outputShape = [rest.some((d) => d == null) ? null : (rest as number[]).reduce((a, b) => a * b, 1)];
    out = cut.shape.length === 2 ? cut : { name: g.add('Flatten', [ctx.native(cut).name], { axis: { int: 1 } }, 'features/flatten'), layout: 'native', shape: [null, ...outputShape] };
  } else {
    out = ctx.native(cut);
    outputShape = cut.shape.slice(1);
  }
  // The graph's output has a fixed name: an Identity (ONNX Runtime removes it) keeps value names unique.
  g.nodes.push({ op: 'Identity', name: g.unique('features/identity'), inputs: [out.name], outputs: [outputName], attrs: {} });
  const folded = foldBatchNorm(g, outputName);
  const ops: Record<string, number> = {};
  for (const n of g.nodes) ops[n.op] = (ops[n.op] ?? 0) + 1;
  const bytes = g.encode(
    { name: inputName, shape: [...input.shape] },
    { name: outputName, shape: [null, ...outputShape] },
    { graphName: opts.name ?? model.name, docString: `Converted by graft from the tfjs layers model "${model.name}" (opset ${OPSET}, output pooling ${opts.pooling}).` },
  );
  return { bytes, inputName, outputName, inputShape: input.shape.slice(1), outputShape, flopsPerImage: flops, ops, foldedBatchNorms: folded, layers: order.length };
}

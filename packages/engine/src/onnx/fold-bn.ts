/**
 * Folds an inference-mode BatchNormalization into the Conv that feeds it (and only it):
 * W'[o] = W[o] · s[o], b'[o] = (b[o] − mean[o]) · s[o] + beta[o], with s = gamma / sqrt(var + eps).
 * Computed in float64, stored as float32. A BatchNormalization after anything else stays a node.
 */
import type { GraphNode, OnnxGraph } from './graph.ts';

export function foldBatchNorm(g: OnnxGraph, graphOutput: string): number {
  const producer = new Map<string, GraphNode>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const consumers = g.consumers();
  const removed = new Set<GraphNode>();
  for (const bn of g.nodes) {
    if (bn.op !== 'BatchNormalization') continue;
    const conv = producer.get(bn.inputs[0]!);
    if (!conv || conv.op !== 'Conv' || conv.outputs[0] === graphOutput) continue;
    if ((consumers.get(conv.outputs[0]!) ?? []).length !== 1) continue;
    const init = (name: string | undefined) => {
      const t = name ? g.initializers.get(name) : undefined;
      if (!t || t.type !== 'float32') throw new Error(`fold: ${name} is not a float initializer`);
      return t.data;
    };
    const [gamma, beta, mean, variance] = bn.inputs.slice(1).map(init) as [Float32Array, Float32Array, Float32Array, Float32Array];
    const eps = bn.attrs.epsilon && 'float' in bn.attrs.epsilon ? bn.attrs.epsilon.float : 1e-5;
    const weightName = conv.inputs[1]!;
    const w = init(weightName);
    const outChannels = mean.length;
    const perChannel = w.length / outChannels;
    const folded = new Float32Array(w.length);
    const bias = new Float32Array(outChannels);
    const oldBias = conv.inputs[2] ? init(conv.inputs[2]) : null;
    for (let o = 0; o < outChannels; o++) {
      const s = gamma[o]! / Math.sqrt(variance[o]! + eps);
      for (let k = 0; k < perChannel; k++) folded[o * perChannel + k] = w[o * perChannel + k]! * s;
      bias[o] = ((oldBias ? oldBias[o]! : 0) - mean[o]!) * s + beta[o]!;
    }
    const wInit = g.initializers.get(weightName)!;
    g.initializers.set(weightName, { ...wInit, type: 'float32', data: folded } as typeof wInit);
    conv.inputs = [conv.inputs[0]!, weightName, g.floats(`${bn.name}/folded_bias`, [outChannels], bias)];
    conv.outputs = [bn.outputs[0]!];
    removed.add(bn);
  }
  if (removed.size) {
    const kept = g.nodes.filter((n) => !removed.has(n));
    g.nodes.length = 0;
    g.nodes.push(...kept);
    g.pruneInitializers();
  }
  return removed.size;
}

/**
 * The new classification head: [Dense(units, relu)] → Dropout(rate) → Dense(classes, softmax), on
 * the pooled features (`headUnits` 0: no hidden layer). Kept as separate layers (not a nested
 * model) so export can apply them straight onto the cut base. Layer names start with `graft_head_`
 * (bases/open-base.ts finds a previous fine-tune's head by them, and the base is cut below it).
 * Also the training objective (cross-entropy with smoothing, class weights and L2).
 */
import * as tf from '@tensorflow/tfjs';

/** How the head reads an encoder's output: spatial maps are globally average-pooled, other ranks > 1 flattened. */
export type Pooling = 'avg' | 'flatten' | 'none';

/** What the head gets from an encoder whose per-example output has `shape`: the pooling and the feature length after it. */
export function featureLayout(shape: readonly number[]): { featureShape: number[]; pooling: Pooling; dim: number } {
  if (shape.length === 3) return { featureShape: [...shape], pooling: 'avg', dim: shape[2]! };
  const dim = shape.reduce((a, b) => a * b, 1);
  return { featureShape: [...shape], pooling: shape.length === 1 ? 'none' : 'flatten', dim };
}

export interface HeadOptions {
  /** Hidden Dense(relu) width; 0 for none. */
  units: number;
  /** Dropout rate before the output layer. */
  dropout: number;
  /** L2 penalty on the head's kernels (added to the loss as l2 × Σ w²). */
  l2: number;
  seed: number;
}

export interface Head {
  /** Global average pooling (spatial features) or flatten (other ranks > 1) applied at export; null for vector features. */
  pool: tf.layers.Layer | null;
  /** The hidden layer; null when `units` is 0. */
  dense: tf.layers.Layer | null;
  dropout: tf.layers.Layer;
  output: tf.layers.Layer;
  /** [dense →] dropout → output on pooled features; inference mode (dropout off) via predict. */
  model: tf.LayersModel;
  /** The variables training updates. */
  variables: tf.Variable[];
  /** The kernels the L2 penalty applies to. */
  kernels: tf.Variable[];
  units: number;
  dropoutRate: number;
  l2: number;
}

export function buildHead(dim: number, numClasses: number, pooling: Pooling, o: HeadOptions): Head {
  const pool = pooling === 'avg' ? tf.layers.globalAveragePooling2d({ name: 'graft_head_pool' }) : pooling === 'flatten' ? tf.layers.flatten({ name: 'graft_head_flatten' }) : null;
  const dense = o.units > 0
    ? tf.layers.dense({ name: 'graft_head_dense', units: o.units, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: o.seed }) })
    : null;
  const dropout = tf.layers.dropout({ name: 'graft_head_dropout', rate: o.dropout });
  const output = tf.layers.dense({
    name: 'graft_head_output',
    units: numClasses,
    activation: 'softmax',
    kernelInitializer: tf.initializers.glorotUniform({ seed: o.seed + 1 }),
  });
  const input = tf.input({ shape: [dim], name: 'graft_head_input' });
  const hidden = dense ? (dense.apply(input) as tf.SymbolicTensor) : input;
  const out = output.apply(dropout.apply(hidden)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'graft_head' });
  const trainable = dense ? [dense, output] : [output];
  const variables = trainable.flatMap((l) => l.trainableWeights).map((w) => w.read() as tf.Variable);
  // Dense weights are [kernel, bias].
  const kernels = trainable.map((l) => l.trainableWeights[0]!.read() as tf.Variable);
  return { pool, dense, dropout, output, model, variables, kernels, units: o.units, dropoutRate: o.dropout, l2: o.l2 };
}

/**
 * The training-mode forward pass on pooled features. Dropout is applied here with a mask from an
 * explicit per-step seed: tfjs' Dropout layer draws either from Math.random (not reproducible) or,
 * given a seed, the same mask on every call.
 */
export function headForwardTraining(head: Head, x: tf.Tensor2D, dropoutSeed: number, rows?: { start: number; total: number }): tf.Tensor2D {
  const h = head.dense ? (head.dense.apply(x) as tf.Tensor2D) : x;
  if (head.dropoutRate <= 0) return head.output.apply(h) as tf.Tensor2D;
  const keep = 1 - head.dropoutRate;
  // A micro-batch (rows of a larger batch) takes its rows of the whole batch's mask.
  const draw = rows && rows.total !== h.shape[0]
    ? tf.randomUniform([rows.total, h.shape[1]], 0, 1, 'float32', dropoutSeed).slice([rows.start, 0], h.shape)
    : tf.randomUniform(h.shape, 0, 1, 'float32', dropoutSeed);
  const mask = draw.less(keep).cast('float32').div(keep);
  return head.output.apply(h.mul(mask)) as tf.Tensor2D;
}

/** The head's pooling (GAP / flatten) on a batch of cut-base outputs; identity for vector features. */
export function poolFeatures(head: Head, y: tf.Tensor): tf.Tensor2D {
  return (head.pool ? head.pool.apply(y) : y) as tf.Tensor2D;
}

export interface LossOptions {
  numClasses: number;
  /** Targets become y × (1 − s) + s / classes (Keras' label_smoothing). */
  labelSmoothing: number;
  /** One weight per class multiplying each sample's loss (Keras' class_weight), or null. */
  classWeights: tf.Tensor1D | null;
  /** L2 penalty × Σ w² over `kernels`. */
  l2: number;
  kernels: readonly tf.Variable[];
}

/**
 * The training objective: per-sample cross-entropy against (smoothed) one-hot targets, times the
 * sample's class weight, averaged over the batch (Keras' sum-over-batch-size reduction), plus the
 * L2 penalty on the head's kernels.
 */
export function trainingLoss(probs: tf.Tensor2D, labels: tf.Tensor1D, o: LossOptions): tf.Scalar {
  return tf.tidy(() => {
    let y = tf.oneHot(labels, o.numClasses).cast('float32') as tf.Tensor2D;
    if (o.labelSmoothing > 0) y = y.mul(1 - o.labelSmoothing).add(o.labelSmoothing / o.numClasses);
    let perSample = y.mul(probs.clipByValue(1e-7, 1 - 1e-7).log()).sum(1).neg() as tf.Tensor1D;
    if (o.classWeights) perSample = perSample.mul(tf.gather(o.classWeights, labels));
    let loss = perSample.mean() as tf.Scalar;
    if (o.l2 > 0 && o.kernels.length) loss = loss.add(tf.addN(o.kernels.map((k) => k.square().sum())).mul(o.l2));
    return loss;
  });
}

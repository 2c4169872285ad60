/**
 * The new classification head: Dense(relu) → Dropout → Dense(softmax), on the pooled features. Kept
 * as separate layers (not a nested model) so export can apply them straight onto the cut base.
 */
import * as tf from '@tensorflow/tfjs';

/** Hidden width: Keras' transfer-learning examples use 128-256; 128 is enough for small datasets and fast. */
export const HEAD_UNITS = 128;
/** Dropout between the two Dense layers (Keras' guide uses 0.2-0.5 on small data). */
export const HEAD_DROPOUT = 0.3;

export interface Head {
  /** Global average pooling (spatial features) or flatten (other ranks > 1) applied at export; null for vector features. */
  pool: tf.layers.Layer | null;
  dense: tf.layers.Layer;
  dropout: tf.layers.Layer;
  output: tf.layers.Layer;
  /** dense → dropout → output on pooled features; inference mode (dropout off) via predict. */
  model: tf.LayersModel;
  /** The variables training updates. */
  variables: tf.Variable[];
  units: number;
  dropoutRate: number;
}

export function buildHead(dim: number, numClasses: number, pooling: 'avg' | 'flatten' | 'none', seed: number): Head {
  const pool = pooling === 'avg' ? tf.layers.globalAveragePooling2d({ name: 'graft_head_pool' }) : pooling === 'flatten' ? tf.layers.flatten({ name: 'graft_head_flatten' }) : null;
  const dense = tf.layers.dense({
    name: 'graft_head_dense',
    units: HEAD_UNITS,
    activation: 'relu',
    kernelInitializer: tf.initializers.glorotUniform({ seed }),
  });
  const dropout = tf.layers.dropout({ name: 'graft_head_dropout', rate: HEAD_DROPOUT });
  const output = tf.layers.dense({
    name: 'graft_head_output',
    units: numClasses,
    activation: 'softmax',
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
  });
  const input = tf.input({ shape: [dim], name: 'graft_head_input' });
  const out = output.apply(dropout.apply(dense.apply(input))) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'graft_head' });
  const variables = [...dense.trainableWeights, ...output.trainableWeights].map((w) => w.read() as tf.Variable);
  return { pool, dense, dropout, output, model, variables, units: HEAD_UNITS, dropoutRate: HEAD_DROPOUT };
}

/**
 * The training-mode forward pass. Dropout is applied here with a mask from an explicit per-step
 * seed: tfjs' Dropout layer draws either from Math.random (not reproducible) or, given a seed, the
 * same mask on every call.
 */
export function headForwardTraining(head: Head, x: tf.Tensor2D, dropoutSeed: number): tf.Tensor2D {
  const h = head.dense.apply(x) as tf.Tensor2D;
  const keep = 1 - head.dropoutRate;
  const mask = tf.randomUniform(h.shape, 0, 1, 'float32', dropoutSeed).less(keep).cast('float32').div(keep);
  return head.output.apply(h.mul(mask)) as tf.Tensor2D;
}

/** Mean categorical cross-entropy, with Keras' clipping of probabilities to [1e-7, 1 - 1e-7]. */
export function crossEntropy(oneHot: tf.Tensor2D, probs: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => oneHot.mul(probs.clipByValue(1e-7, 1 - 1e-7).log()).sum(1).neg().mean() as tf.Scalar);
}

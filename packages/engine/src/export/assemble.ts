/**
 * The exported model as one tfjs layers graph: the head's layers applied straight onto the cut
 * encoder's output (no nested model, so any tfjs/Keras loader reads it), or, for an encoder that
 * is not a tfjs layers model, the head (with its pooling) alone on the encoder's output.
 * Both share weights with the encoder and the head.
 */
import * as tf from '@tensorflow/tfjs';
import type { Head } from '../train/head.ts';

export function assembleInferenceModel(cut: tf.LayersModel, head: Head): tf.LayersModel {
  return tf.model({ inputs: cut.inputs, outputs: applyHead(cut.outputs[0]!, head), name: 'graft_fine_tune' });
}

/** The head (with its pooling) as a model on raw encoder outputs of `featureShape`. */
export function assembleHeadModel(featureShape: readonly number[], head: Head): tf.LayersModel {
  const input = tf.input({ shape: [...featureShape], name: 'graft_head_features' });
  return tf.model({ inputs: input, outputs: applyHead(input, head), name: 'graft_fine_tune_head' });
}

function applyHead(x: tf.SymbolicTensor, head: Head): tf.SymbolicTensor {
  if (head.pool) x = head.pool.apply(x) as tf.SymbolicTensor;
  if (head.dense) x = head.dense.apply(x) as tf.SymbolicTensor;
  x = head.dropout.apply(x) as tf.SymbolicTensor;
  return head.output.apply(x) as tf.SymbolicTensor;
}

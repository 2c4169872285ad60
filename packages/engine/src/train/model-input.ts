/**
 * What a model takes for a batch of examples: one tensor (images [n, h, w, c]) or several (a text
 * encoder's token ids and attention mask, each [n, maxLength]), always batched on axis 0.
 */
import * as tf from '@tensorflow/tfjs';

export type ModelInput = tf.Tensor | tf.Tensor[];

export function batchSizeOf(x: ModelInput): number {
  return (Array.isArray(x) ? x[0]! : x).shape[0]!;
}

/** Rows [start, start + size) of every tensor of the input. */
export function sliceBatch(x: ModelInput, start: number, size: number): ModelInput {
  const slice = (t: tf.Tensor) => t.slice(start, size);
  return Array.isArray(x) ? x.map(slice) : slice(x);
}

/** `run` on slices of at most `chunk` examples, concatenated (inference: rows are independent). */
export function runInChunks(run: (x: ModelInput) => tf.Tensor, x: ModelInput, chunk: number): tf.Tensor {
  const n = batchSizeOf(x);
  if (n <= chunk) return run(x);
  return tf.tidy(() => {
    const parts: tf.Tensor[] = [];
    // Each chunk in its own scope: tfjs keeps a call's activations until its scope ends.
    for (let start = 0; start < n; start += chunk) parts.push(tf.tidy(() => run(sliceBatch(x, start, Math.min(chunk, n - start)))));
    return tf.concat(parts);
  });
}

/** A frozen part on ONNX Runtime run over n inputs in its own batch size (augmented batches). */
import * as tf from '@tensorflow/tfjs';

export interface OnnxRows {
  batchSize: number;
  run(x: Float32Array, n: number): Promise<Float32Array>;
}

/** The part's output for the n inputs of `x` (not freed here) as one [n, ...outShape] tensor. */
export async function runOnnxRows(rows: OnnxRows, x: tf.Tensor, n: number, outShape: readonly number[]): Promise<tf.Tensor> {
  const input = await x.data<'float32'>();
  const perInput = input.length / n;
  const perOutput = outShape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n * perOutput);
  for (let start = 0; start < n; start += rows.batchSize) {
    const m = Math.min(rows.batchSize, n - start);
    out.set(await rows.run(input.subarray(start * perInput, (start + m) * perInput), m), start * perOutput);
  }
  return tf.tensor(out, [n, ...outShape]);
}

/**
 * One optimizer step on a batch, computed as micro-batches when the whole batch does not fit in
 * memory (train/memory-plan.ts): each micro-batch's gradients (optimizer.computeGradients) of its
 * loss weighted by its share of the batch are summed, and the optimizer applies the sum once. The
 * training loss is a mean over the batch plus an L2 term, so the sum is the full batch's gradient up
 * to float error; dropout masks are the full batch's (rows sliced from one mask per step). What
 * differs: BatchNormalization in training mode (the scratch baseline) normalises each micro-batch
 * with its own statistics and updates its moving averages once per micro-batch.
 */
import * as tf from '@tensorflow/tfjs';
import { trainingLoss, type LossOptions } from './head.ts';
import { optimizerStep } from './phase-runner.ts';

/** Rows of the batch a forward call sees: [start, start + size) of `total`. */
export interface BatchRows {
  start: number;
  size: number;
  total: number;
}

/**
 * `forward(inputs, rows)` runs under the tape on rows of every tensor of `inputs` (batch-first) and
 * returns class probabilities. With `microBatch` ≥ the batch it is exactly `optimizerStep`.
 */
export async function accumulatedStep(
  optimizer: tf.Optimizer,
  variables: tf.Variable[],
  inputs: readonly tf.Tensor[],
  labels: tf.Tensor1D,
  forward: (inputs: tf.Tensor[], rows: BatchRows) => tf.Tensor2D,
  lossOptions: LossOptions,
  microBatch: number,
): Promise<{ loss: number; correct: number }> {
  const total = labels.shape[0];
  if (microBatch >= total) return optimizerStep(optimizer, variables, () => forward([...inputs], { start: 0, size: total, total }), labels, lossOptions);
  let sums: tf.NamedTensorMap | null = null;
  let loss = 0;
  let correct = 0;
  try {
    for (let start = 0; start < total; start += microBatch) {
      const size = Math.min(microBatch, total - start);
      const rows = { start, size, total };
      const xs = inputs.map((t) => t.slice(start, size));
      const ys = labels.slice(start, size);
      const kept: { correct?: tf.Scalar } = {};
      let out: { value: tf.Scalar; grads: tf.NamedTensorMap };
      try {
        out = optimizer.computeGradients(() => {
          const probs = forward(xs, rows);
          kept.correct = tf.keep(probs.argMax(1).equal(ys).cast('float32').sum() as tf.Scalar);
          // Its share of the batch mean (the L2 term's shares add up to one).
          return trainingLoss(probs, ys, lossOptions).mul(size / total) as tf.Scalar;
        }, variables);
      } finally {
        tf.dispose([...xs, ys]);
      }
      try {
        loss += (await out.value.data())[0]!;
        correct += (await kept.correct!.data())[0]!;
        if (!sums) {
          sums = out.grads;
        } else {
          const previous: tf.NamedTensorMap = sums;
          sums = Object.fromEntries(Object.entries(out.grads).map(([name, g]) => [name, tf.add(previous[name]!, g)]));
          tf.dispose([...Object.values(previous), ...Object.values(out.grads)]);
        }
      } finally {
        tf.dispose([out.value, kept.correct!]);
      }
      // Let IPC and lock renewals through between micro-batches too.
      await new Promise((r) => setImmediate(r));
    }
    optimizer.applyGradients(sums!);
  } finally {
    if (sums) tf.dispose(Object.values(sums));
  }
  return { loss, correct };
}

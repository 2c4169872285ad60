/**
 * Inference-mode scoring of a head or a whole model on labelled examples: cached features, the
 * task's input cache (per-epoch validation of phases that change the encoder), or the dataset file
 * itself read with the exact preprocessing the exported model documents (final metrics).
 */
import * as tf from '@tensorflow/tfjs';
import type { Example } from '../data/example.ts';
import { TrainingCancelled } from '../errors.ts';
import type { InputCache, LabelledBatch } from '../tasks/task.ts';
import type { Head } from '../train/head.ts';
import type { ModelInput } from '../train/model-input.ts';
import { Scorer } from './metrics.ts';

const tick = () => new Promise((r) => setImmediate(r));

/** Model inputs → class probabilities [n, classes], inference mode. */
export type Predict = (x: ModelInput) => tf.Tensor2D;

/** The head (dropout off) on rows of pooled features [n, dim]. */
export async function scoreHeadOnFeatures(head: Head, x: tf.Tensor2D, labels: readonly number[], numClasses: number, k: number, batchSize = 256): Promise<Scorer> {
  const scorer = new Scorer(numClasses, k);
  const n = x.shape[0];
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const probs = tf.tidy(() => head.model.predict(x.slice([start, 0], [size, -1])) as tf.Tensor2D);
    try {
      await scorer.add(probs, labels.slice(start, start + size));
    } finally {
      probs.dispose();
    }
  }
  return scorer;
}

/** A whole model (inference mode) on rows of the task's input cache, `batchSize` at a time. */
export async function scoreOnInputCache<B>(
  predict: Predict,
  cache: InputCache<B>,
  rows: readonly number[],
  labels: readonly number[],
  numClasses: number,
  k: number,
  opts: { batchSize: number; signal?: AbortSignal },
): Promise<Scorer> {
  const scorer = new Scorer(numClasses, k);
  for (let start = 0; start < rows.length; start += opts.batchSize) {
    if (opts.signal?.aborted) throw new TrainingCancelled();
    const batch = await cache.read(rows.slice(start, start + opts.batchSize));
    const probs = tf.tidy(() => predict(cache.inputs(batch, null)));
    try {
      await scorer.add(probs, labels.slice(start, start + opts.batchSize));
    } finally {
      probs.dispose();
    }
    await tick();
  }
  return scorer;
}

/**
 * Models (inference mode) on examples read from a dataset file by the task, each batch read once
 * for all models; one Scorer per model, fed in the order the task reads the file.
 */
export async function scoreOnDataset(
  read: (examples: readonly Example[]) => AsyncIterable<LabelledBatch>,
  examples: readonly Example[],
  predictors: readonly Predict[],
  numClasses: number,
  k: number,
): Promise<Scorer[]> {
  const scorers = predictors.map(() => new Scorer(numClasses, k));
  if (predictors.length === 0 || examples.length === 0) return scorers;
  for await (const { labels, x } of read(examples)) {
    try {
      for (const [m, predict] of predictors.entries()) {
        const probs = tf.tidy(() => predict(x));
        try {
          await scorers[m]!.add(probs, labels);
        } finally {
          probs.dispose();
        }
      }
    } finally {
      tf.dispose(x);
    }
    await tick();
  }
  return scorers;
}

/** Model inputs → class probabilities, computed partly outside tfjs (ONNX Runtime); the caller disposes the result. */
export type AsyncPredict = (x: ModelInput) => Promise<tf.Tensor2D>;

/** `scoreOnDataset` for one model that predicts asynchronously. */
export async function scoreOnDatasetAsync(
  read: (examples: readonly Example[]) => AsyncIterable<LabelledBatch>,
  examples: readonly Example[],
  predict: AsyncPredict,
  numClasses: number,
  k: number,
): Promise<Scorer> {
  const scorer = new Scorer(numClasses, k);
  if (examples.length === 0) return scorer;
  for await (const { labels, x } of read(examples)) {
    try {
      const probs = await predict(x);
      try {
        await scorer.add(probs, labels);
      } finally {
        probs.dispose();
      }
    } finally {
      tf.dispose(x);
    }
    await tick();
  }
  return scorer;
}

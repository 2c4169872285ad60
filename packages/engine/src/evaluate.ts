/**
 * Inference-mode scoring of a head or a whole model on labelled data: cached features, the
 * decoded-image cache (per-epoch validation of phases that change the base), or the archive itself
 * with the exact preprocessing the exported model documents (final metrics).
 */
import * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '@graft/contracts';
import { readArchiveImages } from './dataset-archive.ts';
import { TrainingCancelled, TrainingError } from './errors.ts';
import { featureBatchSize } from './features.ts';
import type { Head } from './head.ts';
import type { ImageCache } from './image-cache.ts';
import { Scorer } from './metrics.ts';
import { preprocessImage } from './preprocess.ts';
import type { LabelledImage } from './split.ts';

const tick = () => new Promise((r) => setImmediate(r));

/** Model inputs [n, h, w, c] → class probabilities [n, classes], inference mode. */
export type Predictor = (x: tf.Tensor4D) => tf.Tensor2D;

const asPredictor = (m: tf.LayersModel | Predictor): Predictor => (typeof m === 'function' ? m : (x) => m.predict(x) as tf.Tensor2D);

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

/** A whole model (inference mode) on images of the decoded-image cache. */
export async function scoreModelOnCache(
  model: tf.LayersModel | Predictor,
  cache: ImageCache,
  rows: readonly number[],
  labels: readonly number[],
  pre: Preprocessing,
  numClasses: number,
  k: number,
  opts: { batchSize?: number; signal?: AbortSignal } = {},
): Promise<Scorer> {
  const scorer = new Scorer(numClasses, k);
  const batchSize = opts.batchSize ?? featureBatchSize(pre);
  const predict = asPredictor(model);
  for (let start = 0; start < rows.length; start += batchSize) {
    if (opts.signal?.aborted) throw new TrainingCancelled();
    const bytes = await cache.read(rows.slice(start, start + batchSize));
    const probs = tf.tidy(() => predict(cache.inputs(bytes, pre)));
    try {
      await scorer.add(probs, labels.slice(start, start + batchSize));
    } finally {
      probs.dispose();
    }
    await tick();
  }
  return scorer;
}

/**
 * Models (inference mode) on archive images decoded with the exact preprocessing of the exported
 * model; each image decoded once for all models. One Scorer per model (images in archive order).
 */
export async function scoreModelsOnArchive(
  zipPath: string,
  items: readonly LabelledImage[],
  models: readonly (tf.LayersModel | Predictor)[],
  pre: Preprocessing,
  numClasses: number,
  k: number,
  opts: { signal?: AbortSignal } = {},
): Promise<Scorer[]> {
  const scorers = models.map(() => new Scorer(numClasses, k));
  const predictors = models.map(asPredictor);
  if (models.length === 0 || items.length === 0) return scorers;
  const label = new Map(items.map((i) => [i.path, i.label]));
  const batchSize = featureBatchSize(pre);
  const seen = new Set<string>();
  let pending: { labels: number[]; inputs: tf.Tensor3D[] } = { labels: [], inputs: [] };
  const flush = async () => {
    if (!pending.inputs.length) return;
    const { labels, inputs } = pending;
    pending = { labels: [], inputs: [] };
    const x = tf.stack(inputs) as tf.Tensor4D;
    tf.dispose(inputs);
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
      x.dispose();
    }
    await tick();
  };
  try {
    for await (const { path, data } of readArchiveImages(zipPath, new Set(label.keys()))) {
      if (opts.signal?.aborted) throw new TrainingCancelled();
      if (seen.has(path)) continue;
      seen.add(path);
      try {
        pending.inputs.push(preprocessImage(data, pre));
      } catch (err) {
        throw new TrainingError('unreadable_image', `Image "${path}" cannot be decoded: ${(err as Error).message}.`);
      }
      pending.labels.push(label.get(path)!);
      if (pending.inputs.length >= batchSize) await flush();
    }
    await flush();
  } finally {
    tf.dispose(pending.inputs);
  }
  if (seen.size !== label.size) {
    const missing = items.find((i) => !seen.has(i.path));
    throw new TrainingError('unreadable_image', `Image "${missing?.path}" is missing from the archive.`);
  }
  return scorers;
}

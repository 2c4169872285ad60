/**
 * Reading the images of a dataset archive for a job: the one decode pass (each image decoded and
 * resized once; the frozen encoder's pooled features, exact float preprocessing, and/or the
 * decoded pixels for the image cache), and the exact reading the final evaluation scores on.
 */
import * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '@graft/contracts';
import type { Example } from '../../data/example.ts';
import { TrainingCancelled, TrainingError } from '../../errors.ts';
import type { Pooling } from '../../train/head.ts';
import type { InputPassOptions, LabelledBatch } from '../task.ts';
import { readArchiveImages } from './dataset-archive.ts';
import type { ImageCacheWriter } from './image-cache.ts';
import { decodeImage, featureBatchSize, imageToPixels, preprocessImage, scalePixels } from './preprocess.ts';

/** The frozen encoder as the pass runs it: inference mode on [n, h, w, c] → [n, ...featureShape], then pooled to `dim`. */
export interface FeatureStep {
  run(x: tf.Tensor4D): tf.Tensor;
  pooling: Pooling;
  dim: number;
  /** The same features from another runtime (ONNX): pooled rows of n NHWC float32 images, `batchSize` per call. */
  rows?: { batchSize: number; run(x: Float32Array, n: number): Promise<Float32Array> } | null;
}

/**
 * One pass over the archive, decoding each listed image exactly once: optionally the frozen
 * encoder's features (inference mode, exact float preprocessing; every row or only some) and
 * optionally the decoded pixels for the image cache. Features come back as rows of one
 * Float32Array in the order of `ids` (rows not asked for stay 0); null when none were asked for.
 */
export async function decodePass(zipPath: string, pre: Preprocessing, step: FeatureStep | null, opts: InputPassOptions): Promise<Float32Array | null> {
  const paths = opts.ids;
  const fx = opts.features ? step : null;
  if (opts.features && !step) throw new Error('features asked of an encoder that cannot compute them');
  const featureRows = opts.features === 'all' ? null : opts.features;
  // A writer from this task's own store (imageCacheStore.create).
  const writer = opts.cache as ImageCacheWriter | null;
  const row = new Map(paths.map((p, i) => [p, i]));
  const out = fx ? new Float32Array(paths.length * fx.dim) : null;
  const seen = new Set<string>();
  const batchSize = fx?.rows?.batchSize ?? featureBatchSize(pre);
  let pending: { rows: number[]; inputs: tf.Tensor3D[] } = { rows: [], inputs: [] };

  const features = async (inputs: tf.Tensor3D[], n: number): Promise<Float32Array> => {
    if (fx!.rows) {
      const x = tf.stack(inputs);
      try {
        return await fx!.rows.run(await x.data<'float32'>(), n);
      } finally {
        x.dispose();
      }
    }
    const values = tf.tidy(() => {
      const y = fx!.run(tf.stack(inputs) as tf.Tensor4D);
      if (fx!.pooling === 'avg') return y.mean([1, 2]);
      return fx!.pooling === 'flatten' ? y.reshape([n, fx!.dim]) : y;
    });
    try {
      return await values.data<'float32'>();
    } finally {
      values.dispose();
    }
  };

  const flush = async () => {
    if (pending.inputs.length === 0 || !fx || !out) return;
    const { rows, inputs } = pending;
    pending = { rows: [], inputs: [] };
    let data: Float32Array;
    const t = performance.now();
    try {
      data = await features(inputs, rows.length);
    } finally {
      tf.dispose(inputs);
      if (opts.timing) opts.timing.encoderMs += performance.now() - t;
    }
    rows.forEach((r, k) => out.set(data.subarray(k * fx.dim, (k + 1) * fx.dim), r * fx.dim));
    await opts.onProgress?.(seen.size, paths.length);
    await new Promise((r) => setImmediate(r)); // let IPC and cancel messages through
  };

  try {
    for await (const { path, data } of readArchiveImages(zipPath, new Set(paths))) {
      if (opts.signal?.aborted) throw new TrainingCancelled();
      if (seen.has(path)) continue; // a duplicated entry name: the first one counts
      seen.add(path);
      const r = row.get(path)!;
      let pixels: tf.Tensor3D;
      try {
        pixels = imageToPixels(decodeImage(data), pre);
      } catch (err) {
        throw new TrainingError('unreadable_image', `Image "${path}" cannot be decoded: ${(err as Error).message}.`);
      }
      try {
        if (writer) await writer.write(r, await pixels.data<'float32'>());
        if (fx && (!featureRows || featureRows.has(r))) {
          pending.rows.push(r);
          pending.inputs.push(scalePixels(pixels, pre));
        }
      } finally {
        pixels.dispose();
      }
      if (pending.inputs.length >= batchSize) await flush();
      else if (!fx && seen.size % 64 === 0) {
        await opts.onProgress?.(seen.size, paths.length);
        await new Promise((r) => setImmediate(r));
      }
    }
    await flush();
  } finally {
    tf.dispose(pending.inputs);
  }
  if (seen.size !== paths.length) {
    const missing = paths.find((p) => !seen.has(p));
    throw new TrainingError('unreadable_image', `Image "${missing}" is missing from the archive.`);
  }
  return out;
}

/**
 * The listed images with the exact preprocessing of the exported model (decode → RGB/grey →
 * bilinear resize → scale + offset, in float), in archive order, `featureBatchSize` at a time.
 */
export async function* readImagesExactly(zipPath: string, examples: readonly Example[], pre: Preprocessing, signal?: AbortSignal): AsyncGenerator<LabelledBatch> {
  const label = new Map(examples.map((e) => [e.id, e.label]));
  const batchSize = featureBatchSize(pre);
  const seen = new Set<string>();
  let pending: { labels: number[]; inputs: tf.Tensor3D[] } = { labels: [], inputs: [] };
  const take = (): LabelledBatch => {
    const { labels, inputs } = pending;
    pending = { labels: [], inputs: [] };
    const x = tf.stack(inputs) as tf.Tensor4D;
    tf.dispose(inputs);
    return { labels, x };
  };
  try {
    for await (const { path, data } of readArchiveImages(zipPath, new Set(label.keys()))) {
      if (signal?.aborted) throw new TrainingCancelled();
      if (seen.has(path)) continue;
      seen.add(path);
      try {
        pending.inputs.push(preprocessImage(data, pre));
      } catch (err) {
        throw new TrainingError('unreadable_image', `Image "${path}" cannot be decoded: ${(err as Error).message}.`);
      }
      pending.labels.push(label.get(path)!);
      if (pending.inputs.length >= batchSize) yield take();
    }
    if (pending.inputs.length) yield take();
  } finally {
    tf.dispose(pending.inputs);
  }
  if (seen.size !== label.size) {
    const missing = examples.find((e) => !seen.has(e.id));
    throw new TrainingError('unreadable_image', `Image "${missing?.id}" is missing from the archive.`);
  }
}

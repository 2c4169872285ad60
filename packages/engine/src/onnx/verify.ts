/**
 * The converted model against tfjs on seeded random inputs. The error is normalised by the feature
 * scale, not per element (ReLU features are often exactly 0, where a per-element relative error is
 * meaningless):
 *
 *   relError = max_i |onnx_i − tfjs_i| / max(max_i |tfjs_i|, 1e-6)
 *
 * over every value of every sample. Inputs are what real images give the base: integer pixels
 * uniform in 0..255, then the base's `scale`/`offset` (uniform [0, 1) without a preprocessing).
 */
import * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '@graft/contracts';
import { mulberry32 } from '../util/random.ts';
import type { OutputPooling } from './convert.ts';
import type { OnnxRunner } from './runtime.ts';

/** The acceptance bound on relError (issue 9). */
export const MAX_RELATIVE_ERROR = 1e-4;

export interface Equivalence {
  relError: number;
  maxAbsDiff: number;
  /** max |tfjs| over the compared values. */
  scale: number;
  samples: number;
  seed: number;
  tfBackend: string;
}

export function relativeError(actual: Float32Array, expected: Float32Array): { relError: number; maxAbsDiff: number; scale: number } {
  if (actual.length !== expected.length) throw new Error(`compare: ${actual.length} values against ${expected.length}`);
  let maxAbsDiff = 0;
  let scale = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    // NaN anywhere is a mismatch, never a silent pass.
    if (!(d <= maxAbsDiff)) maxAbsDiff = Number.isNaN(d) ? Infinity : d;
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return { relError: maxAbsDiff / Math.max(scale, 1e-6), maxAbsDiff, scale };
}

/** Seeded inputs shaped [n, ...inputShape], as float32 NHWC. */
export function randomInputs(n: number, inputShape: readonly number[], pre: Preprocessing | null, seed: number): Float32Array {
  const random = mulberry32(seed);
  const x = new Float32Array(n * inputShape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < x.length; i++) x[i] = pre ? Math.floor(random() * 256) * pre.scale + pre.offset : random();
  return x;
}

/** What tfjs computes for the cut model on `x`, pooled as the converted model pools it (inference mode). */
export function tfjsReference(cut: tf.LayersModel, x: Float32Array, n: number, inputShape: readonly number[], pooling: OutputPooling): Float32Array {
  return tf.tidy(() => {
    const y = cut.apply(tf.tensor(x, [n, ...inputShape]), { training: false }) as tf.Tensor;
    const pooled = pooling === 'avg' ? y.mean([1, 2]) : pooling === 'flatten' ? y.reshape([n, -1]) : y;
    return pooled.dataSync() as Float32Array;
  }).slice();
}

export async function compareWithTfjs(
  cut: tf.LayersModel,
  runner: OnnxRunner,
  opts: { pooling: OutputPooling; preprocessing: Preprocessing | null; samples?: number; seed?: number },
): Promise<Equivalence> {
  const samples = opts.samples ?? 2;
  const seed = opts.seed ?? 20261128;
  const x = randomInputs(samples, runner.inputShape, opts.preprocessing, seed);
  const expected = tfjsReference(cut, x, samples, runner.inputShape, opts.pooling);
  const actual = await runner.run(x, samples);
  return { ...relativeError(actual, expected), samples, seed, tfBackend: tf.getBackend() };
}

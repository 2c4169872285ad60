import type * as tf from '@tensorflow/tfjs';

/**
 * Frees every weight of the given models (a base, its cut, a head and the model assembled from
 * them share layers). tfjs' own dispose() is reference-counted per layer and cannot free layers
 * shared by several containers, nor a base's layers above the cut, in one go.
 */
export function releaseWeights(models: readonly (tf.LayersModel | null | undefined)[]): void {
  for (const model of models) {
    for (const w of model?.weights ?? []) {
      const v = w.read();
      if (!v.isDisposed) v.dispose();
    }
  }
}

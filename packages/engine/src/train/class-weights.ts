/**
 * Per-class loss weights (`spec.classWeights`): each training sample's loss is multiplied by its
 * class's weight, as Keras' `class_weight` does. `auto` is scikit-learn's "balanced" rule,
 * n_samples / (n_classes × n_class), over the training split.
 */
import type { ClassWeights } from '@graft/contracts';
import { TrainingError } from '../errors.ts';

/**
 * One weight per class (output order), or null when every weight is 1 (`none`).
 * `trainCounts[c]` is the number of training images of class c. Classes a record omits weigh 1;
 * a record naming a class the dataset does not have is a TrainingError `invalid_class_weights`.
 */
export function resolveClassWeights(spec: ClassWeights, classes: readonly string[], trainCounts: readonly number[]): number[] | null {
  if (spec === 'none') return null;
  if (spec === 'auto') {
    const n = trainCounts.reduce((a, b) => a + b, 0);
    const k = classes.length;
    // A class with no training image gets no samples to weigh; give it 1 rather than Infinity.
    return trainCounts.map((c) => (c > 0 ? n / (k * c) : 1));
  }
  const unknown = Object.keys(spec).filter((name) => !classes.includes(name));
  if (unknown.length) {
    throw new TrainingError(
      'invalid_class_weights',
      `classWeights names ${unknown.map((u) => `"${u}"`).join(', ')}, not ${unknown.length === 1 ? 'a class' : 'classes'} of the dataset (${classes.join(', ')}).`,
    );
  }
  for (const [name, w] of Object.entries(spec)) {
    if (!(Number.isFinite(w) && w > 0)) throw new TrainingError('invalid_class_weights', `classWeights["${name}"] must be a positive number, not ${w}.`);
  }
  return classes.map((name) => spec[name] ?? 1);
}

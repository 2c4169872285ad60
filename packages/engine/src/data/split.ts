/** The stratified, seeded train/validation split, over examples of any task. */
import { TrainingError } from '../errors.ts';
import { mulberry32, shuffleInPlace } from '../util/random.ts';
import type { ClassCount, Example } from './example.ts';

export interface DatasetSplit {
  train: Example[];
  validation: Example[];
  /** Per class, in output order. */
  counts: ClassCount[];
}

/**
 * Holds out round(n × fraction) examples of each class, at least 1 when the class has 2 or more and
 * never its last one, so every class is trained on and (when possible) measured. Ids are sorted
 * before shuffling, so the split depends only on the seed and the set of ids, not the dataset's order.
 * `noun` names the examples in the error (`images`, `texts`).
 */
export function stratifiedSplit(examples: readonly Example[], classes: readonly string[], fraction: number, seed: number, noun = 'example'): DatasetSplit {
  const byClass = classes.map(() => [] as string[]);
  for (const e of examples) {
    const ids = byClass[e.label];
    if (!ids) throw new Error(`example ${e.id} has unknown class index ${e.label}`);
    ids.push(e.id);
  }
  const random = mulberry32(seed);
  const split: DatasetSplit = { train: [], validation: [], counts: [] };
  byClass.forEach((ids, label) => {
    ids.sort();
    shuffleInPlace(ids, random);
    const n = ids.length;
    const nVal = n < 2 ? 0 : Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
    if (n - nVal < 1) {
      throw new TrainingError('dataset_too_small', `Class "${classes[label]}" has ${n} ${noun}(s): none would be left to train on.`);
    }
    split.validation.push(...ids.slice(0, nVal).map((id) => ({ id, label })));
    split.train.push(...ids.slice(nVal).map((id) => ({ id, label })));
    split.counts.push({ name: classes[label]!, train: n - nVal, validation: nVal });
  });
  return split;
}

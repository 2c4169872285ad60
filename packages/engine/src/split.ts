/** The stratified, seeded train/validation split. */
import type { ArchiveImage } from './dataset-archive.ts';
import { TrainingError } from './errors.ts';
import { mulberry32, shuffleInPlace } from './random.ts';

export interface LabelledImage {
  path: string;
  /** Output index of the class. */
  label: number;
}

export interface DatasetSplit {
  train: LabelledImage[];
  validation: LabelledImage[];
  /** Per class, in output order. */
  counts: { name: string; train: number; validation: number }[];
}

/**
 * Holds out round(n × fraction) images of each class, at least 1 when the class has 2 or more and
 * never its last one, so every class is trained on and (when possible) measured. Paths are sorted
 * before shuffling, so the split depends only on the seed and the set of paths, not archive order.
 */
export function stratifiedSplit(images: readonly ArchiveImage[], classes: readonly string[], fraction: number, seed: number): DatasetSplit {
  const byClass = classes.map(() => [] as string[]);
  const index = new Map(classes.map((c, i) => [c, i]));
  for (const img of images) {
    const label = index.get(img.className);
    if (label === undefined) throw new Error(`image ${img.path} has unknown class ${img.className}`);
    byClass[label]!.push(img.path);
  }
  const random = mulberry32(seed);
  const split: DatasetSplit = { train: [], validation: [], counts: [] };
  byClass.forEach((paths, label) => {
    paths.sort();
    shuffleInPlace(paths, random);
    const n = paths.length;
    const nVal = n < 2 ? 0 : Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
    if (n - nVal < 1) {
      throw new TrainingError('dataset_too_small', `Class "${classes[label]}" has ${n} image(s): none would be left to train on.`);
    }
    split.validation.push(...paths.slice(0, nVal).map((path) => ({ path, label })));
    split.train.push(...paths.slice(nVal).map((path) => ({ path, label })));
    split.counts.push({ name: classes[label]!, train: n - nVal, validation: nVal });
  });
  return split;
}

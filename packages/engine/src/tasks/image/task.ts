/**
 * Image classification as a `Task`: datasets are zips of class folders of JPEG/PNG images (an
 * example's id is its path in the archive), model input is [n, height, width, channels] float32
 * after the base's preprocessing, augmentation applies, bundles carry `preprocessing.json`.
 */
import { GraftError } from '@graft/contracts';
import type { Example } from '../../data/example.ts';
import { TrainingError } from '../../errors.ts';
import type { Task, TaskDataset } from '../task.ts';
import { imageBundle } from './bundle.ts';
import { inspectArchive, type ArchiveInspection } from './dataset-archive.ts';
import { openImageEncoder } from './encoder.ts';

export const imageTask: Task = {
  name: 'image-classification',
  units: { one: 'image', many: 'images', countField: 'images', inputIdentity: 'preprocessing' },
  augments: true,
  readDataset: readImageDataset,
  openEncoder: openImageEncoder,
  bundle: imageBundle,
};

/** An archive as examples: classes sorted by name, each image once (a repeated entry name counts once). */
export async function readImageDataset(path: string): Promise<TaskDataset> {
  const inspection = await inspectDataset(path);
  const classes = inspection.classes.map((c) => c.name);
  const index = new Map(classes.map((c, i) => [c, i]));
  const seen = new Set<string>();
  const examples: Example[] = [];
  for (const image of inspection.images) {
    if (seen.has(image.path)) continue;
    seen.add(image.path);
    examples.push({ id: image.path, label: index.get(image.className)! });
  }
  return { classes, classCounts: inspection.classes.map((c) => c.images), examples, total: inspection.images.length, skipped: inspection.skipped.length };
}

/** inspectArchive's GraftErrors (bad archive) become TrainingErrors under the same code. */
async function inspectDataset(path: string): Promise<ArchiveInspection> {
  try {
    return await inspectArchive(path);
  } catch (err) {
    if (err instanceof GraftError) throw new TrainingError(err.code, err.message);
    throw err;
  }
}

/**
 * Stage 1, prepare the data: the dataset read by the task, split (stratified, seeded), the
 * imbalance warning, class weights resolved, the test set checked. All cheap, all before any
 * model work, so a bad request fails in seconds.
 */
import { stat } from 'node:fs/promises';
import type { Example } from '../../data/example.ts';
import { stratifiedSplit, type DatasetSplit } from '../../data/split.ts';
import { TrainingError } from '../../errors.ts';
import { clampTopK } from '../../evaluate/metrics.ts';
import type { Task } from '../../tasks/task.ts';
import { resolveClassWeights } from '../../train/class-weights.ts';
import { sha256File } from '../../util/hash.ts';
import type { RunContext } from '../context.ts';

/** Largest class / smallest class above this → an `imbalance` warning (the Dataset contract's threshold). */
export const IMBALANCE_RATIO = 3;

export interface PreparedData {
  /** Class names in output order. */
  classes: string[];
  split: DatasetSplit;
  /** One per class (output order), or null when all are 1. */
  classWeights: number[] | null;
  /** The test set, labels in the training classes' indices, sorted by id. */
  testSet: { path: string; examples: Example[] } | null;
  /** Top-k's k, clamped to the number of classes. */
  topK: number;
  /** sha256 of the dataset file (cache keys). */
  sha256: string;
}

export async function prepareData(ctx: RunContext, paths: { datasetPath: string; testDatasetPath?: string | null }): Promise<PreparedData> {
  const { spec, task } = ctx;
  const { many } = task.units;
  const dataset = await task.readDataset(paths.datasetPath);
  const { classes } = dataset;
  const split = stratifiedSplit(dataset.examples, classes, spec.validationSplit, spec.seed, task.units.one);
  await ctx.emit({
    level: 'info',
    type: 'dataset',
    message: `${split.train.length} training and ${split.validation.length} validation ${many} in ${classes.length} classes.`,
    data: { classes: split.counts, skipped: dataset.skipped },
  });
  const ratio = Math.max(...dataset.classCounts) / Math.min(...dataset.classCounts);
  if (ratio > IMBALANCE_RATIO) {
    await ctx.emit({
      level: 'warning',
      type: 'imbalance',
      message:
        `The largest class has ${ratio.toFixed(1)}x the ${many} of the smallest: expect predictions biased towards large classes.` +
        (spec.classWeights === 'none' ? ' Set classWeights: "auto" to weigh each class by the inverse of its size.' : ''),
      data: { imbalanceRatio: ratio, classWeights: spec.classWeights },
    });
  }
  const classWeights = resolveClassWeights(spec.classWeights, classes, split.counts.map((c) => c.train));
  if (classWeights) {
    await ctx.emit({
      level: 'info',
      type: 'class_weights',
      message: `Class weights: ${classes.map((c, i) => `${c} ${classWeights[i]!.toFixed(3)}`).join(', ')}.`,
      data: { classWeights: Object.fromEntries(classes.map((c, i) => [c, classWeights[i]])) },
    });
  }
  const testSet = paths.testDatasetPath ? await readTestSet(task, paths.testDatasetPath, classes) : null;
  const sha256 = await sha256File(paths.datasetPath);
  const bytes = (await stat(paths.datasetPath)).size;
  const { countField } = task.units;
  ctx.record.dataset = { id: spec.dataset, sha256, bytes, [countField]: dataset.total, skipped: dataset.skipped, classes: split.counts };
  ctx.record.testDataset = testSet ? { id: spec.testDataset, sha256: testSet.sha256, [countField]: testSet.examples.length } : null;
  ctx.record.classWeights = classWeights ? Object.fromEntries(classes.map((c, i) => [c, classWeights[i]!])) : null;
  ctx.record.split = { train: split.train.map((e) => e.id), validation: split.validation.map((e) => e.id) };
  ctx.checkCancelled();
  return {
    classes,
    split,
    classWeights,
    testSet: testSet && { path: paths.testDatasetPath!, examples: testSet.examples },
    topK: clampTopK(spec.topK, classes.length),
    sha256,
  };
}

/** A test dataset: its classes must all be training classes (TrainingError `class_mismatch`). */
async function readTestSet(task: Task, path: string, classes: readonly string[]): Promise<{ examples: Example[]; sha256: string }> {
  const test = await task.readDataset(path);
  const unknown = test.classes.filter((c) => !classes.includes(c));
  if (unknown.length) {
    throw new TrainingError(
      'class_mismatch',
      `The test dataset has classes the training dataset does not: ${unknown.join(', ')} (training classes: ${classes.join(', ')}).`,
    );
  }
  const examples = test.examples
    .map((e) => ({ id: e.id, label: classes.indexOf(test.classes[e.label]!) }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { examples, sha256: await sha256File(path) };
}

/**
 * Assembles the fine-tuned inference model (cut base + head as one flat graph) and packs it with
 * what a client needs to use it into model.zip: model.json, weights.bin, labels.json,
 * preprocessing.json, training.json.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '@graft/contracts';
import { parseWith, Preprocessing as PreprocessingSchema } from '@graft/contracts';
import { readArchiveImages } from './dataset-archive.ts';
import type { Head } from './head.ts';
import { directorySaver, jsonLoader, WEIGHTS_FILE } from './model-io.ts';
import { writeZip } from './zip-writer.ts';

export const MODEL_FILES = ['model.json', WEIGHTS_FILE, 'labels.json', 'preprocessing.json', 'training.json'] as const;

/**
 * The head's layers applied directly to the cut base's output, so the saved model is one graph of
 * plain layers (no nested model) that any tfjs/Keras loader reads. Shares weights with `cut` and `head`.
 */
export function assembleInferenceModel(cut: tf.LayersModel, head: Head): tf.LayersModel {
  let x = cut.outputs[0]!;
  if (head.pool) x = head.pool.apply(x) as tf.SymbolicTensor;
  x = head.dense.apply(x) as tf.SymbolicTensor;
  x = head.dropout.apply(x) as tf.SymbolicTensor;
  x = head.output.apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: cut.inputs, outputs: x, name: 'graft_fine_tune' });
}

/** Writes `<outDir>/model/` and zips its files (at the zip root) to `<outDir>/model.zip`. */
export async function exportModel(opts: {
  model: tf.LayersModel;
  labels: readonly string[];
  preprocessing: Preprocessing;
  training: Record<string, unknown>;
  outDir: string;
}): Promise<{ zipPath: string; bytes: number }> {
  const dir = join(opts.outDir, 'model');
  await mkdir(dir, { recursive: true });
  await opts.model.save(directorySaver(dir));
  await writeFile(join(dir, 'labels.json'), JSON.stringify(opts.labels, null, 2));
  await writeFile(join(dir, 'preprocessing.json'), JSON.stringify(opts.preprocessing, null, 2));
  await writeFile(join(dir, 'training.json'), JSON.stringify(opts.training, null, 2));
  const files = await Promise.all(MODEL_FILES.map(async (name) => ({ name, data: await readFile(join(dir, name)) })));
  const zipPath = join(opts.outDir, 'model.zip');
  const bytes = await writeZip(zipPath, files);
  return { zipPath, bytes };
}

export interface LoadedModelZip {
  model: tf.LayersModel;
  /** Class names in output order. */
  labels: string[];
  preprocessing: Preprocessing;
  training: Record<string, unknown> | null;
}

/** Loads a model.zip written by `fineTune`. Needs an initialised backend (see initBackend). */
export async function loadModelZip(zipPath: string): Promise<LoadedModelZip> {
  const files = new Map<string, Buffer>();
  for await (const { path, data } of readArchiveImages(zipPath, new Set(MODEL_FILES))) files.set(path, data);
  const text = (name: string) => {
    const data = files.get(name);
    if (!data) throw new Error(`${zipPath} has no ${name}`);
    return data.toString('utf8');
  };
  const model = await tf.loadLayersModel(
    jsonLoader(JSON.parse(text('model.json')) as tf.io.ModelJSON, async (p) => {
      const data = files.get(p);
      if (!data) throw new Error(`${zipPath} has no weights file ${p}`);
      return data;
    }),
  );
  const labels = JSON.parse(text('labels.json')) as unknown;
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) throw new Error('labels.json is not an array of strings');
  const preprocessing = parseWith(PreprocessingSchema, JSON.parse(text('preprocessing.json')), 'preprocessing.json');
  const training = files.has('training.json') ? (JSON.parse(text('training.json')) as Record<string, unknown>) : null;
  return { model, labels, preprocessing, training };
}

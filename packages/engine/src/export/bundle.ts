/**
 * The model bundle a job exports (and every checkpoint): `model.json` + `weights.bin` (the full
 * inference model, or the head alone when the encoder is not a tfjs layers model), `labels.json`
 * (class names in output order), the task's files (image: `preprocessing.json`, a graph base;
 * text: tokenizer files…), then `training.json` (what the job did), zipped with fixed timestamps.
 */
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { directorySaver, modelFileBytes, WEIGHTS_FILE } from '../bases/model-io.ts';
import { writeZip, type ZipInput } from '../util/zip.ts';

export interface ModelFiles {
  /** The full inference model, or the head on the encoder's output. */
  model: tf.LayersModel;
  labels: readonly string[];
  /** The task's files (`TaskEncoder.bundleFiles`). */
  taskFiles: readonly ZipInput[];
  training: Record<string, unknown>;
  /** Files after training.json (the final model's card). */
  extra?: readonly ZipInput[];
}

/** Writes `<outDir>/model/` and zips its files (at the zip root) to `<outDir>/model.zip`. */
export async function exportModel(opts: ModelFiles & { outDir: string }): Promise<{ zipPath: string; bytes: number }> {
  const dir = join(opts.outDir, 'model');
  const zipPath = join(opts.outDir, 'model.zip');
  const bytes = await writeBundle(opts, dir, zipPath);
  return { zipPath, bytes };
}

/** The same files as `exportModel`, as one zip at `zipPath` only (checkpoints), written to a temporary name and renamed into place. */
export async function writeModelZip(opts: ModelFiles & { zipPath: string }): Promise<{ zipPath: string; bytes: number }> {
  const { entries } = await bundleEntries(opts);
  const tmp = `${opts.zipPath}.${randomUUID()}.tmp`;
  try {
    const bytes = await writeZip(tmp, entries);
    await rename(tmp, opts.zipPath);
    return { zipPath: opts.zipPath, bytes };
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * The bundle's entries in zip order, in memory (the weights copied as they are now, so training
 * may go on while they are written), and its model.json.
 */
export async function bundleEntries(opts: ModelFiles): Promise<{ entries: ZipInput[]; modelJson: tf.io.ModelJSON }> {
  const model = await modelFileBytes(opts.model);
  const entries: ZipInput[] = [
    { name: 'model.json', data: model.modelJsonBytes },
    { name: WEIGHTS_FILE, data: model.weights },
    ...restOf(opts),
  ];
  return { entries, modelJson: model.modelJson };
}

/** The files after the model's, in zip order. */
function restOf(opts: ModelFiles): ZipInput[] {
  return [
    { name: 'labels.json', data: Buffer.from(JSON.stringify(opts.labels, null, 2)) },
    ...opts.taskFiles,
    { name: 'training.json', data: Buffer.from(JSON.stringify(opts.training, null, 2)) },
    ...(opts.extra ?? []),
  ];
}

async function writeBundle(opts: ModelFiles, dir: string, zipPath: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  await opts.model.save(directorySaver(dir));
  const rest = restOf(opts);
  // Every file also lands in `dir` (the final model's directory is kept beside its zip).
  for (const e of rest) {
    await mkdir(dirname(join(dir, e.name)), { recursive: true });
    if ('file' in e) await copyFile(e.file, join(dir, e.name));
    else await writeFile(join(dir, e.name), e.data);
  }
  // In memory except a task's files on disk (a large encoder), which are streamed into the zip.
  const files: ZipInput[] = [
    { name: 'model.json', data: await readFile(join(dir, 'model.json')) },
    { name: WEIGHTS_FILE, data: await readFile(join(dir, WEIGHTS_FILE)) },
    ...rest,
  ];
  const tmp = `${zipPath}.${randomUUID()}.tmp`;
  try {
    const bytes = await writeZip(tmp, files);
    await rename(tmp, zipPath);
    return bytes;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

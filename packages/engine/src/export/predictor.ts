/**
 * The one loader of model bundles: any model zip a job exported (or a checkpoint), whatever its
 * task, loaded into a predictor from raw inputs — image bytes, or texts.
 *
 * ```ts
 * const model = await loadPredictor('model.zip');
 * const [p] = await model.predict([await readFile('cat.jpg')]);
 * p.label; p.probabilities; p.topK   // 'cat', [0.91, 0.06, …] in model.labels order, [{ label, probability }, …]
 * ```
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOP_K_DEFAULT } from '@graft/contracts';
import { MODEL_ZIP_LIMITS } from '../bases/model-zip.ts';
import { allTasks } from '../tasks/index.ts';
import type { RawInput, TaskName } from '../tasks/task.ts';
import { openZip, readZipEntry, zipEntries } from '../util/zip.ts';
import { assembleHeadCheckpoint, HEAD_CHECKPOINT_FILE } from './head-checkpoint.ts';

export interface Prediction {
  /** The most probable class (the first of equals). */
  label: string;
  /** One per class, in the predictor's `labels` order (an array, not a record: class names are data). */
  probabilities: number[];
  /** The `topK` most probable classes, most probable first. */
  topK: { label: string; probability: number }[];
}

export interface Predictor {
  task: TaskName;
  /** Class names in output order. */
  labels: string[];
  /** The bundle's training.json (what the job did and scored), or null. */
  training: Record<string, unknown> | null;
  /**
   * What computes the predictions: `onnx` (an image model converted and checked against tfjs, or a
   * text bundle's ONNX encoder with its head in tfjs) or `tfjs`, and why not ONNX when it was asked for.
   */
  runtime: { name: 'onnx' | 'tfjs'; reason: string | null; relError?: number };
  /**
   * Predictions in input order. An input of the wrong kind (a string for an image model) is a
   * TypeError; one that cannot be read is a TrainingError (`unreadable_image`).
   */
  predict(inputs: readonly RawInput[], opts?: { topK?: number }): Promise<Prediction[]>;
  dispose(): void;
}

/** A head checkpoint (base frozen) is assembled with the template beside it into the complete model first. */
async function readBundleOrAssemble(zipPath: string): Promise<Map<string, Uint8Array>> {
  const files = await readBundle(zipPath);
  if (!files.has(HEAD_CHECKPOINT_FILE)) return files;
  const dir = await mkdtemp(join(tmpdir(), 'graft-checkpoint-'));
  try {
    const assembled = join(dir, 'model.zip');
    await assembleHeadCheckpoint(zipPath, assembled);
    return await readBundle(assembled);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Loads a model zip written by `fineTune` (or a checkpoint). Needs an initialised backend (`initBackend`). */
export interface LoadPredictorOptions {
  /** A text bundle whose ONNX encoder was too large to ship names it (text.json: sha256, source): its file on disk. */
  encoderPath?: string;
  /**
   * `onnx`: an image layers model runs on ONNX Runtime once graft's converter converts it and it
   * matches tfjs on seeded inputs (max relative error < 1e-4 on the probabilities); else, and by
   * default, tfjs. `Predictor.runtime` says which.
   */
  runtime?: 'onnx' | 'tfjs';
}

export async function loadPredictor(zipPath: string, opts: LoadPredictorOptions = {}): Promise<Predictor> {
  const files = await readBundleOrAssemble(zipPath);
  const names = new Set(files.keys());
  const task = (await allTasks()).find((t) => t.bundle.recognises(names));
  if (!task) throw new Error(`${zipPath} is not a graft model bundle (entries: ${[...names].slice(0, 10).join(', ')})`);
  const labels = JSON.parse(text(files, 'labels.json', zipPath)) as unknown;
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) throw new Error(`${zipPath}: labels.json is not an array of strings`);
  const training = files.has('training.json') ? (JSON.parse(text(files, 'training.json', zipPath)) as Record<string, unknown>) : null;
  const loaded = await task.bundle.load(files, zipPath, opts);
  return {
    task: task.name,
    labels,
    training,
    runtime: loaded.runtime ?? { name: 'tfjs', reason: null },
    predict: async (inputs, opts = {}) => {
      const k = Math.max(1, Math.min(Math.floor(opts.topK ?? TOP_K_DEFAULT), labels.length));
      const probs = await loaded.probabilities(inputs);
      const c = labels.length;
      return inputs.map((_, i) => {
        const row = Array.from(probs.subarray(i * c, (i + 1) * c));
        const order = row.map((p, j) => j).sort((a, b) => row[b]! - row[a]! || a - b);
        return {
          label: labels[order[0]!]!,
          probabilities: row,
          topK: order.slice(0, k).map((j) => ({ label: labels[j]!, probability: row[j]! })),
        };
      });
    },
    dispose: () => loaded.dispose(),
  };
}

function text(files: ReadonlyMap<string, Uint8Array>, name: string, source: string): string {
  const data = files.get(name);
  if (!data) throw new Error(`${source} has no ${name}`);
  return Buffer.from(data).toString('utf8');
}

/** Every file of a bundle by name, within the model-zip limits (counted as they are inflated). */
async function readBundle(zipPath: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const zip = await openZip(zipPath);
  let total = 0;
  try {
    for await (const entry of zipEntries(zip)) {
      if (entry.fileName.endsWith('/')) continue;
      if (files.size >= MODEL_ZIP_LIMITS.maxEntries) throw new Error(`${zipPath} has more than ${MODEL_ZIP_LIMITS.maxEntries} files`);
      const data = await readZipEntry(zip, entry, Math.min(MODEL_ZIP_LIMITS.maxFileBytes, MODEL_ZIP_LIMITS.maxTotalBytes - total));
      total += data.length;
      files.set(entry.fileName, data);
    }
  } finally {
    zip.close();
  }
  return files;
}

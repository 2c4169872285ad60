/**
 * Assembles the fine-tuned inference model (cut base + head as one flat graph) and packs it with
 * what a client needs to use it into model.zip: model.json, weights.bin, labels.json,
 * preprocessing.json, training.json.
 *
 * A graph base (tfjs graph model, a frozen feature extractor) cannot be merged into a layers graph:
 * its zip also holds `base/model.json` + `base/weights.bin` (the graph) and `pipeline.json`
 * ({ kind: 'graph+head', featureNode }); `model.json` is then the head alone, taking the graph's
 * feature node output. `loadModelZip` handles both and gives a `predict` for either.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '@graft/contracts';
import { parseWith, Preprocessing as PreprocessingSchema } from '@graft/contracts';
import { readArchiveImages } from './dataset-archive.ts';
import type { Head } from './head.ts';
import { directorySaver, jsonLoader, WEIGHTS_FILE } from './model-io.ts';
import { writeZip } from './zip-writer.ts';

export const MODEL_FILES = ['model.json', WEIGHTS_FILE, 'labels.json', 'preprocessing.json', 'training.json'] as const;
/** Extra files of a zip whose base is a graph model. */
export const GRAPH_PIPELINE_FILES = ['pipeline.json', 'base/model.json', `base/${WEIGHTS_FILE}`] as const;

export interface GraphPipeline {
  kind: 'graph+head';
  /** The graph (relative to the zip root) and the node whose output feeds the head. */
  base: string;
  featureNode: string;
  head: string;
}

/**
 * The head's layers applied directly to the cut base's output, so the saved model is one graph of
 * plain layers (no nested model) that any tfjs/Keras loader reads. Shares weights with `cut` and `head`.
 */
export function assembleInferenceModel(cut: tf.LayersModel, head: Head): tf.LayersModel {
  return tf.model({ inputs: cut.inputs, outputs: applyHead(cut.outputs[0]!, head), name: 'graft_fine_tune' });
}

/** The head (with its pooling) as a model on raw feature maps of `featureShape` (graph bases). */
export function assembleHeadModel(featureShape: readonly number[], head: Head): tf.LayersModel {
  const input = tf.input({ shape: [...featureShape], name: 'graft_head_features' });
  return tf.model({ inputs: input, outputs: applyHead(input, head), name: 'graft_fine_tune_head' });
}

function applyHead(x: tf.SymbolicTensor, head: Head): tf.SymbolicTensor {
  if (head.pool) x = head.pool.apply(x) as tf.SymbolicTensor;
  if (head.dense) x = head.dense.apply(x) as tf.SymbolicTensor;
  x = head.dropout.apply(x) as tf.SymbolicTensor;
  return head.output.apply(x) as tf.SymbolicTensor;
}

export interface ModelFiles {
  /** The full inference model, or (with `graphBase`) the head on the graph's features. */
  model: tf.LayersModel;
  graphBase?: { model: tf.GraphModel; featureNode: string } | null;
  labels: readonly string[];
  preprocessing: Preprocessing;
  training: Record<string, unknown>;
}

/** Writes `<outDir>/model/` and zips its files (at the zip root) to `<outDir>/model.zip`. */
export async function exportModel(opts: ModelFiles & { outDir: string }): Promise<{ zipPath: string; bytes: number }> {
  const dir = join(opts.outDir, 'model');
  const zipPath = join(opts.outDir, 'model.zip');
  const bytes = await writeModelDir(opts, dir, zipPath);
  return { zipPath, bytes };
}

/**
 * The same files as `exportModel`, as one zip at `zipPath` only (checkpoints): staged in a
 * temporary directory beside it, zipped to a temporary name and renamed into place.
 */
export async function writeModelZip(opts: ModelFiles & { zipPath: string }): Promise<{ zipPath: string; bytes: number }> {
  const dir = `${opts.zipPath}.${randomUUID()}.d`;
  try {
    const bytes = await writeModelDir(opts, dir, opts.zipPath);
    return { zipPath: opts.zipPath, bytes };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function writeModelDir(opts: ModelFiles, dir: string, zipPath: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  await opts.model.save(directorySaver(dir));
  await writeFile(join(dir, 'labels.json'), JSON.stringify(opts.labels, null, 2));
  await writeFile(join(dir, 'preprocessing.json'), JSON.stringify(opts.preprocessing, null, 2));
  await writeFile(join(dir, 'training.json'), JSON.stringify(opts.training, null, 2));
  const names: string[] = [...MODEL_FILES];
  if (opts.graphBase) {
    await opts.graphBase.model.save(graphSaver(join(dir, 'base')));
    const pipeline: GraphPipeline = { kind: 'graph+head', base: 'base/model.json', featureNode: opts.graphBase.featureNode, head: 'model.json' };
    await writeFile(join(dir, 'pipeline.json'), JSON.stringify(pipeline, null, 2));
    names.push(...GRAPH_PIPELINE_FILES);
  }
  const files = await Promise.all(names.map(async (name) => ({ name, data: await readFile(join(dir, name)) })));
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

/** Saves a graph model's artifacts as `<dir>/model.json` + `<dir>/weights.bin`, keeping its signature and initializer. */
function graphSaver(dir: string): tf.io.IOHandler {
  return {
    save: async (a) => {
      if (!(a.modelTopology && a.weightSpecs && a.weightData)) throw new Error('graph model artifacts lack topology or weights');
      const modelJson: tf.io.ModelJSON = {
        modelTopology: a.modelTopology,
        format: a.format ?? 'graph-model',
        generatedBy: a.generatedBy,
        convertedBy: a.convertedBy,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: a.weightSpecs }],
        ...(a.signature ? { signature: a.signature } : {}),
        ...(a.userDefinedMetadata ? { userDefinedMetadata: a.userDefinedMetadata } : {}),
        ...(a.modelInitializer ? { modelInitializer: a.modelInitializer } : {}),
        ...(a.initializerSignature ? { initializerSignature: a.initializerSignature } : {}),
      };
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
      await writeFile(join(dir, WEIGHTS_FILE), new Uint8Array(new tf.io.CompositeArrayBuffer(a.weightData).slice()));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    },
  };
}

export interface LoadedModelZip {
  /** The full inference model; for a graph-base zip, the head (on the graph's features). */
  model: tf.LayersModel;
  /** The graph base of a `graph+head` zip, else null. */
  base: tf.GraphModel | null;
  /** Images [n, h, w, c] (preprocessed) → class probabilities [n, classes], whatever the zip's kind. */
  predict(x: tf.Tensor4D): tf.Tensor2D;
  /** Class names in output order. */
  labels: string[];
  preprocessing: Preprocessing;
  training: Record<string, unknown> | null;
  dispose(): void;
}

/** Loads a model.zip written by `fineTune` (or a checkpoint). Needs an initialised backend (see initBackend). */
export async function loadModelZip(zipPath: string): Promise<LoadedModelZip> {
  const files = new Map<string, Buffer>();
  for await (const { path, data } of readArchiveImages(zipPath, new Set([...MODEL_FILES, ...GRAPH_PIPELINE_FILES]))) files.set(path, data);
  const text = (name: string) => {
    const data = files.get(name);
    if (!data) throw new Error(`${zipPath} has no ${name}`);
    return data.toString('utf8');
  };
  const load = (prefix: string) => (p: string) => {
    const data = files.get(prefix + p);
    if (!data) throw new Error(`${zipPath} has no weights file ${prefix + p}`);
    return Promise.resolve(data);
  };
  const model = await tf.loadLayersModel(jsonLoader(JSON.parse(text('model.json')) as tf.io.ModelJSON, load('')));
  let base: tf.GraphModel | null = null;
  let predict = (x: tf.Tensor4D) => model.predict(x) as tf.Tensor2D;
  if (files.has('pipeline.json')) {
    const pipeline = JSON.parse(text('pipeline.json')) as GraphPipeline;
    if (pipeline.kind !== 'graph+head') throw new Error(`${zipPath}: unknown pipeline kind ${String(pipeline.kind)}`);
    const graph = await tf.loadGraphModel(jsonLoader(JSON.parse(text('base/model.json')) as tf.io.ModelJSON, load('base/')));
    base = graph;
    const input = graph.inputs[0]!.name;
    predict = (x) => tf.tidy(() => model.predict(graph.execute({ [input]: x }, pipeline.featureNode) as tf.Tensor) as tf.Tensor2D);
  }
  const labels = JSON.parse(text('labels.json')) as unknown;
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) throw new Error('labels.json is not an array of strings');
  const preprocessing = parseWith(PreprocessingSchema, JSON.parse(text('preprocessing.json')), 'preprocessing.json');
  const training = files.has('training.json') ? (JSON.parse(text('training.json')) as Record<string, unknown>) : null;
  return {
    model,
    base,
    predict,
    labels,
    preprocessing,
    training,
    dispose: () => {
      model.dispose();
      base?.dispose();
    },
  };
}

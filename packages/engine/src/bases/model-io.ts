/**
 * tfjs IOHandlers for Node without tfjs-node (which is what provides `file://`): load a layers model
 * from model.json + weight files held anywhere (a directory, a zip, JS modules), and save one as
 * `model.json` + a single `weights.bin`.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, normalize, isAbsolute } from 'node:path';
import * as tf from '@tensorflow/tfjs';

export const WEIGHTS_FILE = 'weights.bin';

/** Reads one weight file named by a manifest `paths` entry, relative to model.json. */
export type WeightFileReader = (relativePath: string) => Promise<Uint8Array>;

/** An IOHandler that loads a parsed model.json, fetching its weight files through `readWeights`. */
export function jsonLoader(modelJson: tf.io.ModelJSON, readWeights: WeightFileReader): tf.io.IOHandler {
  return {
    load: () =>
      tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) buffers.push(toArrayBuffer(await readWeights(p)));
        }
        return [specs, tf.io.concatenateArrayBuffers(buffers)];
      }),
  };
}

/** Loads `<dir>/model.json` and the weight files its manifest names (paths confined to `dir`). */
export async function directoryLoader(dir: string): Promise<tf.io.IOHandler> {
  const modelJson = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  return jsonLoader(modelJson, async (p) => {
    const rel = normalize(p);
    if (isAbsolute(rel) || rel.startsWith('..')) throw new Error(`weights path "${p}" leaves the model directory`);
    return readFile(join(dir, rel));
  });
}

/** A layers model's `model.json` (one weights.bin in its manifest) and `weights.bin`, as bytes. */
export interface ModelFileBytes {
  modelJson: tf.io.ModelJSON;
  modelJsonBytes: Buffer;
  weights: Uint8Array;
}

function filesOf(artifacts: tf.io.ModelArtifacts): ModelFileBytes {
  if (!(artifacts.modelTopology && artifacts.weightSpecs && artifacts.weightData)) {
    throw new Error('model artifacts lack topology or weights');
  }
  const weights = new Uint8Array(new tf.io.CompositeArrayBuffer(artifacts.weightData).slice());
  const modelJson: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology,
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: artifacts.convertedBy ?? null,
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs }],
  };
  return { modelJson, modelJsonBytes: Buffer.from(JSON.stringify(modelJson)), weights };
}

/** Saves as `<dir>/model.json` + `<dir>/weights.bin`, the manifest path relative to model.json. */
export function directorySaver(dir: string): tf.io.IOHandler {
  return {
    save: async (artifacts) => {
      const files = filesOf(artifacts);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'model.json'), files.modelJsonBytes);
      await writeFile(join(dir, WEIGHTS_FILE), files.weights);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
  };
}

/** The bytes `directorySaver` would write, in memory (a copy of the weights as they are now). */
export async function modelFileBytes(model: tf.LayersModel): Promise<ModelFileBytes> {
  let files: ModelFileBytes | null = null;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      files = filesOf(artifacts);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  return files!;
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  // A Node Buffer may be a view into a larger shared pool: copy out exactly its bytes.
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

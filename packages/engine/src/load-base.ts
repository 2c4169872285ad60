/** Loads a catalog entry as a tfjs LayersModel and cuts it at its feature layer. */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BaseModel } from '@graft/contracts';
import { getBaseModel, getBaseModelSource, type BaseModelSource } from './catalog.ts';
import { TrainingError } from './errors.ts';
import { directoryLoader, jsonLoader } from './model-io.ts';

const require = createRequire(import.meta.url);

export interface LoadedBase {
  info: BaseModel;
  model: tf.LayersModel;
}

/** Throws TrainingError `base_model_unavailable` when the id is unknown or its weights cannot be read. */
export async function loadBaseModel(id: string): Promise<LoadedBase> {
  const info = getBaseModel(id);
  const source = getBaseModelSource(id);
  if (!info || !source) throw new TrainingError('base_model_unavailable', `Unknown base model "${id}".`);
  try {
    const model = await tf.loadLayersModel(await ioHandlerFor(source));
    return { info, model };
  } catch (err) {
    throw new TrainingError('base_model_unavailable', `Base model "${id}" cannot be loaded: ${(err as Error).message}`);
  }
}

async function ioHandlerFor(source: BaseModelSource): Promise<tf.io.IOHandler> {
  switch (source.kind) {
    case 'directory':
      return directoryLoader(source.dir);
    case 'nsfwjs':
      return nsfwjsLoader(source.model);
  }
}

/**
 * nsfwjs ships each model as UMD modules: `model.min.js` exports the model.json object and
 * `group1-shardNofM.min.js` export the weight shards as base64 strings (uint8-quantized; tfjs
 * dequantizes them from the manifest).
 */
function nsfwjsLoader(name: string): tf.io.IOHandler {
  // The package's exports map hides dist/models; resolve its entry point and walk from there.
  const dir = join(dirname(require.resolve('nsfwjs')), '..', 'models', name);
  const modelJson = require(join(dir, 'model.min.js')) as tf.io.ModelJSON;
  return jsonLoader(modelJson, async (p) => {
    if (!/^[\w-]+$/.test(p)) throw new Error(`unexpected shard name "${p}"`);
    const base64 = require(join(dir, `${p}.min.js`)) as unknown;
    if (typeof base64 !== 'string') throw new Error(`shard ${p} is not a base64 string`);
    return Buffer.from(base64, 'base64');
  });
}

/** The frozen part of a base: its input up to the feature layer. Shares the base's weights. */
export function cutAtFeatureLayer(base: tf.LayersModel, featureLayer: string): tf.LayersModel {
  const output = base.getLayer(featureLayer).output;
  if (Array.isArray(output)) throw new Error(`feature layer "${featureLayer}" has several outputs`);
  const cut = tf.model({ inputs: base.inputs, outputs: output, name: `${base.name}_cut` });
  for (const layer of cut.layers) layer.trainable = false;
  return cut;
}

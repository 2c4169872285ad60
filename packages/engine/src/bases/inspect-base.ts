/**
 * Checks a base a user brings (uploaded zip, or a hosted model fetched into a directory) before
 * graft accepts it: it loads, takes one [h, w, c] image input matching the claimed preprocessing,
 * the claimed feature layer (layers) or node (graph) exists and gives rank-1 or rank-3 features,
 * and one forward pass on zeros works. Every failure is TrainingError `invalid_base_model` with a
 * message saying exactly what is wrong. Meant to run in a child process (src/cli/inspect-base.ts):
 * loading a model is CPU-bound.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '@graft/contracts';
import { initBackend } from '../backend/backend.ts';
import { TrainingError } from '../errors.ts';
import { assertFeatureNode, detectModelFormat, graphNodes, runGraphToNode, type ModelFormat } from './graph-base.ts';
import { safeRelativePath } from './hosted-cache.ts';
import { jsonLoader } from './model-io.ts';

export { unpackModelZip, MODEL_ZIP_LIMITS, type ModelZipLimits, type UnpackedModelZip } from './model-zip.ts';

export interface ClaimedBase {
  featureLayer: string;
  /** `resize` may be absent (bilinear is the only one). */
  preprocessing: Omit<Preprocessing, 'resize'> & { resize?: Preprocessing['resize'] };
  format?: ModelFormat;
}

export interface BaseInspection {
  format: ModelFormat;
  /** [height, width, channels], as BaseModel.inputShape. */
  inputShape: number[];
  featureLayer: string;
  /** Per-image shape of the features, without the batch axis: [h, w, c] or [n]. */
  featureShape: number[];
  /** Layers (layers model) or computing nodes (graph model). */
  layers: number;
  params: number;
  /** model.json + weight files. */
  bytes: number;
}

const invalid = (message: string) => new TrainingError('invalid_base_model', message);

export async function inspectUserBase(input: { dir: string }, claimed: ClaimedBase): Promise<BaseInspection> {
  const { dir } = input;
  const pre = claimed.preprocessing;
  if (!pre || ![pre.height, pre.width].every((v) => Number.isInteger(v) && v > 0) || (pre.channels !== 1 && pre.channels !== 3)) {
    throw invalid('preprocessing needs integer height and width > 0 and channels 1 or 3.');
  }
  if (!claimed.featureLayer) throw invalid('featureLayer is required: the layer (or graph node) whose output feeds the new head.');

  let text: string;
  try {
    text = await readFile(join(dir, 'model.json'), 'utf8');
  } catch {
    throw invalid('There is no model.json (a TensorFlow.js model: model.json plus its weight files).');
  }
  let modelJson: tf.io.ModelJSON;
  try {
    modelJson = JSON.parse(text) as tf.io.ModelJSON;
  } catch (err) {
    throw invalid(`model.json is not valid JSON: ${(err as Error).message}.`);
  }
  let format: ModelFormat;
  try {
    format = detectModelFormat(modelJson);
  } catch (err) {
    throw invalid(`${(err as Error).message}.`);
  }
  if (claimed.format && claimed.format !== format) throw invalid(`model.json is a ${format} model, not ${claimed.format} as claimed.`);

  // Every weight file the manifest names must be there (and inside the directory).
  if (!Array.isArray(modelJson.weightsManifest)) throw invalid('model.json has no weightsManifest.');
  let bytes = Buffer.byteLength(text);
  const files = new Map<string, Buffer>();
  for (const p of modelJson.weightsManifest.flatMap((g) => g.paths ?? [])) {
    const rel = safeRelativePath(p);
    if (!rel) throw invalid(`model.json names the weight file "${p}", which is not a plain relative path.`);
    try {
      const data = await readFile(join(dir, rel));
      files.set(p, data);
      bytes += data.length;
    } catch {
      throw invalid(`model.json names the weight file "${p}", which is missing.`);
    }
  }
  const handler = jsonLoader(modelJson, async (p) => {
    const data = files.get(p);
    if (!data) throw new Error(`weight file "${p}" is missing`);
    return data;
  });

  await initBackend();
  const expectInput = [pre.height, pre.width, pre.channels];
  const checkInput = (shape: readonly (number | null | undefined)[] | undefined, what: string) => {
    const s = (shape ?? []).map((d) => (d == null || d < 0 ? null : d));
    if (s.length !== 4) throw invalid(`The ${what} input has shape ${JSON.stringify(shape ?? null)}; a base needs one image input [batch, height, width, channels].`);
    const mismatch = s.slice(1).some((d, i) => d !== null && d !== expectInput[i]);
    if (mismatch) {
      throw invalid(
        `The model's input is ${fmt(s.slice(1))} (height, width, channels) but preprocessing says ${expectInput.join('x')}: ` +
          'set preprocessing height/width/channels to what the model takes.',
      );
    }
  };
  const checkFeatures = (shape: number[], where: string) => {
    if (shape.length !== 1 && shape.length !== 3) {
      throw invalid(`${where} gives features of shape ${fmt(shape)} per image; the head needs rank 1 ([n]) or rank 3 ([h, w, c]) features.`);
    }
    if (shape.some((d) => !(d > 0))) throw invalid(`${where} gives features of shape ${fmt(shape)}: every dimension must be known and > 0.`);
  };
  const zeros = () => tf.zeros([1, pre.height, pre.width, pre.channels]) as tf.Tensor4D;

  if (format === 'tfjs-layers') {
    let model: tf.LayersModel;
    try {
      model = await tf.loadLayersModel(handler);
    } catch (err) {
      throw invalid(`The layers model does not load: ${(err as Error).message}`);
    }
    try {
      if (model.inputs.length !== 1) throw invalid(`The model has ${model.inputs.length} inputs; a base needs exactly one image input.`);
      checkInput(model.inputs[0]!.shape, "model's");
      let layer: tf.layers.Layer;
      try {
        layer = model.getLayer(claimed.featureLayer);
      } catch {
        const names = model.layers.map((l) => l.name);
        throw invalid(`The model has no layer "${claimed.featureLayer}" (${names.length} layers; the last ones are ${names.slice(-8).map((n) => `"${n}"`).join(', ')}).`);
      }
      const output = layer.output;
      if (Array.isArray(output)) throw invalid(`Layer "${claimed.featureLayer}" has several outputs; choose a layer with one.`);
      const cut = tf.model({ inputs: model.inputs, outputs: output });
      const featureShape = forward(() => cut.predict(zeros()) as tf.Tensor, `Layer "${claimed.featureLayer}"`, checkFeatures);
      return { format, inputShape: expectInput, featureLayer: claimed.featureLayer, featureShape, layers: model.layers.length, params: model.countParams(), bytes };
    } finally {
      model.dispose();
    }
  }

  try {
    assertFeatureNode(modelJson, claimed.featureLayer, 'invalid_base_model');
  } catch (err) {
    throw invalid(`Graph node ${(err as Error).message}`);
  }
  let graph: tf.GraphModel;
  try {
    graph = await tf.loadGraphModel(handler);
  } catch (err) {
    throw invalid(`The graph model does not load: ${(err as Error).message}`);
  }
  try {
    if (graph.inputs.length !== 1) throw invalid(`The graph model has ${graph.inputs.length} inputs; a base needs exactly one image input.`);
    checkInput(graph.inputs[0]!.shape, "graph model's");
    const featureShape = forward(() => runGraphToNode(graph, zeros(), claimed.featureLayer), `Graph node "${claimed.featureLayer}"`, checkFeatures);
    const nodes = graphNodes(modelJson).filter((n) => n.op !== 'Const' && n.op !== 'Placeholder').length;
    const params = modelJson.weightsManifest.flatMap((g) => g.weights).reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);
    return { format, inputShape: expectInput, featureLayer: claimed.featureLayer, featureShape, layers: nodes, params, bytes };
  } finally {
    graph.dispose();
  }
}

/** Runs one forward pass; returns the per-image output shape after checking it and that values are finite. */
function forward(run: () => tf.Tensor, where: string, check: (shape: number[], where: string) => void): number[] {
  let out: tf.Tensor;
  try {
    out = tf.tidy(run);
  } catch (err) {
    if (err instanceof TrainingError) throw err;
    throw invalid(`A forward pass on a zero image fails up to ${where.replace(/^Layer |^Graph node /, '')}: ${(err as Error).message}`);
  }
  try {
    const shape = out.shape.slice(1);
    check(shape, where);
    const values = out.dataSync();
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) throw invalid(`${where} gives non-finite values (NaN or infinity) on a zero image: the weights look broken.`);
    }
    return shape;
  } finally {
    out.dispose();
  }
}

function fmt(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? 'any' : d)).join(', ')}]`;
}

/** Total size of a directory's model files (model.json + manifest files); for callers that only need bytes. */
export async function modelBytes(dir: string): Promise<number> {
  const modelJson = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  let total = (await stat(join(dir, 'model.json'))).size;
  for (const p of (modelJson.weightsManifest ?? []).flatMap((g) => g.paths)) {
    const rel = safeRelativePath(p);
    if (rel) total += (await stat(join(dir, rel))).size;
  }
  return total;
}

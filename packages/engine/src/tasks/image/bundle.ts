/**
 * What an image model bundle holds beyond the model itself, and reading it back to predict from
 * image bytes. `preprocessing.json` ({height, width, channels, resize, scale, offset}) says how raw
 * pixels become the model's input. A bundle trained on a graph base also holds the graph
 * (`base/model.json` + `base/weights.bin`) and `pipeline.json` ({ kind: "graph+head", featureNode }):
 * `model.json` is then the head alone, on the graph's feature node output.
 */
import * as tf from '@tensorflow/tfjs';
import { parseWith, Preprocessing as PreprocessingSchema, type Preprocessing } from '@graft/contracts';
import { jsonLoader, WEIGHTS_FILE } from '../../bases/model-io.ts';
import { TrainingError } from '../../errors.ts';
import type { ZipInput } from '../../util/zip.ts';
import type { BundleReader, RawInput, TaskPredictor } from '../task.ts';
import { openOnnxFeatures } from './onnx-features.ts';
import { featureBatchSize, preprocessImage } from './preprocess.ts';

export interface GraphPipeline {
  kind: 'graph+head';
  /** The graph (relative to the zip root) and the node whose output feeds the head. */
  base: string;
  featureNode: string;
  head: string;
}

const json = (name: string, value: unknown): ZipInput => ({ name, data: Buffer.from(JSON.stringify(value, null, 2)) });

export function preprocessingFile(pre: Preprocessing): ZipInput {
  return json('preprocessing.json', pre);
}

/** `pipeline.json`, `base/model.json` and `base/weights.bin`: the graph base, kept with its signature and initializer. */
export async function graphBundleFiles(graph: tf.GraphModel, featureNode: string): Promise<ZipInput[]> {
  const files: ZipInput[] = [];
  await graph.save({
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
      files.push({ name: 'base/model.json', data: Buffer.from(JSON.stringify(modelJson)) });
      files.push({ name: `base/${WEIGHTS_FILE}`, data: new Uint8Array(new tf.io.CompositeArrayBuffer(a.weightData).slice()) });
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    },
  });
  const pipeline: GraphPipeline = { kind: 'graph+head', base: 'base/model.json', featureNode, head: 'model.json' };
  return [json('pipeline.json', pipeline), ...files];
}

/** Image bundles: recognised by `preprocessing.json`. */
export const imageBundle: BundleReader = {
  recognises: (names) => names.has('preprocessing.json'),
  load: async (files, source, opts = {}) => {
    const text = (name: string) => {
      const data = files.get(name);
      if (!data) throw new Error(`${source} has no ${name}`);
      return Buffer.from(data).toString('utf8');
    };
    const weights = (prefix: string) => (p: string) => {
      const data = files.get(prefix + p);
      if (!data) throw new Error(`${source} has no weights file ${prefix + p}`);
      return Promise.resolve(data);
    };
    const pre = parseWith(PreprocessingSchema, JSON.parse(text('preprocessing.json')), 'preprocessing.json');
    const model = await tf.loadLayersModel(jsonLoader(JSON.parse(text('model.json')) as tf.io.ModelJSON, weights('')));
    let graph: tf.GraphModel | null = null;
    let predict = (x: tf.Tensor4D) => model.predict(x) as tf.Tensor2D;
    if (files.has('pipeline.json')) {
      const pipeline = JSON.parse(text('pipeline.json')) as GraphPipeline;
      if (pipeline.kind !== 'graph+head') throw new Error(`${source}: unknown pipeline kind ${String(pipeline.kind)}`);
      const g = await tf.loadGraphModel(jsonLoader(JSON.parse(text('base/model.json')) as tf.io.ModelJSON, weights('base/')));
      graph = g;
      const input = g.inputs[0]!.name;
      predict = (x) => model.predict(g.execute({ [input]: x }, pipeline.featureNode) as tf.Tensor) as tf.Tensor2D;
    }
    // The whole layers model (base + head) on ONNX Runtime when asked for and it converts and checks out.
    const onnx = opts.runtime === 'onnx' && !graph ? await openOnnxFeatures(model, 'none', pre, {}) : null;
    const onnxRows = onnx?.rows ?? null;
    const predictor: TaskPredictor = {
      runtime: onnx
        ? { name: onnxRows ? 'onnx' : 'tfjs', reason: onnx.report.reason, ...(onnx.report.onnx ? { relError: onnx.report.onnx.relError } : {}) }
        : { name: 'tfjs', reason: opts.runtime === 'onnx' ? 'a graph base runs in tfjs' : null },
      probabilities: async (inputs: readonly RawInput[]) => {
        const classes = model.outputs[0]!.shape.at(-1)!;
        const out = new Float32Array(inputs.length * classes);
        const batch = featureBatchSize(pre);
        for (let start = 0; start < inputs.length; start += batch) {
          const images: tf.Tensor3D[] = [];
          try {
            inputs.slice(start, start + batch).forEach((input, k) => {
              if (!(input instanceof Uint8Array)) throw new TypeError(`Input ${start + k} is a ${typeof input}: this model classifies images, give their bytes (JPEG or PNG).`);
              try {
                images.push(preprocessImage(input, pre));
              } catch (err) {
                throw new TrainingError('unreadable_image', `Input ${start + k} cannot be decoded: ${(err as Error).message}.`);
              }
            });
            if (onnxRows) {
              const x = tf.stack(images);
              try {
                out.set(await onnxRows.run(await x.data<'float32'>(), images.length), start * classes);
              } finally {
                x.dispose();
              }
            } else {
              const probs = tf.tidy(() => predict(tf.stack(images) as tf.Tensor4D));
              out.set(await probs.data<'float32'>(), start * classes);
              probs.dispose();
            }
          } finally {
            tf.dispose(images);
          }
        }
        return out;
      },
      dispose: () => {
        model.dispose();
        graph?.dispose();
        void onnx?.release().catch(() => {});
      },
    };
    return predictor;
  },
};

/**
 * A base opened as the image task's frozen encoder: a tfjs layers model cut at `cutLayer` (phase 2
 * can unfreeze its top layers, the baseline can rebuild it), or a tfjs graph model run to its
 * feature node (frozen only). Loading itself (directory, nsfwjs, url, model-zip) is bases/open-base.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { isImageBase } from '@graft/contracts';
import type { ResolvedBase } from '../../bases/base-source.ts';
import { GRAPH_FROZEN_MESSAGE, runGraphToNode } from '../../bases/graph-base.ts';
import { openBase } from '../../bases/open-base.ts';
import { TrainingError } from '../../errors.ts';
import { cutBase } from '../../train/freezing.ts';
import { featureLayout } from '../../train/head.ts';
import { releaseWeights } from '../../train/weights.ts';
import type { OpenEncoderOptions, PreviousFineTune, TaskEncoder } from '../task.ts';
import { graphBundleFiles, preprocessingFile } from './bundle.ts';
import { imageCacheStore } from './image-cache.ts';
import { decodePass, readImagesExactly, type FeatureStep } from './input-pass.ts';
import { openOnnxFeatures, type OnnxFeatures } from './onnx-features.ts';
import { featureBatchSize } from './preprocess.ts';

export async function openImageEncoder(base: ResolvedBase, opts: OpenEncoderOptions): Promise<TaskEncoder> {
  const descriptor = base.descriptor;
  if (!isImageBase(descriptor)) throw new TrainingError('task_mismatch', `Base model "${descriptor.id}" is a ${descriptor.task} base, not an image one.`);
  const pre = descriptor.preprocessing;
  const opened = await openBase(base, {
    ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}),
    signal: opts.signal,
    // Graph bases are checked against (and run to) this node; layers bases are cut below.
    ...(descriptor.format === 'tfjs-graph' ? { cutLayer: opts.cutLayer } : {}),
  });
  const layers = opened.layers;
  const graph = opened.graph;
  let onnx: OnnxFeatures | null = null;
  const dispose = () => {
    releaseWeights([layers]);
    graph?.dispose();
    void onnx?.release().catch(() => {});
  };
  try {
    let cut: tf.LayersModel | null = null;
    let run: (x: tf.Tensor4D) => tf.Tensor;
    let shape: number[];
    let previous: PreviousFineTune | null = null;
    if (layers) {
      cut = cutBase(layers, opts.cutLayer);
      const c = cut;
      shape = c.outputs[0]!.shape.slice(1).map((d) => {
        if (d == null) throw new Error('the feature layer has a dynamic dimension');
        return d;
      });
      // `training: false`: every BatchNormalization uses its moving statistics, Dropout is off.
      run = (x) => c.apply(x, { training: false }) as tf.Tensor;
      if (opened.previous) previous = { ...opened.previous, model: layers };
    } else {
      const g = graph!;
      const node = opened.cutLayer;
      run = (x) => runGraphToNode(g, x, node);
      // The shape is measured on one blank input.
      shape = tf.tidy(() => run(tf.zeros([1, pre.height, pre.width, pre.channels]) as tf.Tensor4D).shape.slice(1));
    }
    const layout = featureLayout(shape);
    // A frozen layers cut computes its features on ONNX Runtime when it converts and checks out.
    if (cut) onnx = await openOnnxFeatures(cut, layout.pooling, pre, { cacheDir: opts.cacheDir, signal: opts.signal });
    const step: FeatureStep = { run, pooling: layout.pooling, dim: layout.dim, rows: onnx?.rows ?? null };
    return {
      cut,
      frozenOnly: cut ? null : { code: 'graph_model_frozen', message: GRAPH_FROZEN_MESSAGE },
      ...layout,
      run: (x) => run(x as tf.Tensor4D),
      inferenceBatchSize: featureBatchSize(pre),
      ...(onnx ? { featureRuntime: onnx.report } : {}),
      frozenPartRuntime: (part) => openOnnxFeatures(part, 'none', pre, { cacheDir: opts.cacheDir, signal: opts.signal }),
      inputIdentity: { preprocessing: pre },
      previous,
      inputs: {
        pass: (datasetPath, o) => decodePass(datasetPath, pre, step, o),
        readExact: (datasetPath, examples, signal) => readImagesExactly(datasetPath, examples, pre, signal),
        cache: imageCacheStore(pre),
        describePass: ({ count, features, storing }) => ({
          start: `Decoding ${count} images once${features ? ` and computing ${descriptor.name} features${features === 'validation' ? ' of the validation images' : ''}` : ''}${storing ? '; storing the decoded images for the epochs that need them' : ''}.`,
          progress: (done, total) => `Decoded ${done} of ${total} images.`,
        }),
      },
      bundleFiles: async () => [preprocessingFile(pre), ...(graph ? await graphBundleFiles(graph, opened.cutLayer) : [])],
      dispose,
    };
  } catch (err) {
    dispose();
    throw err;
  }
}

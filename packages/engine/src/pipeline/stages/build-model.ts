/**
 * Stage 5, build the transfer model: the new head on the encoder's features (continuing a previous
 * fine-tune's head when the base is one with the same classes), the exported model (encoder + head
 * as one layers graph, or the head alone for an encoder outside tfjs layers), the loss, and the
 * bundle files every checkpoint and the final export write.
 */
import * as tf from '@tensorflow/tfjs';
import { HEAD_LAYER_PREFIX } from '../../bases/open-base.ts';
import type { Predict } from '../../evaluate/score.ts';
import { assembleHeadModel, assembleInferenceModel } from '../../export/assemble.ts';
import type { ModelFiles } from '../../export/bundle.ts';
import type { PreviousFineTune, TaskEncoder } from '../../tasks/task.ts';
import { buildHead, type Head, type HeadOptions, type LossOptions } from '../../train/head.ts';
import type { RunContext } from '../context.ts';
import type { PreparedData } from './prepare-data.ts';

export interface TransferModel {
  head: Head;
  /** Encoder + head as one layers graph (shares their weights); null when the encoder is not a tfjs layers model. */
  full: tf.LayersModel | null;
  /** The class probabilities of model inputs, inference mode; null when the encoder does not run in tfjs. */
  predict: Predict | null;
  /** The head's shape, for the baseline's own head. */
  headOptions: Omit<HeadOptions, 'seed'>;
  /** The training objective's options for a head (smoothing, class weights, L2 on its kernels). */
  lossFor(head: Head): LossOptions;
  /** The bundle with this training.json. */
  files(training: Record<string, unknown>, use?: 'model' | 'checkpoint'): Promise<ModelFiles>;
}

export async function buildModel(ctx: RunContext, encoder: TaskEncoder, data: PreparedData): Promise<TransferModel> {
  const { spec } = ctx;
  const hp = spec.hyperparameters;
  const descriptor = ctx.base.descriptor;
  const numClasses = data.classes.length;
  const headOptions = { units: hp.headUnits, dropout: hp.dropout, l2: hp.l2 };
  const head = buildHead(encoder.dim, numClasses, encoder.pooling, { ...headOptions, seed: spec.seed });
  ctx.own(head.model);
  if (encoder.previous) {
    const cont = continueHead(encoder.previous, head, data.classes, spec.cutLayer);
    if (cont.continued) ctx.record.continuedFrom = descriptor.id;
    await ctx.emit({
      level: 'info',
      type: 'continue',
      message: cont.continued
        ? `The base is the fine-tune ${descriptor.id} with the same classes: its head's weights start this training (continue training).`
        : `The base is the fine-tune ${descriptor.id}; a new head is trained (${cont.reason}).`,
      data: { continued: cont.continued, from: descriptor.id },
    });
  }
  ctx.record.head = { units: head.units, dropout: head.dropoutRate, pooling: encoder.pooling, l2: hp.l2, labelSmoothing: hp.labelSmoothing, optimizer: 'adam', loss: 'categorical_crossentropy' };

  const full = encoder.cut ? assembleInferenceModel(encoder.cut, head) : null;
  const headOnFeatures = encoder.cut ? null : assembleHeadModel(encoder.featureShape, head);
  const run = encoder.run;
  const predict: Predict | null = full
    ? (x) => full.predict(x) as tf.Tensor2D
    : run
      ? (x) => tf.tidy(() => headOnFeatures!.predict(run(x)) as tf.Tensor2D)
      : null;
  const classWeights = data.classWeights ? ctx.keep(tf.tensor1d(data.classWeights)) : null;
  return {
    head,
    full,
    predict,
    headOptions,
    lossFor: (h) => ({ numClasses, labelSmoothing: hp.labelSmoothing, classWeights, l2: hp.l2, kernels: h.kernels }),
    files: async (training, use = 'model') => ({ model: full ?? headOnFeatures!, labels: data.classes, taskFiles: await encoder.bundleFiles(use), training }),
  };
}

/**
 * When the base is a previous graft fine-tune with exactly these classes (same order) and the same
 * head shape on the same cut, copy its head's weights into the new head.
 */
export function continueHead(previous: PreviousFineTune, head: Head, classes: readonly string[], cutLayer: string): { continued: boolean; reason: string } {
  if (previous.labels.length !== classes.length || previous.labels.some((l, i) => l !== classes[i])) {
    return { continued: false, reason: `its classes (${previous.labels.join(', ')}) differ from this dataset's` };
  }
  const { model } = previous;
  const layer = (name: string) => (previous.headLayerNames.includes(name) ? model.getLayer(name) : null);
  const prevDense = layer('graft_head_dense');
  const prevOutput = layer('graft_head_output');
  if (!prevOutput) return { continued: false, reason: 'its head has no output layer' };
  const first = model.layers.find((l) => l.name.startsWith(HEAD_LAYER_PREFIX));
  const below = first?.inboundNodes[0]?.inboundLayers[0]?.name;
  if (below !== cutLayer) return { continued: false, reason: `its head starts above layer ${below}, not the cut layer ${cutLayer}` };
  if (!!prevDense !== !!head.dense) return { continued: false, reason: 'its head has a different hidden layer (headUnits)' };
  const pairs: [tf.layers.Layer, tf.layers.Layer][] = [[prevOutput, head.output]];
  if (prevDense && head.dense) pairs.unshift([prevDense, head.dense]);
  for (const [from, to] of pairs) {
    const a = from.getWeights();
    const b = to.getWeights();
    if (a.length !== b.length || a.some((w, i) => w.shape.join() !== b[i]!.shape.join())) {
      return { continued: false, reason: `its layer ${from.name} has other shapes (headUnits)` };
    }
  }
  for (const [from, to] of pairs) to.setWeights(from.getWeights());
  return { continued: true, reason: '' };
}

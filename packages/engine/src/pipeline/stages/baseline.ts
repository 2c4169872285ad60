/**
 * Stage 8, the scratch baseline (`baseline: "scratch"`): the encoder's architecture up to the cut
 * with every weight re-initialised from its layer's own initializer (seeded), a fresh head of the
 * same shape, every layer trainable (BatchNormalization in training mode, as from scratch), the same
 * split, batch size and learning rate, for the transfer model's planned epochs; early stopping if
 * on; never checkpointed. It measures what the pretrained weights add.
 */
import * as tf from '@tensorflow/tfjs';
import type { Predict } from '../../evaluate/score.ts';
import { assembleInferenceModel } from '../../export/assemble.ts';
import { cloneWithFreshWeights } from '../../train/fresh-weights.ts';
import { buildHead, headForwardTraining, poolFeatures } from '../../train/head.ts';
import { accumulatedStep, type BatchRows } from '../../train/accumulate.ts';
import { runPhase, type EpochResult } from '../../train/phase-runner.ts';
import { mulberry32, nextSeed } from '../../util/random.ts';
import { microBatchOf, phaseSeed, type Training } from '../training.ts';

export interface BaselineResult {
  predict: Predict;
  history: EpochResult[];
  trainingMs: number;
}

export async function trainBaseline(t: Training): Promise<BaselineResult | null> {
  const { ctx, plan, model, inputs, encoder } = t;
  if (!plan.baseline) return null;
  const started = performance.now();
  const seed = phaseSeed(ctx.spec.seed, 'baseline');
  const scratch = ctx.own(await cloneWithFreshWeights(encoder.cut!, seed));
  const head = buildHead(encoder.dim, t.data.classes.length, encoder.pooling, { ...model.headOptions, seed: seed % 2 ** 30 });
  ctx.own(head.model);
  const baselineModel = assembleInferenceModel(scratch, head);
  const predict: Predict = (x) => baselineModel.predict(x) as tf.Tensor2D;
  const trainable = [...scratch.trainableWeights.map((w) => w.read() as tf.Variable), ...head.variables];
  const everything = [...scratch.weights.map((w) => w.read() as tf.Variable), ...head.variables];
  const { epochs, learningRate } = plan.baseline;
  await ctx.emit({
    level: 'info',
    type: 'baseline',
    message: `Training the scratch baseline: the same architecture from random weights, all layers trainable, Adam at ${learningRate}, for up to ${epochs} epochs.`,
    data: { epochs, learningRate },
  });
  const random = mulberry32(seed);
  const optimizer = tf.train.adam(learningRate);
  const cache = inputs.cache!;
  const trainLabels = inputs.labels.train;
  const loss = model.lossFor(head);
  const earlyStopping = t.earlyStopping(everything, null);
  let history: EpochResult[];
  try {
    ({ history } = await runPhase({
      phase: 'baseline',
      epochs,
      epochOffset: 0,
      laterEpochs: 0,
      nTrain: trainLabels.length,
      batchSize: ctx.spec.hyperparameters.batchSize,
      learningRate,
      random,
      load: (idx) => cache.read(idx.map((i) => inputs.rows.train[i]!)),
      step: async (batch, idx) => {
        const x = cache.inputs(batch, random);
        const y = tf.tensor1d(idx.map((i) => trainLabels[i]!), 'int32');
        const dropoutSeed = nextSeed(random);
        try {
          // From scratch, nothing is frozen: BatchNormalization trains (batch statistics).
          const forward = (xs: tf.Tensor[], rows: BatchRows) => headForwardTraining(head, poolFeatures(head, scratch.apply(xs.length === 1 ? xs[0]! : xs, { training: true }) as tf.Tensor), dropoutSeed, rows);
          return await accumulatedStep(optimizer, trainable, Array.isArray(x) ? x : [x], y, forward, loss, microBatchOf(t, 'baseline'));
        } finally {
          tf.dispose([x, y]);
        }
      },
      validate: t.validateOnInputs(predict),
      callbacks: earlyStopping ? [t.progress, earlyStopping] : [t.progress],
      // Never checkpointed: a hand-back stops it at once (a resumed job runs it again).
      signal: ctx.stopSignal,
    }));
  } finally {
    optimizer.dispose();
  }
  return { predict, history, trainingMs: Math.round(performance.now() - started) };
}

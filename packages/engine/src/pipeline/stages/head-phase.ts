/**
 * Stage 6, the head phase: the new head trained with Adam at `learningRate` on the frozen encoder —
 * on the cached features, or, when augmenting, on each augmented batch run through the frozen
 * encoder in inference mode (outside the gradient tape: only the head trains).
 */
import * as tf from '@tensorflow/tfjs';
import { TrainingError } from '../../errors.ts';
import type { BestSoFar } from '../../train/early-stopping.ts';
import type { AsyncPredict } from '../../evaluate/score.ts';
import { headForwardTraining, poolFeatures } from '../../train/head.ts';
import { runInChunks } from '../../train/model-input.ts';
import { accumulatedStep } from '../../train/accumulate.ts';
import { runPhase, type PhaseOutcome } from '../../train/phase-runner.ts';
import { nextSeed } from '../../util/random.ts';
import { runOnnxRows, type OnnxRows } from './onnx-rows.ts';
import { microBatchOf, phaseRandom, reportStop, type Training } from '../training.ts';

export interface PhaseResult {
  outcome: PhaseOutcome & { restoredEpoch: number | null };
  /** The global epoch whose weights the model has after the phase. */
  modelEpoch: number;
  /** Early stopping's best epoch of the phase (the next phase must beat it), or null. */
  best: BestSoFar | null;
  /** Phase 2 with its frozen part on ONNX Runtime: the model's predictions that way (the evaluation's). */
  predictWithOnnx?: AsyncPredict | null;
}

export async function trainHeadPhase(t: Training): Promise<PhaseResult> {
  const { ctx, plan, model, inputs, encoder } = t;
  // Resumed in phase 2: the head phase's outcome is the checkpoint's, its weights are restored there.
  const done = t.resume.finished('head');
  if (done) return { outcome: { history: done.history, stoppedEarly: done.stoppedEarly, restoredEpoch: done.restoredEpoch }, modelEpoch: done.modelEpoch, best: done.best };
  const { head } = model;
  const random = phaseRandom(ctx.spec.seed, 'head');
  const earlyStopping = t.earlyStopping(head.variables, null);
  const loss = model.lossFor(head);
  const trainLabels = inputs.labels.train;
  const optimizer = tf.train.adam(plan.head.learningRate);
  const from = await t.resume.enter({ phase: 'head', variables: head.variables, optimizer, random, earlyStopping });
  const common = {
    phase: 'head' as const,
    epochs: plan.head.epochs,
    epochOffset: 0,
    laterEpochs: plan.fineTune ? plan.fineTune.epochs : 0,
    nTrain: trainLabels.length,
    batchSize: ctx.spec.hyperparameters.batchSize,
    learningRate: plan.head.learningRate,
    random,
    validate: t.validateHead,
    callbacks: t.phaseCallbacks(earlyStopping),
    signal: ctx.signal,
    from,
  };
  let outcome: PhaseOutcome;
  let onnx: FrozenPart | null = null;
  try {
    if (plan.head.onFeatures) {
      const trainX = inputs.trainX!;
      outcome = await runPhase<null>({
        ...common,
        load: async () => null,
        step: async (_none, idx) => {
          const dropoutSeed = nextSeed(random);
          const [x, y] = tf.tidy(() => [tf.gather(trainX, tf.tensor1d(idx, 'int32')) as tf.Tensor2D, tf.tensor1d(idx.map((i) => trainLabels[i]!), 'int32')]);
          try {
            return await accumulatedStep(optimizer, head.variables, [x], y, ([xs], rows) => headForwardTraining(head, xs as tf.Tensor2D, dropoutSeed, rows), loss, microBatchOf(t, 'head'));
          } finally {
            tf.dispose([x, y]);
          }
        },
      });
    } else {
      const run = encoder.run;
      if (!run) throw new TrainingError('unsupported_option', 'This encoder does not run per batch, so the head cannot train on augmented inputs.');
      const cache = inputs.cache!;
      onnx = await augmentedOnOnnx(t);
      const frozen = onnx?.rows ?? null;
      outcome = await runPhase({
        ...common,
        load: (idx) => cache.read(idx.map((i) => inputs.rows.train[i]!)),
        step: async (batch, idx) => {
          // The frozen encoder in inference mode, outside the gradient tape: only the head trains.
          const feats = frozen
            ? await onnxFeatures(frozen, cache.inputs(batch, random) as tf.Tensor, idx.length, encoder.featureShape, head)
            : tf.tidy(() => poolFeatures(head, runInChunks(run, cache.inputs(batch, random), encoder.inferenceBatchSize)));
          const y = tf.tensor1d(idx.map((i) => trainLabels[i]!), 'int32');
          const dropoutSeed = nextSeed(random);
          try {
            return await accumulatedStep(optimizer, head.variables, [feats], y, ([xs], rows) => headForwardTraining(head, xs as tf.Tensor2D, dropoutSeed, rows), loss, microBatchOf(t, 'head'));
          } finally {
            tf.dispose([feats, y]);
          }
        },
      });
    }
  } finally {
    optimizer.dispose();
    await onnx?.release().catch(() => {});
  }
  const out = { ...outcome, restoredEpoch: earlyStopping?.restoredEpoch ?? null };
  const modelEpoch = ctx.record.phaseEnded('head', plan.head.epochs, plan.head.learningRate, out, { featureCache: plan.head.onFeatures });
  await reportStop(ctx, 'head', out);
  const best = earlyStopping?.best ?? null;
  t.resume.headEnded({ history: out.history, stoppedEarly: out.stoppedEarly, restoredEpoch: out.restoredEpoch, modelEpoch, best });
  ctx.checkCancelled();
  return { outcome: out, modelEpoch, best };
}

type FrozenPart = Awaited<ReturnType<NonNullable<Training['encoder']['frozenPartRuntime']>>>;

/**
 * Augmented batches through the frozen base on ONNX Runtime when the job's features run there: the
 * whole cut, converted and checked like the features (it is the same cached conversion), run on
 * every augmented batch. Null (tfjs) otherwise, or when that conversion is refused (said in an event).
 */
async function augmentedOnOnnx(t: Training): Promise<FrozenPart | null> {
  const { ctx, encoder } = t;
  if (encoder.featureRuntime?.runtime !== 'onnx' || !encoder.frozenPartRuntime || !encoder.cut) return null;
  const opened = await encoder.frozenPartRuntime(encoder.cut);
  await ctx.emit({
    level: 'info',
    type: 'augmentation',
    message: opened.rows
      ? 'The augmented batches run through the frozen base on ONNX Runtime, as the features did.'
      : `The augmented batches run through the frozen base on TensorFlow.js: ${opened.report.reason ?? 'ONNX Runtime could not be used'}.`,
    data: { frozenRuntime: opened.rows ? 'onnx' : 'tfjs' },
  });
  if (opened.rows) return opened;
  await opened.release().catch(() => {});
  return null;
}

/** The pooled features of n augmented inputs on ONNX Runtime; frees `x`. */
async function onnxFeatures(frozen: OnnxRows, x: tf.Tensor, n: number, featureShape: number[], head: Parameters<typeof poolFeatures>[0]): Promise<tf.Tensor2D> {
  let rows: tf.Tensor;
  try {
    rows = await runOnnxRows(frozen, x, n, featureShape);
  } finally {
    x.dispose();
  }
  // Pooling may be the identity (features already flat): then the rows are the features.
  const feats = tf.tidy(() => poolFeatures(head, rows) as tf.Tensor2D);
  if (feats !== rows) rows.dispose();
  return feats;
}

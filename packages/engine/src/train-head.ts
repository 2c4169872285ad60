/**
 * Training the head alone on cached features (phase 1 without augmentation), on the generic batch
 * loop of training-loop.ts; and the overfitting rule graft warns with.
 */
import * as tf from '@tensorflow/tfjs';
import type { EarlyStopper } from './early-stopping.ts';
import { scoreHeadOnFeatures } from './evaluate.ts';
import { crossEntropy, headForwardTraining, type Head, type LossOptions } from './head.ts';
import { mulberry32, nextSeed } from './random.ts';
import { optimizerStep, runPhase, type BatchProgress, type EpochResult, type PhaseOutcome } from './training-loop.ts';

export type { EpochResult } from './training-loop.ts';

export interface TrainData {
  /** [n, dim] features and int32 labels. */
  trainX: tf.Tensor2D;
  trainY: tf.Tensor1D;
  valX: tf.Tensor2D | null;
  valY: tf.Tensor1D | null;
  numClasses: number;
}

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  signal?: AbortSignal;
  /** Defaults: plain cross-entropy, no class weights, no L2. */
  loss?: Partial<Omit<LossOptions, 'numClasses'>>;
  stopper?: EarlyStopper | null;
  /** Global number of the first epoch − 1. */
  epochOffset?: number;
  laterEpochs?: number;
  topK?: number;
  /** The phase's PRNG; default one seeded from `seed`. */
  random?: () => number;
  onBatch?(p: BatchProgress): void | Promise<void>;
  onEpoch?(m: EpochResult): void | Promise<void>;
  everyBatches?: Parameters<typeof runPhase>[0]['everyBatches'];
}

/** Trains `head` on features with Adam; validation on `valX` each epoch. */
export async function trainHeadPhase(head: Head, data: TrainData, opts: TrainOptions): Promise<PhaseOutcome> {
  const random = opts.random ?? mulberry32(opts.seed ^ 0x5bd1e995); // its own stream, apart from the split's
  const optimizer = tf.train.adam(opts.learningRate);
  const labels = await data.trainY.data<'int32'>();
  const valLabels = data.valY ? Array.from(await data.valY.data<'int32'>()) : [];
  const lossOptions: LossOptions = {
    numClasses: data.numClasses,
    labelSmoothing: opts.loss?.labelSmoothing ?? 0,
    classWeights: opts.loss?.classWeights ?? null,
    l2: opts.loss?.l2 ?? 0,
    kernels: opts.loss?.kernels ?? head.kernels,
  };
  try {
    return await runPhase<null>({
      phase: 'head',
      epochs: opts.epochs,
      epochOffset: opts.epochOffset ?? 0,
      laterEpochs: opts.laterEpochs ?? 0,
      nTrain: data.trainX.shape[0],
      batchSize: opts.batchSize,
      learningRate: opts.learningRate,
      random,
      load: async () => null,
      step: async (_none, idx) => {
        const dropoutSeed = nextSeed(random);
        const [x, y] = tf.tidy(() => {
          const rows = tf.tensor1d(idx, 'int32');
          return [tf.gather(data.trainX, rows) as tf.Tensor2D, tf.tensor1d(idx.map((i) => labels[i]!), 'int32')];
        });
        try {
          return await optimizerStep(optimizer, head.variables, () => headForwardTraining(head, x, dropoutSeed), y, lossOptions);
        } finally {
          tf.dispose([x, y]);
        }
      },
      validate: async () => {
        if (!data.valX) return null;
        const s = await scoreHeadOnFeatures(head, data.valX, valLabels, data.numClasses, opts.topK ?? 1);
        return { loss: s.loss!, accuracy: s.accuracy! };
      },
      stopper: opts.stopper ?? null,
      signal: opts.signal,
      onBatch: opts.onBatch,
      onEpoch: opts.onEpoch,
      everyBatches: opts.everyBatches ?? null,
    });
  } finally {
    optimizer.dispose();
  }
}

/** The skeleton's entry point, kept: head on features, plain loss, no early stopping; returns the history. */
export async function trainHead(head: Head, data: TrainData, opts: TrainOptions): Promise<EpochResult[]> {
  return (await trainHeadPhase(head, data, opts)).history;
}

/** Inference-mode predictions (dropout off) of the head: class index per row and the mean loss. */
export async function evaluateHead(
  head: Head,
  x: tf.Tensor2D,
  labels: tf.Tensor1D,
  numClasses: number,
  batchSize = 256,
): Promise<{ loss: number; accuracy: number; predicted: Int32Array }> {
  const n = x.shape[0];
  const predicted = new Int32Array(n);
  let lossSum = 0;
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const [loss, pred] = tf.tidy((): [tf.Scalar, tf.Tensor1D] => {
      const xb = x.slice([start, 0], [size, -1]);
      const yb = labels.slice([start], [size]);
      const probs = head.model.predict(xb) as tf.Tensor2D;
      return [crossEntropy(tf.oneHot(yb, numClasses).cast('float32') as tf.Tensor2D, probs), probs.argMax(1) as tf.Tensor1D];
    });
    lossSum += (await loss.data())[0]! * size;
    predicted.set(await pred.data<'int32'>(), start);
    tf.dispose([loss, pred]);
  }
  const truth = await labels.data<'int32'>();
  const hits = predicted.reduce((a, p, i) => a + (p === truth[i] ? 1 : 0), 0);
  return { loss: lossSum / n, accuracy: hits / n, predicted };
}

/**
 * Overfitting, as graft warns of it: validation loss rose for 3 consecutive epochs while the
 * training loss fell over the same span. (An accuracy-gap rule fires on small, noisy validation
 * sets too readily; a sustained rise in validation loss is the signal Keras' EarlyStopping uses.)
 */
export function isOverfitting(history: readonly EpochResult[]): boolean {
  if (history.length < 4) return false;
  const last = history.slice(-4);
  const v = last.map((e) => e.valLoss);
  if (v.some((x) => x === null)) return false;
  const rising = v[1]! > v[0]! && v[2]! > v[1]! && v[3]! > v[2]!;
  return rising && last[3]!.loss < last[0]!.loss;
}

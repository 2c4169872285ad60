/**
 * The explicit batch loop every phase runs (head, fine-tune, baseline): seeded shuffles, one
 * optimizer step per batch, progress per batch, the AbortSignal checked before every batch, the
 * event loop yielded between batches (a worker's IPC and lock renewals must get through while
 * training runs on the main thread), validation per epoch, early stopping and checkpoints.
 */
import * as tf from '@tensorflow/tfjs';
import type { EarlyStopper } from './early-stopping.ts';
import { TrainingCancelled, TrainingError } from './errors.ts';
import { trainingLoss, type LossOptions } from './head.ts';
import { shuffleInPlace } from './random.ts';

export type PhaseName = 'head' | 'fine-tune' | 'baseline';

export interface EpochResult {
  /** Global over the head and fine-tune phases (1-based); the baseline counts its own. */
  epoch: number;
  phase: PhaseName;
  loss: number;
  accuracy: number;
  valLoss: number | null;
  valAccuracy: number | null;
  durationMs: number;
}

export interface BatchProgress {
  phase: string;
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
}

export interface PhaseLoop<B> {
  phase: PhaseName;
  /** Planned epochs of this phase. */
  epochs: number;
  /** Epochs run before this phase (the global number of its first epoch − 1). */
  epochOffset: number;
  /** Planned epochs after this phase, for the `epochs` of progress reports. */
  laterEpochs: number;
  nTrain: number;
  batchSize: number;
  learningRate: number;
  /** The phase's PRNG: shuffles, dropout masks, augmentation. */
  random: () => number;
  /** Training indices → the batch's data (called one batch ahead, so reading overlaps compute). */
  load(indices: number[]): Promise<B>;
  /** One optimizer step on a batch; returns its mean loss and number of correct predictions. */
  step(batch: B, indices: number[]): Promise<{ loss: number; correct: number }>;
  /** Validation after each epoch (inference mode); null without validation images. */
  validate(): Promise<{ loss: number; accuracy: number } | null>;
  stopper: EarlyStopper | null;
  signal?: AbortSignal;
  onBatch?(p: BatchProgress): void | Promise<void>;
  onEpoch?(m: EpochResult): void | Promise<void>;
  /** Every N optimizer steps of the job (`steps` counts them across phases). */
  everyBatches?: { n: number; steps: { count: number }; run(epoch: number, batch: number): Promise<void> } | null;
}

export interface PhaseOutcome {
  history: EpochResult[];
  stoppedEarly: boolean;
  /** The global epoch whose weights were restored, or null when none were. */
  restoredEpoch: number | null;
}

const tick = () => new Promise((r) => setImmediate(r));

export async function runPhase<B>(p: PhaseLoop<B>): Promise<PhaseOutcome> {
  const n = p.nTrain;
  const batches = Math.ceil(n / p.batchSize);
  const order = Array.from({ length: n }, (_, i) => i);
  const history: EpochResult[] = [];
  let stoppedEarly = false;
  for (let local = 1; local <= p.epochs; local++) {
    const epoch = p.epochOffset + local;
    const started = performance.now();
    shuffleInPlace(order, p.random);
    const indices = (b: number) => order.slice(b * p.batchSize, (b + 1) * p.batchSize);
    let lossSum = 0;
    let correct = 0;
    let next: Promise<B> | null = null;
    const prefetch = (b: number) => {
      const promise = p.load(indices(b));
      promise.catch(() => {}); // awaited below; never an unhandled rejection when we stop first
      return promise;
    };
    try {
      next = prefetch(0);
      for (let b = 0; b < batches; b++) {
        if (p.signal?.aborted) throw new TrainingCancelled();
        const idx = indices(b);
        const data = await next!;
        next = b + 1 < batches ? prefetch(b + 1) : null;
        const { loss, correct: hits } = await p.step(data, idx);
        if (!Number.isFinite(loss)) {
          throw new TrainingError(
            'training_diverged',
            `The training loss became ${loss} in phase ${p.phase}, epoch ${epoch}, batch ${b + 1}; try a lower learning rate (now ${p.learningRate}).`,
          );
        }
        lossSum += loss * idx.length;
        correct += hits;
        await p.onBatch?.({ phase: p.phase, epoch, epochs: p.epochOffset + p.epochs + p.laterEpochs, batch: b + 1, batches });
        if (p.everyBatches) {
          p.everyBatches.steps.count++;
          if (p.everyBatches.steps.count % p.everyBatches.n === 0) await p.everyBatches.run(epoch, b + 1);
        }
        await tick();
      }
    } finally {
      if (next) await next.catch(() => {});
    }
    const val = await p.validate();
    const result: EpochResult = {
      epoch,
      phase: p.phase,
      loss: lossSum / n,
      accuracy: correct / n,
      valLoss: val?.loss ?? null,
      valAccuracy: val?.accuracy ?? null,
      durationMs: Math.round(performance.now() - started),
    };
    history.push(result);
    await p.onEpoch?.(result);
    if (p.stopper && val && p.stopper.update(epoch, val.loss).stop && local < p.epochs) {
      stoppedEarly = true;
      break;
    }
  }
  const restoredEpoch = p.stopper?.restoreBest() ?? null;
  return { history, stoppedEarly, restoredEpoch };
}

/**
 * One optimizer step: `forward` (run under the gradient tape) returns class probabilities; the
 * loss is `trainingLoss` against `labels`. Returns the loss and the batch's correct predictions
 * (training accuracy as Keras reports it: on this batch's dropout predictions).
 */
export async function optimizerStep(
  optimizer: tf.Optimizer,
  variables: tf.Variable[],
  forward: () => tf.Tensor2D,
  labels: tf.Tensor1D,
  lossOptions: LossOptions,
): Promise<{ loss: number; correct: number }> {
  const kept: { correct?: tf.Scalar } = {};
  const cost = optimizer.minimize(() => {
    const probs = forward();
    kept.correct = tf.keep(probs.argMax(1).equal(labels).cast('float32').sum() as tf.Scalar);
    return trainingLoss(probs, labels, lossOptions);
  }, true, variables)!;
  try {
    const [loss] = await cost.data();
    const [correct] = await kept.correct!.data();
    return { loss: loss!, correct: correct! };
  } finally {
    tf.dispose([cost, kept.correct!]);
  }
}

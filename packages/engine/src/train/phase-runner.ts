/**
 * The one batch loop every phase runs (head, fine-tune, baseline): seeded shuffles, one optimizer
 * step per batch, the AbortSignal checked before every batch, the event loop yielded between
 * batches (a worker's IPC and lock renewals must get through while training runs on the main
 * thread), the next batch read while the current one computes, validation per epoch, and the
 * callbacks (history, warnings, checkpoints, early stopping, hooks) at each batch and epoch end.
 */
import * as tf from '@tensorflow/tfjs';
import { TrainingCancelled, TrainingError } from '../errors.ts';
import { shuffleInPlace } from '../util/random.ts';
import { CallbackList, type PhaseParams, type TrainingCallback, type Validation } from './callbacks.ts';
import { asUnsupportedOnBackend } from './freezing.ts';
import { trainingLoss, type LossOptions } from './head.ts';

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
  /** Planned epochs of the job's head and fine-tune phases (the baseline's own for the baseline). */
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
  /** The phase's PRNG: shuffles (then, in `step`, dropout masks and augmentation). */
  random: () => number;
  /** Training indices → the batch's data (called one batch ahead, so reading overlaps compute). */
  load(indices: number[]): Promise<B>;
  /** One optimizer step on a batch; returns its mean loss and number of correct predictions. */
  step(batch: B, indices: number[]): Promise<{ loss: number; correct: number }>;
  /** Validation after each epoch (inference mode); null without validation examples. */
  validate(): Promise<Validation | null>;
  callbacks: readonly TrainingCallback[];
  signal?: AbortSignal;
  /** Resume: where a checkpoint left this phase (the PRNG, weights and optimizer are restored by the caller). */
  from?: PhasePosition;
}

/** Where a phase is: what a checkpoint saves, and what a resumed phase starts from. */
export interface PhasePosition {
  /** Epochs of the phase completed. */
  epochsDone: number;
  /** Batches of the next epoch already trained (0 at an epoch boundary). */
  batchesDone: number;
  /** The training order; shuffled in place at each epoch start, so it carries over between epochs. */
  order: number[];
  /** The running sums of the epoch in progress. */
  lossSum: number;
  correct: number;
  /** The phase's epochs so far. */
  history: EpochResult[];
  /** A callback asked the phase to stop after `epochsDone` (early stopping). */
  stopped: boolean;
}

export interface PhaseOutcome {
  history: EpochResult[];
  /** A callback (early stopping) ended the phase before its last planned epoch. */
  stoppedEarly: boolean;
}

const tick = () => new Promise((r) => setImmediate(r));

/**
 * Runs a phase. Errors: TrainingCancelled on abort, TrainingError `training_diverged` on a
 * non-finite loss, `unsupported_on_backend` for a kernel or gradient the backend lacks.
 */
export async function runPhase<B>(p: PhaseLoop<B>): Promise<PhaseOutcome> {
  try {
    return await loop(p);
  } catch (err) {
    if (err instanceof TrainingError || err instanceof TrainingCancelled) throw err;
    throw asUnsupportedOnBackend(err) ?? err;
  }
}

async function loop<B>(p: PhaseLoop<B>): Promise<PhaseOutcome> {
  const n = p.nTrain;
  const batches = Math.ceil(n / p.batchSize);
  const params: PhaseParams = {
    phase: p.phase,
    epochs: p.epochs,
    epochOffset: p.epochOffset,
    totalEpochs: p.epochOffset + p.epochs + p.laterEpochs,
    batches,
    validate: () => p.validate(),
    stopTraining: p.from?.stopped ?? false,
    history: [...(p.from?.history ?? [])],
    position: () => ({ ...at, order: [...order], history: [...history], stopped: params.stopTraining }),
  };
  const callbacks = new CallbackList(p.callbacks, params);
  const order = p.from ? [...p.from.order] : Array.from({ length: n }, (_, i) => i);
  const history: EpochResult[] = [...(p.from?.history ?? [])];
  const at = { epochsDone: p.from?.epochsDone ?? 0, batchesDone: 0, lossSum: 0, correct: 0 };
  let stoppedEarly = params.stopTraining && at.epochsDone < p.epochs;
  await callbacks.onTrainBegin();
  for (let local = at.epochsDone + 1; local <= p.epochs && !stoppedEarly; local++) {
    const epoch = p.epochOffset + local;
    const started = performance.now();
    // A phase resumed mid-epoch continues that epoch's order and sums.
    const resumed = p.from && local === p.from.epochsDone + 1 && p.from.batchesDone > 0 ? p.from : null;
    if (!resumed) shuffleInPlace(order, p.random);
    const indices = (b: number) => order.slice(b * p.batchSize, (b + 1) * p.batchSize);
    let lossSum = resumed?.lossSum ?? 0;
    let correct = resumed?.correct ?? 0;
    const first = resumed?.batchesDone ?? 0;
    let next: Promise<B> | null = null;
    const prefetch = (b: number) => {
      const promise = p.load(indices(b));
      promise.catch(() => {}); // awaited below; never an unhandled rejection when we stop first
      return promise;
    };
    try {
      next = first < batches ? prefetch(first) : null;
      for (let b = first; b < batches; b++) {
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
        Object.assign(at, { batchesDone: b + 1, lossSum, correct });
        await callbacks.onBatchEnd({ phase: p.phase, epoch, epochs: params.totalEpochs, batch: b + 1, batches });
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
    Object.assign(at, { epochsDone: local, batchesDone: 0, lossSum: 0, correct: 0 });
    await callbacks.onEpochEnd(result);
    if (params.stopTraining && local < p.epochs) {
      stoppedEarly = true;
      break;
    }
  }
  await callbacks.onTrainEnd();
  return { history, stoppedEarly };
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

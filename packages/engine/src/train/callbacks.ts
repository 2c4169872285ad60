/**
 * Training's per-batch and per-epoch side effects as callbacks, in the style of tfjs-layers'
 * `BaseCallback` / `CallbackList` (src/base_callbacks.ts): the phase runner calls them in order at
 * each batch end, epoch end and phase end, and they own what the job records or does — the
 * history, the overfitting warning, checkpoints, early stopping, the caller's hooks — instead of
 * closures over the job's locals. One instance may serve several phases (the job's history,
 * checkpoints counting steps across phases, a warning given once per job).
 */
import type { EarlyStopping as EarlyStoppingSpec } from '@graft/contracts';
import type * as tf from '@tensorflow/tfjs';
import { EarlyStopper, type BestSoFar, type EarlyStopperState } from './early-stopping.ts';
import { TrainingCancelled } from '../errors.ts';
import type { BatchProgress, EpochResult, PhaseName, PhasePosition } from './phase-runner.ts';

export interface Validation {
  loss: number;
  accuracy: number;
}

/** What a phase tells its callbacks (tfjs-layers' `params`), and how they answer (`stopTraining`). */
export interface PhaseParams {
  phase: PhaseName;
  /** Planned epochs of this phase. */
  epochs: number;
  /** Global number of the phase's first epoch − 1. */
  epochOffset: number;
  /** Planned epochs of the job, for progress. */
  totalEpochs: number;
  batches: number;
  /** The phase's validation (inference mode), e.g. for a checkpoint between epochs; null without validation examples. */
  validate(): Promise<Validation | null>;
  /** Set by a callback to end the phase after the current epoch (early stopping). */
  stopTraining: boolean;
  /** The phase's epochs before this run of it (a resumed phase's; else empty). */
  history: readonly EpochResult[];
  /** Where the phase is now (a checkpoint saves it to resume from). */
  position(): PhasePosition;
}

export abstract class TrainingCallback {
  protected params!: PhaseParams;

  setParams(params: PhaseParams): void {
    this.params = params;
  }

  onTrainBegin(): void | Promise<void> {}
  onBatchEnd(_progress: BatchProgress): void | Promise<void> {}
  onEpochEnd(_result: EpochResult): void | Promise<void> {}
  onTrainEnd(): void | Promise<void> {}
}

/** Calls each callback in order, awaiting each one. */
export class CallbackList {
  constructor(private readonly callbacks: readonly TrainingCallback[], params: PhaseParams) {
    for (const c of callbacks) c.setParams(params);
  }

  async onTrainBegin(): Promise<void> {
    for (const c of this.callbacks) await c.onTrainBegin();
  }

  async onBatchEnd(progress: BatchProgress): Promise<void> {
    for (const c of this.callbacks) await c.onBatchEnd(progress);
  }

  async onEpochEnd(result: EpochResult): Promise<void> {
    for (const c of this.callbacks) await c.onEpochEnd(result);
  }

  async onTrainEnd(): Promise<void> {
    for (const c of this.callbacks) await c.onTrainEnd();
  }
}

/** Appends every epoch to a history (the job's, over the head and fine-tune phases). */
export class History extends TrainingCallback {
  constructor(readonly epochs: EpochResult[] = []) {
    super();
  }

  override onEpochEnd(result: EpochResult): void {
    this.epochs.push(result);
  }
}

/** The caller's progress hooks (`TrainingHooks.onBatch` / `onEpoch`). */
export class ProgressHooks extends TrainingCallback {
  constructor(private readonly hooks: { onBatch?(p: BatchProgress): void | Promise<void>; onEpoch?(m: EpochResult): void | Promise<void> }) {
    super();
  }

  override async onBatchEnd(progress: BatchProgress): Promise<void> {
    await this.hooks.onBatch?.(progress);
  }

  override async onEpochEnd(result: EpochResult): Promise<void> {
    await this.hooks.onEpoch?.(result);
  }
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

/** Warns once per job when a phase's epochs show overfitting (`isOverfitting` over that phase alone). */
export class OverfittingWarning extends TrainingCallback {
  private phaseEpochs: EpochResult[] = [];
  /** Given already (a resumed job keeps it, so the warning is never repeated). */
  warned = false;

  constructor(private readonly warn: (epoch: EpochResult) => Promise<void>) {
    super();
  }

  override onTrainBegin(): void {
    this.phaseEpochs = [...this.params.history];
  }

  override async onEpochEnd(result: EpochResult): Promise<void> {
    this.phaseEpochs.push(result);
    if (!this.warned && isOverfitting(this.phaseEpochs)) {
      this.warned = true;
      await this.warn(result);
    }
  }
}

export interface CheckpointRequest {
  epoch: number;
  phase: string;
  batch: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
}

/**
 * Checkpoints every epoch, or every `n` optimizer steps counted over the job's phases (a batch
 * checkpoint validates first, so it can be compared with the others). Runs after the other
 * callbacks of an epoch (early stopping included), so what it saves to resume from is complete.
 * `handBack`: the worker is leaving; a checkpoint is written at the next batch end and the job
 * stops (TrainingCancelled), for another worker to resume.
 */
export class Checkpoints extends TrainingCallback {
  /** Optimizer steps over the job's phases (a resumed job restores it: its checkpoints fall where they would have). */
  steps = 0;
  private lastWrite = 0;

  constructor(
    private readonly every: 'epoch' | number,
    private readonly write: (c: CheckpointRequest, position: PhasePosition) => Promise<unknown>,
    /** Batch checkpoints due sooner than this after the previous one are skipped. */
    private readonly minIntervalMs = 0,
    private readonly handBack?: AbortSignal,
    /** Called as a phase that will write a checkpoint begins (the writer gets ready while it trains). */
    private readonly willWrite?: (phase: PhaseName) => void,
  ) {
    super();
  }

  override onTrainBegin(): void {
    const { batches, epochs, phase } = this.params;
    if (this.every === 'epoch' || this.every <= batches * epochs) this.willWrite?.(phase);
  }

  override async onBatchEnd(p: BatchProgress): Promise<void> {
    this.steps++;
    const due = typeof this.every === 'number' && this.steps % this.every === 0 && !(this.minIntervalMs > 0 && Date.now() - this.lastWrite < this.minIntervalMs);
    if (!due && !this.handBack?.aborted) return;
    this.lastWrite = Date.now();
    const v = await this.params.validate();
    await this.write({ epoch: p.epoch, phase: this.params.phase, batch: p.batch, valLoss: v?.loss ?? null, valAccuracy: v?.accuracy ?? null }, this.params.position());
    if (this.handBack?.aborted) throw new TrainingCancelled();
  }

  override async onEpochEnd(m: EpochResult): Promise<void> {
    if (this.every === 'epoch' || this.handBack?.aborted) await this.write({ epoch: m.epoch, phase: m.phase, batch: null, valLoss: m.valLoss, valAccuracy: m.valAccuracy }, this.params.position());
    if (this.handBack?.aborted) throw new TrainingCancelled();
  }
}

/**
 * Early stopping on validation loss (Keras' EarlyStopping, monitor `val_loss`): asks the phase to
 * stop after `patience` epochs without improvement; with `restoreBestWeights` puts the best
 * epoch's weights back when the phase ends (`restoredEpoch`), stopped or not. `carry`: the best of
 * an earlier phase whose weights are the current ones, which this phase must beat.
 */
export class EarlyStopping extends TrainingCallback {
  private readonly stopper: EarlyStopper;
  /** The global epoch whose weights were put back at the end of the phase, or null. */
  restoredEpoch: number | null = null;

  constructor(spec: EarlyStoppingSpec, variables: readonly tf.Variable[], carry: BestSoFar | null = null) {
    super();
    this.stopper = new EarlyStopper(spec, variables, carry);
  }

  get best(): BestSoFar | null {
    return this.stopper.best;
  }

  state(): EarlyStopperState {
    return this.stopper.state();
  }

  restoreState(s: EarlyStopperState): void {
    this.stopper.restoreState(s);
  }

  override onEpochEnd(m: EpochResult): void {
    if (m.valLoss !== null && this.stopper.update(m.epoch, m.valLoss).stop) this.params.stopTraining = true;
  }

  override onTrainEnd(): void {
    this.restoredEpoch = this.stopper.restoreBest();
  }

  dispose(): void {
    this.stopper.dispose();
  }
}

/**
 * Early stopping on validation loss (Keras' EarlyStopping with monitor='val_loss'): an epoch
 * improves when its val loss is below the best so far by more than `minDelta`; after `patience`
 * epochs without improvement the phase stops. With `restoreBestWeights` the best epoch's weights
 * are kept (as snapshots) and put back when the phase ends, whether it stopped early or not.
 */
import * as tf from '@tensorflow/tfjs';
import type { EarlyStopping as EarlyStoppingSpec } from '@graft/contracts';

/** Copies of some variables' values, to put back later. */
export class WeightSnapshot {
  private constructor(private readonly values: tf.Tensor[], private readonly variables: readonly tf.Variable[]) {}

  static take(variables: readonly tf.Variable[]): WeightSnapshot {
    return new WeightSnapshot(variables.map((v) => tf.keep(v.clone())), variables);
  }

  restore(): void {
    this.variables.forEach((v, i) => v.assign(this.values[i]!));
  }

  /** The saved values, in the variables' order (a checkpoint's resume state keeps them). */
  read(): Float32Array[] {
    return this.values.map((t) => t.dataSync() as Float32Array);
  }

  /** A snapshot of `variables` holding `values` (from a resume state). */
  static of(variables: readonly tf.Variable[], values: readonly Float32Array[]): WeightSnapshot {
    return new WeightSnapshot(variables.map((v, i) => tf.keep(tf.tensor(values[i]!, v.shape, 'float32'))), variables);
  }

  dispose(): void {
    tf.dispose(this.values);
  }
}

export interface BestSoFar {
  valLoss: number;
  /** Global epoch number. */
  epoch: number;
}

export interface EarlyStopperState {
  best: BestSoFar | null;
  wait: number;
  /** The best epoch's weights (restoreBestWeights), in the variables' order. */
  snapshot: Float32Array[] | null;
}

export class EarlyStopper {
  private wait = 0;
  private snapshot: WeightSnapshot | null = null;
  best: BestSoFar | null;

  /**
   * `variables`: what training changes (snapshotted at each improvement when restoring). `carry`:
   * a best from an earlier phase whose weights are the current ones (phase 2 starts from phase 1's
   * restored best), so this phase must beat it and, if it never does, ends back on it.
   */
  constructor(
    readonly spec: EarlyStoppingSpec,
    private readonly variables: readonly tf.Variable[],
    carry: BestSoFar | null = null,
  ) {
    this.best = carry;
    if (carry && spec.restoreBestWeights) this.snapshot = WeightSnapshot.take(variables);
  }

  /** Records an epoch's val loss; returns whether to stop. */
  update(epoch: number, valLoss: number): { improved: boolean; stop: boolean } {
    const improved = this.best === null || valLoss < this.best.valLoss - this.spec.minDelta;
    if (improved) {
      this.best = { valLoss, epoch };
      this.wait = 0;
      if (this.spec.restoreBestWeights) {
        this.snapshot?.dispose();
        this.snapshot = WeightSnapshot.take(this.variables);
      }
    } else {
      this.wait++;
    }
    return { improved, stop: this.wait >= this.spec.patience };
  }

  /** What a resumed phase needs to go on as if never stopped: the best, the wait, the best's weights. */
  state(): EarlyStopperState {
    return { best: this.best, wait: this.wait, snapshot: this.snapshot?.read() ?? null };
  }

  restoreState(s: EarlyStopperState): void {
    this.best = s.best;
    this.wait = s.wait;
    this.snapshot?.dispose();
    this.snapshot = s.snapshot ? WeightSnapshot.of(this.variables, s.snapshot) : null;
  }

  /** Puts back the best epoch's weights (when restoring and there is one); returns its epoch. */
  restoreBest(): number | null {
    if (!this.spec.restoreBestWeights || !this.snapshot || !this.best) return null;
    this.snapshot.restore();
    return this.best.epoch;
  }

  dispose(): void {
    this.snapshot?.dispose();
    this.snapshot = null;
  }
}

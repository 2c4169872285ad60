/**
 * The training record a job builds as its stages run, written as `training.json` into the final
 * bundle and every checkpoint: what was asked, what the data and base were, what each phase did,
 * the history, the split. No local paths.
 */
import type { Augmentation, FineTuneResult, FineTuneSpec } from '@graft/contracts';
import type { ResolvedBase } from '../bases/base-source.ts';
import type { CheckpointRequest } from '../train/callbacks.ts';
import type { EpochResult, PhaseName, PhaseOutcome } from '../train/phase-runner.ts';

export interface PhaseRecord {
  phase: PhaseName;
  /** Planned. */
  epochs: number;
  epochsRun: number;
  learningRate: number;
  stoppedEarly: boolean;
  restoredEpoch: number | null;
  /** The epoch whose weights the model has after this phase. */
  modelEpoch: number;
  [extra: string]: unknown;
}

export class TrainingRecord {
  continuedFrom: string | null = null;
  trainableLayerNames: string[] = [];
  dataset: Record<string, unknown> = {};
  testDataset: Record<string, unknown> | null = null;
  head: Record<string, unknown> = {};
  classWeights: Record<string, number> | null = null;
  augmentation: Augmentation | null = null;
  featureCache = { used: true, reused: false };
  readonly phases: PhaseRecord[] = [];
  /** Every epoch of the head and fine-tune phases (the History callback appends). */
  readonly history: EpochResult[] = [];
  backend = '';
  /** What computed the frozen features when ONNX Runtime was meant to (`onnx`, or `tfjs` after a fallback); unset otherwise. */
  featureRuntime: 'onnx' | 'tfjs' | undefined = undefined;
  split: { train: string[]; validation: string[] } = { train: [], validation: [] };

  constructor(private readonly spec: FineTuneSpec, private readonly base: ResolvedBase) {}

  /** What the plan decided: the layers phase 2 unfreezes, the augmentation applied. */
  planned(plan: { fineTune: { layers: string[] } | null; augmentation: Augmentation | null }): void {
    this.trainableLayerNames = plan.fineTune ? plan.fineTune.layers : [];
    this.augmentation = plan.augmentation;
  }

  /** A phase that ended: its record, and the epoch whose weights the model has now. */
  phaseEnded(phase: PhaseName, epochs: number, learningRate: number, out: PhaseOutcome & { restoredEpoch: number | null }, extra: Record<string, unknown>): number {
    const modelEpoch = out.restoredEpoch ?? out.history.at(-1)!.epoch;
    this.phases.push({ phase, epochs, epochsRun: out.history.length, learningRate, stoppedEarly: out.stoppedEarly, restoredEpoch: out.restoredEpoch, modelEpoch, ...extra });
    return modelEpoch;
  }

  /** training.json of a checkpoint (`checkpoint`) or of the final model (`bestEpoch`, `baselineHistory`, `result`). */
  toJSON(extra: { checkpoint: CheckpointRequest } | { bestEpoch: number; baselineHistory: EpochResult[] | null; result: FineTuneResult }): Record<string, unknown> {
    const { spec } = this;
    const descriptor = this.base.descriptor;
    const hp = spec.hyperparameters;
    return {
      spec,
      baseModel: {
        id: descriptor.id,
        name: descriptor.name,
        format: descriptor.format,
        featureLayer: descriptor.featureLayer,
        inputShape: descriptor.inputShape,
        sourceKind: this.base.source.kind,
        continuedFrom: this.continuedFrom,
      },
      cutLayer: spec.cutLayer,
      trainableLayers: { spec: spec.trainableLayers, names: this.trainableLayerNames },
      dataset: this.dataset,
      testDataset: this.testDataset,
      seed: spec.seed,
      validationSplit: spec.validationSplit,
      hyperparameters: hp,
      head: this.head,
      classWeights: this.classWeights,
      augmentation: this.augmentation,
      earlyStopping: spec.earlyStopping,
      featureCache: this.featureCache,
      phases: this.phases,
      history: this.history,
      backend: this.backend,
      featureRuntime: this.featureRuntime,
      split: this.split,
      ...extra,
    };
  }
}

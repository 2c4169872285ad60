/**
 * Stage 3, plan the phases: a pure function of the spec, what the encoder allows and how many
 * validation examples there are — which phases run, for how many epochs at which rates, whether
 * batches need raw inputs (phase 2, augmentation, the baseline) or train on cached features,
 * which examples need features, early stopping, checkpoints, and the notices to emit.
 * No TensorFlow: unit-tested alone.
 */
import type { Augmentation, EarlyStopping, FineTuneSpec } from '@graft/contracts';
import { TrainingError } from '../../errors.ts';
import type { TaskUnits } from '../../tasks/task.ts';
import type { TrainingEvent } from '../options.ts';

export interface PlanInput {
  spec: FineTuneSpec;
  encoder: {
    /** The encoder is a tfjs layers model (it can be unfrozen and rebuilt from scratch). */
    trainable: boolean;
    /** Why a frozen-only encoder refuses phase 2 and the baseline. */
    frozenOnly: { code: string; message: string } | null;
    /** What `trainableLayers` selects: the names of layers with weights; how k was clamped. */
    selected: { names: readonly string[]; clampedFrom: number | null };
  };
  task: { augments: boolean; units: TaskUnits };
  validationExamples: number;
}

export interface PhasePlan {
  /** Phase 1, always: the new head on the frozen encoder, on cached features unless augmenting. */
  head: { epochs: number; learningRate: number; onFeatures: boolean };
  /** Phase 2: the selected top layers unfrozen, end to end on raw inputs. */
  fineTune: { epochs: number; learningRate: number; layers: string[] } | null;
  /** The scratch baseline: the encoder's architecture from fresh weights, every layer trainable. */
  baseline: { epochs: number; learningRate: number } | null;
  augmentation: Augmentation | null;
  /** Some phase reads raw inputs per batch (phase 2, augmentation, the baseline): the input cache is needed. */
  needsInputs: boolean;
  /** Which examples need the frozen encoder's features: all (the head trains on them), the validation ones (the augmented head validates on them), none. */
  features: 'all' | 'validation' | null;
  /** Per phase, on validation loss; null when off or without validation examples. */
  earlyStopping: EarlyStopping | null;
  checkpointEvery: 'epoch' | number;
  /** Emitted once planned, in order. */
  notices: TrainingEvent[];
  /** Emitted just before training starts. */
  trainingNotices: TrainingEvent[];
}

export function isAugmenting(aug: Augmentation | null | undefined): aug is Augmentation {
  return !!aug && (aug.flip !== 'none' || aug.rotation > 0 || aug.zoom > 0 || aug.brightness > 0 || aug.contrast > 0);
}

/**
 * Throws the encoder's `frozenOnly` error (`graph_model_frozen`) when a frozen-only encoder is asked
 * to unfreeze layers or to be rebuilt from scratch, and `unsupported_option` when the task cannot
 * augment but augmentation is asked for.
 */
export function planPhases({ spec, encoder, task, validationExamples }: PlanInput): PhasePlan {
  const hp = spec.hyperparameters;
  if (!encoder.trainable) {
    const problems: string[] = [];
    if (spec.trainableLayers !== 'none') problems.push(`trainableLayers is ${JSON.stringify(spec.trainableLayers)}`);
    if (spec.baseline === 'scratch') problems.push('baseline is "scratch"');
    if (problems.length) {
      const why = encoder.frozenOnly ?? { code: 'base_model_unusable', message: 'This base can only be a frozen feature extractor.' };
      throw new TrainingError(why.code, `${why.message} Here ${problems.join(' and ')}.`);
    }
  }
  const augmentation = isAugmenting(spec.augmentation) ? spec.augmentation : null;
  if (augmentation && !task.augments) {
    throw new TrainingError('unsupported_option', `Augmentation does not apply to ${task.units.many}: leave augmentation out.`);
  }

  const notices: TrainingEvent[] = [];
  const { names, clampedFrom } = encoder.selected;
  if (clampedFrom !== null) {
    notices.push({ level: 'info', type: 'trainable_layers', message: `trainableLayers ${clampedFrom} is more than the ${names.length} layers with weights below the cut: all of them are unfrozen in phase 2.` });
  }
  let phase2 = spec.trainableLayers !== 'none' && hp.fineTuneEpochs > 0;
  if (spec.trainableLayers === 'none' && hp.fineTuneEpochs > 0) {
    notices.push({ level: 'info', type: 'fine_tune_skipped', message: `fineTuneEpochs is ${hp.fineTuneEpochs} but trainableLayers is "none": no phase 2 (feature extraction only).` });
  } else if (phase2 && names.length === 0) {
    phase2 = false;
    notices.push({ level: 'warning', type: 'fine_tune_skipped', message: `trainableLayers selects no layer with weights (${JSON.stringify(spec.trainableLayers)}): no phase 2.` });
  }
  const baseline = spec.baseline === 'scratch';
  const fineTune = phase2 ? { epochs: hp.fineTuneEpochs, learningRate: hp.fineTuneLearningRate, layers: [...names] } : null;

  const trainingNotices: TrainingEvent[] = [];
  const es = spec.earlyStopping;
  if (es && validationExamples === 0) trainingNotices.push({ level: 'info', type: 'early_stopping', message: `No validation ${task.units.many}: early stopping is off.` });

  return {
    head: { epochs: hp.epochs, learningRate: hp.learningRate, onFeatures: !augmentation },
    fineTune,
    baseline: baseline ? { epochs: hp.epochs + (fineTune ? fineTune.epochs : 0), learningRate: hp.learningRate } : null,
    augmentation,
    needsInputs: phase2 || augmentation !== null || baseline,
    features: !augmentation ? 'all' : validationExamples > 0 ? 'validation' : null,
    earlyStopping: es && validationExamples > 0 ? es : null,
    checkpointEvery: spec.checkpointEvery,
    notices,
    trainingNotices,
  };
}

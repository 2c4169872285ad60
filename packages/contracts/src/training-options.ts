/**
 * The practitioner's options of a fine-tune (issue: the transfer-learning engine). Defaults follow
 * the Keras transfer-learning guide and TF Lite Model Maker; each is documented where declared.
 */
import { Type, type Static } from 'typebox';
import { Literals } from './common.ts';

/** Which base layers train in the second phase: none (feature extraction), the top k, or from a named layer up. */
export const TrainableLayers = Type.Union(
  [
    Type.Literal('none'),
    Type.Integer({ minimum: 1, maximum: 1000, description: 'The top k layers that have weights, below the cut.' }),
    Type.Object({ from: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false, description: 'This layer and every layer above it, up to the cut.' }),
  ],
  { default: 'none', title: 'TrainableLayers' },
);
export type TrainableLayers = Static<typeof TrainableLayers>;

export const EarlyStopping = Type.Object(
  {
    patience: Type.Integer({ minimum: 1, maximum: 100, default: 3, description: 'Epochs without improvement of val loss before stopping.' }),
    minDelta: Type.Number({ minimum: 0, maximum: 10, default: 0, description: 'Smallest decrease of val loss that counts as an improvement.' }),
    restoreBestWeights: Type.Boolean({ default: true, description: 'End with the weights of the best epoch, not the last.' }),
  },
  { additionalProperties: false, title: 'EarlyStopping' },
);
export type EarlyStopping = Static<typeof EarlyStopping>;

export const Augmentation = Type.Object(
  {
    flip: Literals(['none', 'horizontal', 'vertical', 'both'], { default: 'none' }),
    rotation: Type.Number({ minimum: 0, maximum: 180, default: 0, description: 'Random rotation up to ± this many degrees.' }),
    zoom: Type.Number({ minimum: 0, maximum: 0.5, default: 0, description: 'Random crop-and-zoom: up to this fraction cut from the sides.' }),
    brightness: Type.Number({ minimum: 0, maximum: 1, default: 0, description: 'Random brightness shift up to ± this fraction of the range.' }),
    contrast: Type.Number({ minimum: 0, maximum: 1, default: 0, description: 'Random contrast factor in [1 - c, 1 + c].' }),
  },
  { additionalProperties: false, title: 'Augmentation' },
);
export type Augmentation = Static<typeof Augmentation>;

export const ClassWeights = Type.Union([
  Type.Literal('none'),
  Type.Literal('auto'),
  Type.Record(Type.String({ minLength: 1, maxLength: 100 }), Type.Number({ exclusiveMinimum: 0, maximum: 1000 }), { maxProperties: 1000 }),
], { default: 'none', title: 'ClassWeights', description: '`auto`: n_samples / (n_classes × n_class), as scikit-learn\'s "balanced".' });
export type ClassWeights = Static<typeof ClassWeights>;

export const CHECKPOINT_EVERY_DEFAULT = 'epoch';
export const CheckpointEvery = Type.Union([Type.Literal('epoch'), Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Every N batches.' })], {
  default: CHECKPOINT_EVERY_DEFAULT,
  title: 'CheckpointEvery',
});

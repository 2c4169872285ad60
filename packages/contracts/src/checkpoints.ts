import { Type, type Static } from 'typebox';
import { Timestamp } from './common.ts';

export const Checkpoint = Type.Object({
  id: Type.String(),
  object: Type.Literal('checkpoint'),
  fineTune: Type.String(),
  phase: Type.String(),
  epoch: Type.Integer(),
  batch: Type.Union([Type.Integer(), Type.Null()], { description: 'Set for checkpoints taken every N batches.' }),
  valLoss: Type.Union([Type.Number(), Type.Null()]),
  valAccuracy: Type.Union([Type.Number(), Type.Null()]),
  isBest: Type.Boolean({ description: 'Lowest validation loss of the job so far.' }),
  bytes: Type.Integer({ description: 'Stored size. While the base is frozen (the head phase) a checkpoint is stored as the head plus a reference to the base; its download (`url`) is still the complete model, assembled on the first request, so larger than this.' }),
  url: Type.String({ description: 'Download as a model zip (same format as the final model).' }),
  createdAt: Timestamp,
}, { title: 'Checkpoint' });
export type Checkpoint = Static<typeof Checkpoint>;
export const CheckpointList = Type.Object({ data: Type.Array(Checkpoint) }, { title: 'CheckpointList' });

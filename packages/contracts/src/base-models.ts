import { Type, type Static } from 'typebox';
import { Page } from './common.ts';
import { Task } from './datasets.ts';

/**
 * How raw pixels become the model's input: decode → RGB (or grey when `channels` is 1) → resize to
 * height × width (bilinear) → value = pixel (0..255) × scale + offset.
 */
export const Preprocessing = Type.Object(
  {
    height: Type.Integer({ minimum: 1 }),
    width: Type.Integer({ minimum: 1 }),
    channels: Type.Union([Type.Literal(1), Type.Literal(3)]),
    resize: Type.Literal('bilinear'),
    scale: Type.Number(),
    offset: Type.Number(),
  }
);
export type Preprocessing = Static<typeof Preprocessing>;

export const BaseModel = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('base_model'),
    name: Type.String(),
    task: Task,
    description: Type.String(),
    format: Type.Union([Type.Literal('tfjs-layers'), Type.Literal('tfjs-graph')]),
    inputShape: Type.Array(Type.Integer(), { description: '[height, width, channels]' }),
    featureLayer: Type.String({ description: 'The layer the base is cut at; the new head starts there.' }),
    featureShape: Type.Array(Type.Integer()),
    preprocessing: Preprocessing,
    source: Type.String({ description: 'Where the weights come from.' }),
    license: Type.String(),
    pretrainedOn: Type.String({ description: 'The task the base learnt: transfer works best when yours is close.' }),
  }
);
export type BaseModel = Static<typeof BaseModel>;

export const BaseModelList = Page(BaseModel);

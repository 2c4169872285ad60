import { Type, type Static } from 'typebox';
import { Literals, Page } from './common.ts';
import { TASKS, Task } from './datasets.ts';

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

/** What a user says about a base they register (`POST /v1/base-models`); the rest is measured. */
export const CreateBaseModelSpec = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    featureLayer: Type.String({ minLength: 1, maxLength: 200, description: 'Layer (or graph node) whose output feeds the new head.' }),
    preprocessing: Type.Object(
      {
        height: Type.Integer({ minimum: 8, maximum: 1024 }),
        width: Type.Integer({ minimum: 8, maximum: 1024 }),
        channels: Type.Union([Type.Literal(1), Type.Literal(3)]),
        resize: Type.Optional(Type.Literal('bilinear')),
        scale: Type.Number(),
        offset: Type.Number(),
      },
      { additionalProperties: false },
    ),
    task: Type.Optional(Literals(TASKS)),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    license: Type.Optional(Type.String({ maxLength: 200 })),
    pretrainedOn: Type.Optional(Type.String({ maxLength: 500, description: 'What the base learnt; shown to users judging transfer.' })),
    url: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2000, description: "A hosted tfjs model's model.json; fetched once and stored." })),
  },
  { additionalProperties: false },
);
export type CreateBaseModelSpec = Static<typeof CreateBaseModelSpec>;

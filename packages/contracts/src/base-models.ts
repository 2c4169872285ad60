import { Type, type Static } from 'typebox';
import { Deleted, Literals, Page } from './common.ts';
import { parseWith } from './validate.ts';

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
  },
  { title: 'Preprocessing' },
);
export type Preprocessing = Static<typeof Preprocessing>;

/** The tokenizer model of a text base, as `tokenizer.json` names it (`model.type`, lower-cased). */
export const TOKENIZER_KINDS = ['wordpiece', 'bpe', 'unigram', 'wordlevel'] as const;
export type TokenizerKind = (typeof TOKENIZER_KINDS)[number];

/**
 * How a text base turns the encoder's token states into one vector per text: `cls` the first token's
 * state, `mean` the mean over the tokens the attention mask keeps (padding excluded), `none` the
 * encoder already outputs one vector per text (Universal-Sentence-Encoder-style graph models).
 */
export const TEXT_POOLINGS = ['cls', 'mean', 'none'] as const;
export type TextPooling = (typeof TEXT_POOLINGS)[number];

/** What a user may choose when registering an encoder that outputs token states. */
export const REGISTRABLE_POOLINGS = ['cls', 'mean'] as const;

/** Text bases: ONNX encoders run by onnxruntime (frozen), tfjs layers encoders (fine-tunable), tfjs graph encoders (frozen). */
export const TEXT_BASE_FORMATS = ['onnx', 'tfjs-layers', 'tfjs-graph'] as const;
export const IMAGE_BASE_FORMATS = ['tfjs-layers', 'tfjs-graph'] as const;
export type BaseModelFormat = (typeof TEXT_BASE_FORMATS)[number];

/** Explicit bounds on a text base's sequence length (tokens per text, [CLS]/[SEP] included). */
export const TEXT_MAX_LENGTH = { min: 8, max: 8192, default: 128 } as const;

/**
 * How raw text becomes a text base's input: the tokenizer (files in the base's folder) splits it,
 * adds the special tokens its post-processor names ([CLS] … [SEP] for BERT), truncates or pads to
 * `maxLength`; the encoder runs; `pooling` makes one `[hidden]` vector per text.
 */
export const TextPreprocessing = Type.Object(
  {
    tokenizer: Type.Object({
      kind: Literals(TOKENIZER_KINDS),
      files: Type.Array(Type.String(), { description: 'Tokenizer files kept with the base (e.g. tokenizer.json, tokenizer_config.json).' }),
      vocabSize: Type.Integer({ minimum: 1 }),
      lowercase: Type.Boolean({ description: 'Whether the tokenizer lower-cases text first (uncased models).' }),
    }),
    maxLength: Type.Integer({ minimum: 1, description: 'Tokens per text after truncation, special tokens included.' }),
    pooling: Literals(TEXT_POOLINGS),
  },
  { title: 'TextPreprocessing' },
);
export type TextPreprocessing = Static<typeof TextPreprocessing>;

/** Fields every base has, whatever its task. */
const CommonBaseFields = {
  id: Type.String(),
  object: Type.Literal('base_model'),
  name: Type.String(),
  description: Type.String(),
  source: Type.String({ description: 'Where the weights come from.' }),
  license: Type.String(),
  pretrainedOn: Type.String({ description: 'The task the base learnt: transfer works best when yours is close.' }),
};

export const ImageBaseModel = Type.Object(
  {
    ...CommonBaseFields,
    task: Type.Literal('image-classification'),
    format: Literals(IMAGE_BASE_FORMATS),
    inputShape: Type.Array(Type.Integer(), { description: '[height, width, channels]' }),
    featureLayer: Type.String({ description: 'The layer the base is cut at; the new head starts there.' }),
    featureShape: Type.Array(Type.Integer()),
    preprocessing: Preprocessing,
  },
  { title: 'ImageBaseModel' },
);
export type ImageBaseModel = Static<typeof ImageBaseModel>;

export const TextBaseModel = Type.Object(
  {
    ...CommonBaseFields,
    task: Type.Literal('text-classification'),
    format: Literals(TEXT_BASE_FORMATS),
    inputShape: Type.Array(Type.Integer(), { description: '[maxLength]: token ids per text (with an attention mask of the same shape).' }),
    featureLayer: Type.String({ description: "Where sentence features are read: the ONNX output (e.g. `last_hidden_state`, then pooled), or the tfjs layer / graph node." }),
    featureShape: Type.Array(Type.Integer(), { description: '[hidden]: one vector per text after pooling.' }),
    preprocessing: TextPreprocessing,
  },
  { title: 'TextBaseModel' },
);
export type TextBaseModel = Static<typeof TextBaseModel>;

/** A base: an image or a text encoder, told apart by `task`. */
export const BaseModel = Type.Union([ImageBaseModel, TextBaseModel], { title: 'BaseModel' });
export type BaseModel = ImageBaseModel | TextBaseModel;

export const isTextBase = (b: BaseModel): b is TextBaseModel => b.task === 'text-classification';
export const isImageBase = (b: BaseModel): b is ImageBaseModel => b.task === 'image-classification';

export const BaseModelList = Page(BaseModel, 'BaseModelList');
export const BaseModelDeleted = Deleted('base_model', 'BaseModelDeleted');

const RegistrationFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  license: Type.Optional(Type.String({ maxLength: 200 })),
  pretrainedOn: Type.Optional(Type.String({ maxLength: 500, description: 'What the base learnt; shown to users judging transfer.' })),
};

/** What a user says about an image base they register; the rest is measured. */
export const CreateImageBaseModelSpec = Type.Object(
  {
    ...RegistrationFields,
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
    task: Type.Optional(Type.Literal('image-classification')),
    url: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2000, description: "A hosted tfjs model's model.json; fetched once and stored." })),
  },
  { additionalProperties: false, title: 'CreateImageBaseModelSpec' },
);
export type CreateImageBaseModelSpec = Static<typeof CreateImageBaseModelSpec>;

/**
 * What a user says about a text encoder they register (ONNX, the layout Hugging Face publishes for
 * transformers.js: `model.onnx` or `onnx/model.onnx`, `tokenizer.json`, `config.json`); hidden
 * size, vocabulary, input names and types are measured by loading it.
 */
export const CreateTextBaseModelSpec = Type.Object(
  {
    ...RegistrationFields,
    task: Type.Literal('text-classification'),
    format: Type.Optional(
      Literals(['onnx', 'tfjs-graph'] as const, {
        description:
          '`onnx` (default): an ONNX encoder folder. `tfjs-graph`: a Universal-Sentence-Encoder-style TensorFlow.js graph by URL (`url` its model.json, `vocabUrl` its SentencePiece vocab.json), frozen.',
      }),
    ),
    vocabUrl: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2000, description: 'With `format: "tfjs-graph"`: the graph\'s vocab.json ([piece, score] pairs); fetched once and stored.' })),
    pooling: Type.Optional(Literals(REGISTRABLE_POOLINGS, { description: '`mean` (default) over the attention mask, or `cls` (the first token).' })),
    maxLength: Type.Optional(
      Type.Integer({
        minimum: TEXT_MAX_LENGTH.min,
        maximum: TEXT_MAX_LENGTH.max,
        description: `Tokens per text (longer texts are truncated). Default ${TEXT_MAX_LENGTH.default}, or the model's own limit when lower.`,
      }),
    ),
    outputName: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'The ONNX output with the token states (default `last_hidden_state`, else the only rank-3 output); for a graph, the node with the sentence vectors (default its only output).' })),
    modelFile: Type.Optional(Type.String({ minLength: 1, maxLength: 300, pattern: '\\.onnx$', description: 'The ONNX file in the folder (e.g. `onnx/model_quantized.onnx`). Default `onnx/model.onnx`, else `model.onnx`.' })),
    url: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2000, description: 'A .zip of the folder, or the folder itself (its files are fetched relative to it); fetched once and stored.' })),
  },
  { additionalProperties: false, title: 'CreateTextBaseModelSpec' },
);
export type CreateTextBaseModelSpec = Static<typeof CreateTextBaseModelSpec>;

/** What a user says about a base they register (`POST /v1/base-models`); told apart by `task`. */
export const CreateBaseModelSpec = Type.Union([CreateImageBaseModelSpec, CreateTextBaseModelSpec]);
export type CreateBaseModelSpec = CreateImageBaseModelSpec | CreateTextBaseModelSpec;

/**
 * Checks a registration spec against the branch its `task` picks (image when absent), so that an
 * error names the field at fault rather than "matches no branch of the union".
 */
export function parseCreateBaseModelSpec(value: unknown, what = 'spec'): CreateBaseModelSpec {
  const task = value && typeof value === 'object' ? (value as { task?: unknown }).task : undefined;
  return task === 'text-classification' ? parseWith(CreateTextBaseModelSpec, value, what) : parseWith(CreateImageBaseModelSpec, value, what);
}

/** A registration spec as `POST /v1/base-models` takes it in JSON: the same fields with `url` required. */
function byUrl<T extends typeof CreateImageBaseModelSpec | typeof CreateTextBaseModelSpec>(spec: T, title: string) {
  const { url, ...fields } = spec.properties;
  return Type.Object({ ...fields, url: Type.String({ pattern: '^https?://', maxLength: 2000, description: (url as { description?: string }).description }) }, { additionalProperties: false, title });
}

/** `POST /v1/base-models` as JSON (documents the body; the handler checks it with `parseCreateBaseModelSpec`). */
export const CreateBaseModelFromUrl = Type.Union(
  [byUrl(CreateImageBaseModelSpec, 'CreateImageBaseModelFromUrl'), byUrl(CreateTextBaseModelSpec, 'CreateTextBaseModelFromUrl')],
  { title: 'CreateBaseModelFromUrl', description: 'A hosted model by URL and what to do with it; `task` picks the kind (image when absent).' },
);

/** `POST /v1/base-models` as multipart/form-data: the model zip and its spec (JSON, without `url`). */
export const CreateBaseModelForm = Type.Object(
  {
    file: Type.String({ format: 'binary', contentMediaType: 'application/zip', description: 'A .zip of the model: model.json and its weight shards (tfjs), or an ONNX encoder folder.' }),
    spec: Type.Union(
      [
        Type.Omit(CreateImageBaseModelSpec, ['url'], { additionalProperties: false, title: 'ImageBaseModelSpec' }),
        Type.Omit(CreateTextBaseModelSpec, ['url'], { additionalProperties: false, title: 'TextBaseModelSpec' }),
      ],
      { description: 'JSON: what the model is and how to feed it; `task` picks the kind (image when absent).' },
    ),
  },
  { title: 'CreateBaseModelForm' },
);

import { Type, type Static } from 'typebox';
import { TEXT_DATASET_LIMITS } from './datasets.ts';

/**
 * Explicit limits of `POST /v1/fine-tunes/{id}/predict`. A request over one is refused with its own
 * code: more inputs than `maxInputs` → 413 `too_many_inputs`; an image over `maxImageBytes` or a
 * body over `maxBodyBytes` → 413 `payload_too_large`; no answer within the time limit
 * (`PREDICT_TIMEOUT_MS`, configuration) → 504 `prediction_timeout`.
 */
export const PREDICT_LIMITS = {
  /** Inputs in one request (a batch). */
  maxInputs: 32,
  /** Bytes of one image (decoded, not base64). */
  maxImageBytes: 10 * 1024 * 1024,
  /** Bytes of a JSON body (base64 makes images a third larger). */
  maxBodyBytes: 48 * 1024 * 1024,
  /** Characters of one text. */
  maxTextLength: TEXT_DATASET_LIMITS.maxTextLength,
  /** Largest `topK`. */
  maxTopK: 100,
} as const;

export const ImageInput = Type.Object(
  {
    image: Type.String({ minLength: 1, contentEncoding: 'base64', description: `A JPEG or PNG file, base64-encoded (at most ${PREDICT_LIMITS.maxImageBytes} bytes decoded).` }),
  },
  { additionalProperties: false, title: 'ImageInput' },
);

export const PredictRequest = Type.Object(
  {
    inputs: Type.Array(
      Type.Union([
        Type.String({ minLength: 1, maxLength: PREDICT_LIMITS.maxTextLength, description: 'A text (text models).' }),
        ImageInput,
      ]),
      { minItems: 1, description: `Images as \`{ "image": "<base64>" }\` (image models) or texts (text models), at most ${PREDICT_LIMITS.maxInputs} (413 \`too_many_inputs\`). Answered in the same order.` },
    ),
    topK: Type.Optional(Type.Integer({ minimum: 1, maximum: PREDICT_LIMITS.maxTopK, description: 'Classes listed per input, most probable first (default 3, at most the number of classes).' })),
  },
  { additionalProperties: false, title: 'PredictRequest' },
);
export type PredictRequest = Static<typeof PredictRequest>;

/** `POST …/predict` as multipart/form-data: one `image` part per image (in order), or `text` fields, and `topK`. */
export const PredictForm = Type.Object(
  {
    image: Type.Optional(Type.Array(Type.String({ format: 'binary' }), { description: 'Image files (JPEG, PNG), in order; repeat the part.' })),
    text: Type.Optional(Type.Array(Type.String(), { description: 'Texts, in order; repeat the field.' })),
    topK: Type.Optional(Type.Integer({ minimum: 1, maximum: PREDICT_LIMITS.maxTopK })),
  },
  { title: 'PredictForm' },
);

export const LabelProbability = Type.Object({ label: Type.String(), probability: Type.Number() }, { title: 'LabelProbability' });

export const Prediction = Type.Object(
  {
    index: Type.Integer({ description: 'Position of the input in the request.' }),
    label: Type.String({ description: 'The most probable class.' }),
    probability: Type.Number({ description: "The label's probability." }),
    topK: Type.Array(LabelProbability, { description: 'The most probable classes, most probable first.' }),
    probabilities: Type.Array(Type.Number(), { description: 'One per class, in `labels` order.' }),
  },
  { title: 'Prediction' },
);
export type Prediction = Static<typeof Prediction>;

export const PredictionList = Type.Object(
  {
    object: Type.Literal('list'),
    model: Type.String({ description: 'The fine-tune whose model answered.' }),
    checkpoint: Type.Union([Type.String(), Type.Null()], { description: 'The checkpoint that answered, or null for the final model.' }),
    task: Type.String(),
    labels: Type.Array(Type.String(), { description: 'Class names in output order.' }),
    data: Type.Array(Prediction, { description: 'One per input, in input order.' }),
    runtime: Type.Object(
      {
        name: Type.Union([Type.Literal('onnx'), Type.Literal('tfjs')], {
          description: "`onnx`: ONNX Runtime (an image model converted and checked against TensorFlow.js, or a text model's encoder, its head in TensorFlow.js); `tfjs`: TensorFlow.js.",
        }),
        reason: Type.Union([Type.String(), Type.Null()], { description: 'Why not ONNX Runtime, when the server asks for it (`GRAFT_FROZEN_RUNTIME`) and the model did not convert or check out; else null.' }),
      },
      { description: 'What computed the predictions.' },
    ),
    timing: Type.Object(
      {
        queuedMs: Type.Integer({ description: 'Waiting for a prediction thread (and starting it, the first time).' }),
        loadMs: Type.Integer({ description: 'Loading the model (0 when it was already loaded).' }),
        inferenceMs: Type.Integer(),
      },
      { description: 'Where the time went.' },
    ),
  },
  { title: 'PredictionList' },
);
export type PredictionList = Static<typeof PredictionList>;

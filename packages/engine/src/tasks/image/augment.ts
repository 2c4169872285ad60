/**
 * Seeded data augmentation on a batch of decoded images (pixel values 0..255, NHWC), as Keras'
 * preprocessing layers do it: RandomFlip, RandomRotation and RandomZoom (crop-and-zoom) as one
 * projective transform per image (bilinear, `reflect` fill, Keras' default), then RandomBrightness
 * (± factor × 255) and RandomContrast ((x − mean) × f + mean per image and channel), clipped to
 * 0..255. Every random draw comes from the given PRNG: same seed → same batch.
 */
import * as tf from '@tensorflow/tfjs';
import type { Augmentation } from '@graft/contracts';

export interface AugmentParams {
  flipH: boolean;
  flipV: boolean;
  /** Radians. */
  angle: number;
  /** Fraction cut from the sides (the crop keeps 1 − zoom of each side). */
  zoom: number;
  /** Crop position inside the margin, each in [0, 1]. */
  cropX: number;
  cropY: number;
  /** Added to the pixel values (0..255 range). */
  brightness: number;
  contrast: number;
}

/** One image's random parameters. Always draws the same number of values, so streams stay aligned. */
export function drawAugmentParams(aug: Augmentation, random: () => number): AugmentParams {
  const r = Array.from({ length: 8 }, () => random());
  const flipH = (aug.flip === 'horizontal' || aug.flip === 'both') && r[0]! < 0.5;
  const flipV = (aug.flip === 'vertical' || aug.flip === 'both') && r[1]! < 0.5;
  return {
    flipH,
    flipV,
    angle: ((r[2]! * 2 - 1) * aug.rotation * Math.PI) / 180,
    zoom: r[3]! * aug.zoom,
    cropX: r[4]!,
    cropY: r[5]!,
    brightness: (r[6]! * 2 - 1) * aug.brightness * 255,
    contrast: 1 + (r[7]! * 2 - 1) * aug.contrast,
  };
}

/**
 * The 8 numbers of tf.image.transform mapping an output pixel (x, y) to the input point it samples:
 * in = c + t + s·R(θ)·F·(out − c), with c the image centre, F the flips, s = 1 − zoom and t the
 * crop's offset from the centre.
 */
export function transformFor(p: AugmentParams, height: number, width: number): number[] {
  const cx = (width - 1) / 2;
  const cy = (height - 1) / 2;
  const s = 1 - p.zoom;
  const fx = p.flipH ? -1 : 1;
  const fy = p.flipV ? -1 : 1;
  const cos = Math.cos(p.angle);
  const sin = Math.sin(p.angle);
  const m00 = s * cos * fx, m01 = -s * sin * fy;
  const m10 = s * sin * fx, m11 = s * cos * fy;
  const tx = (p.cropX - 0.5) * p.zoom * width;
  const ty = (p.cropY - 0.5) * p.zoom * height;
  return [m00, m01, cx + tx - (m00 * cx + m01 * cy), m10, m11, cy + ty - (m10 * cx + m11 * cy), 0, 0];
}

/** Augments a batch [b, h, w, c] of 0..255 pixel values; returns a new tensor of the same shape. */
export function augmentBatch(pixels: tf.Tensor4D, aug: Augmentation, random: () => number): tf.Tensor4D {
  const [b, h, w] = pixels.shape;
  const params = Array.from({ length: b }, () => drawAugmentParams(aug, random));
  return tf.tidy(() => {
    let x = pixels;
    if (aug.flip !== 'none' || aug.rotation > 0 || aug.zoom > 0) {
      const transforms = tf.tensor2d(params.map((p) => transformFor(p, h, w)), [b, 8]);
      x = tf.image.transform(x, transforms, 'bilinear', 'reflect');
    }
    if (aug.brightness > 0) x = x.add(tf.tensor4d(params.map((p) => p.brightness), [b, 1, 1, 1]));
    if (aug.contrast > 0) {
      const mean = x.mean([1, 2], true);
      x = x.sub(mean).mul(tf.tensor4d(params.map((p) => p.contrast), [b, 1, 1, 1])).add(mean);
    }
    return x === pixels ? x.clone() : (x.clipByValue(0, 255) as tf.Tensor4D);
  });
}

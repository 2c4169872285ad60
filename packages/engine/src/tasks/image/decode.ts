/**
 * Image bytes → 8-bit RGB pixels, with the limits that guard against decompression bombs. No
 * TensorFlow here: the API decodes every image of an upload with this very function and these
 * limits, so an image it accepts is one the trainer can read.
 */
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { inflateSync } from 'node:zlib';
import { readImageHeader } from './image-header.ts';

/** 8-bit RGB pixels, row-major. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface DecodeLimits {
  /** Largest image accepted, in pixels: guards against decompression bombs (a tiny file that claims a huge size). */
  maxPixels: number;
  /** jpeg-js' cap on the memory its decoder may allocate. */
  maxMemoryMB: number;
}

export const DECODE_LIMITS: DecodeLimits = { maxPixels: 40_000_000, maxMemoryMB: 1024 };

/** Decodes a JPEG or PNG (any bit depth, grey, palette, alpha) to 8-bit RGB. Throws on anything else. */
export function decodeImage(bytes: Uint8Array, limits: DecodeLimits = DECODE_LIMITS): RgbImage {
  const header = readImageHeader(bytes);
  if (!header) throw new Error('not a JPEG or PNG image');
  if (header.width === 0 || header.height === 0) throw new Error(`image is ${header.width}x${header.height}: it has no pixels`);
  // Check the declared size before allocating anything for it.
  if (header.width * header.height > limits.maxPixels) {
    throw new Error(`image is ${header.width}x${header.height}; the limit is ${limits.maxPixels} pixels`);
  }
  if (header.format === 'jpeg') {
    const img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      maxResolutionInMP: limits.maxPixels / 1e6,
      maxMemoryUsageInMB: limits.maxMemoryMB,
    });
    return { width: img.width, height: img.height, data: img.data };
  }
  checkPngData(bytes);
  // pngjs expands grey, palette and grey+alpha to RGBA and rescales 16-bit samples to 8 bits.
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const n = png.width * png.height;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    rgb[i * 3] = png.data[j]!;
    rgb[i * 3 + 1] = png.data[j + 1]!;
    rgb[i * 3 + 2] = png.data[j + 2]!;
  }
  return { width: png.width, height: png.height, data: rgb };
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ADAM7: [number, number, number, number][] = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

/**
 * Inflates a PNG's image data with zlib's own checks (its Adler-32 trailer included) and compares
 * the length with what the header implies. pngjs' synchronous reader stops inflating once it has
 * enough bytes and checks no trailer, so a corrupt IDAT could decode into different garbage from
 * one call to the next; refusing it here makes the answer the same every time, at upload and in
 * training.
 */
function checkPngData(bytes: Uint8Array): void {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0;
  let height = 0;
  let bitsPerPixel = 0;
  let interlaced = false;
  const idat: Buffer[] = [];
  for (let i = 8; i + 8 <= buf.length; ) {
    const len = buf.readUInt32BE(i);
    const type = buf.toString('latin1', i + 4, i + 8);
    if (i + 12 + len > buf.length) throw new Error(`PNG chunk ${type} is truncated`);
    const data = buf.subarray(i + 8, i + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const channels = CHANNELS[data[9]!];
      if (!channels) throw new Error(`PNG colour type ${data[9]} is not valid`);
      bitsPerPixel = data[8]! * channels;
      interlaced = data[12] === 1;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    i += 12 + len;
  }
  if (idat.length === 0) throw new Error('PNG has no image data (IDAT)');
  const row = (w: number) => 1 + Math.ceil((w * bitsPerPixel) / 8);
  const expected = interlaced
    ? ADAM7.reduce((sum, [x0, y0, dx, dy]) => {
        const w = width > x0 ? Math.ceil((width - x0) / dx) : 0;
        const h = height > y0 ? Math.ceil((height - y0) / dy) : 0;
        return sum + (w && h ? h * row(w) : 0);
      }, 0)
    : height * row(width);
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: expected + 1 });
  } catch (err) {
    throw new Error(`corrupt PNG image data: ${(err as Error).message}`);
  }
  if (raw.length !== expected) throw new Error(`corrupt PNG image data: ${raw.length} bytes where the header implies ${expected}`);
}

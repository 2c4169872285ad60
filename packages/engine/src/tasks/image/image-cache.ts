/**
 * The image task's input cache, the decoded-image cache: every image decoded, converted and resized once (per job, or once per
 * dataset + preprocessing when a shared cache directory is given), stored as uint8 pixel values in
 * one flat file (`count` records of height × width × channels bytes, in the order of `paths`), and
 * read back a batch at a time with positioned reads. Memory stays bounded by the batch, whatever the
 * dataset's size: a 224x224x3 image is 150,528 bytes on disk and 602 KB as a float32 tensor.
 *
 * Pixels are the values after grey conversion and resize, before `scale`/`offset`, rounded to
 * 0..255 (the exact float path is kept for the feature pass and the final evaluation). Training
 * batches are augmented here, on the decoded pixels, when the job asks for it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Augmentation, Preprocessing } from '@graft/contracts';
import type { InputCache, InputCacheStore, InputCacheWriter } from '../task.ts';
import { augmentBatch } from './augment.ts';
import { scalePixels } from './preprocess.ts';

export const IMAGE_CACHE_VERSION = 1;

export interface ImageCacheIndex {
  version: number;
  /** [height, width, channels] of every record. */
  shape: [number, number, number];
  dtype: 'uint8';
  /** Archive paths, in record order. */
  paths: string[];
}

/** Where a dataset's images live in a shared cache: `<cacheDir>/images/<key>.u8` (+ `.json`). */
export function imageCacheKey(datasetSha256: string, pre: Preprocessing): string {
  const { height, width, channels, resize } = pre;
  return createHash('sha256').update(JSON.stringify({ v: IMAGE_CACHE_VERSION, dataset: datasetSha256, height, width, channels, resize })).digest('hex');
}

export function imageCacheFiles(dir: string, key: string): { data: string; index: string } {
  return { data: join(dir, `${key}.u8`), index: join(dir, `${key}.json`) };
}

export class ImageCache implements InputCache<Uint8Array> {
  readonly recordBytes: number;
  readonly row: ReadonlyMap<string, number>;

  private constructor(
    readonly file: string,
    readonly index: ImageCacheIndex,
    private readonly fh: FileHandle,
    private readonly pre: Preprocessing,
    private readonly augmentation: Augmentation | null,
  ) {
    const [h, w, c] = index.shape;
    this.recordBytes = h * w * c;
    this.row = new Map(index.paths.map((p, i) => [p, i]));
  }

  get count(): number {
    return this.index.paths.length;
  }

  /**
   * Opens a complete cache; null when it is missing, incomplete or for other paths/shape. `pre`
   * scales pixels into model inputs; `augmentation` is applied to training batches.
   */
  static async open(
    files: { data: string; index: string },
    expect: { paths: readonly string[]; shape: readonly number[]; pre: Preprocessing; augmentation?: Augmentation | null },
  ): Promise<ImageCache | null> {
    let index: ImageCacheIndex;
    try {
      index = JSON.parse(await readFile(files.index, 'utf8')) as ImageCacheIndex;
      const size = (await stat(files.data)).size;
      const [h, w, c] = index.shape;
      if (
        index.version !== IMAGE_CACHE_VERSION ||
        index.dtype !== 'uint8' ||
        index.shape.join() !== expect.shape.join() ||
        index.paths.length !== expect.paths.length ||
        index.paths.some((p, i) => p !== expect.paths[i]) ||
        size !== index.paths.length * h * w * c
      ) {
        return null;
      }
    } catch {
      return null;
    }
    return new ImageCache(files.data, index, await open(files.data, 'r'), expect.pre, expect.augmentation ?? null);
  }

  /** The records of `rows`, concatenated in that order. */
  async read(rows: readonly number[]): Promise<Uint8Array> {
    const out = new Uint8Array(rows.length * this.recordBytes);
    await Promise.all(
      rows.map(async (r, k) => {
        if (!(r >= 0 && r < this.count)) throw new Error(`image cache row ${r} out of range`);
        const { bytesRead } = await this.fh.read(out, k * this.recordBytes, this.recordBytes, r * this.recordBytes);
        if (bytesRead !== this.recordBytes) throw new Error(`short read from the image cache (row ${r})`);
      }),
    );
    return out;
  }

  /** Bytes read by `read` → float32 pixel values [n, h, w, c] (0..255; not yet scaled). */
  pixels(bytes: Uint8Array): tf.Tensor4D {
    const [h, w, c] = this.index.shape;
    return tf.tensor4d(Float32Array.from(bytes), [bytes.length / this.recordBytes, h, w, c]);
  }

  /**
   * Bytes read by `read` → model input [n, h, w, c] (pixel × scale + offset); with a PRNG, the
   * job's augmentation first (drawn from it), on the 0..255 pixels.
   */
  inputs(bytes: Uint8Array, random: (() => number) | null): tf.Tensor4D {
    return tf.tidy(() => {
      const px = this.pixels(bytes);
      return scalePixels(random && this.augmentation ? augmentBatch(px, this.augmentation, random) : px, this.pre);
    });
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/**
 * Writes a cache to a temporary file next to its destination and renames both files into place
 * when complete (so a concurrent reader sees either no cache or a whole one).
 */
export class ImageCacheWriter implements InputCacheWriter {
  private readonly tmpData: string;
  private readonly recordBytes: number;
  private written = 0;

  private constructor(
    private readonly files: { data: string; index: string },
    private readonly index: ImageCacheIndex,
    private readonly fh: FileHandle,
    tmpData: string,
  ) {
    this.tmpData = tmpData;
    const [h, w, c] = index.shape;
    this.recordBytes = h * w * c;
  }

  static async create(files: { data: string; index: string }, paths: readonly string[], shape: [number, number, number]): Promise<ImageCacheWriter> {
    await mkdir(dirname(files.data), { recursive: true });
    const tmp = `${files.data}.${randomUUID()}.tmp`;
    const fh = await open(tmp, 'w');
    return new ImageCacheWriter(files, { version: IMAGE_CACHE_VERSION, shape, dtype: 'uint8', paths: [...paths] }, fh, tmp);
  }

  /** Pixel values (0..255 floats, [h, w, c]) of record `row`, rounded and clamped to uint8. */
  async write(row: number, pixels: Float32Array | Uint8Array): Promise<void> {
    if (pixels.length !== this.recordBytes) throw new Error(`image record has ${pixels.length} values, expected ${this.recordBytes}`);
    const bytes = pixels instanceof Uint8Array ? pixels : Uint8Array.from(pixels, (v) => Math.min(255, Math.max(0, Math.round(v))));
    await this.fh.write(bytes, 0, bytes.length, row * this.recordBytes);
    this.written++;
  }

  /** Closes, checks every record was written, and moves the files into place. */
  async finish(): Promise<void> {
    await this.fh.close();
    if (this.written < this.index.paths.length) {
      await rm(this.tmpData, { force: true });
      throw new Error(`image cache incomplete: ${this.written} of ${this.index.paths.length} records`);
    }
    await rename(this.tmpData, this.files.data);
    const tmpIndex = `${this.files.index}.${randomUUID()}.tmp`;
    await writeFile(tmpIndex, JSON.stringify(this.index));
    await rename(tmpIndex, this.files.index);
  }

  /** Drops the temporary file (after a failure or cancellation). */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => {});
    await rm(this.tmpData, { force: true });
  }
}

/** The decoded-image cache as the image task's `InputCacheStore`. */
export function imageCacheStore(pre: Preprocessing): InputCacheStore<Uint8Array> {
  const shape: [number, number, number] = [pre.height, pre.width, pre.channels];
  const bytesFor = (count: number) => count * shape[0] * shape[1] * shape[2];
  return {
    eventType: 'images',
    // Shared: <cacheDir>/images/<key>.u8; a job's own: <workDir>/images.u8.
    files: (root, datasetSha256) => (datasetSha256 ? imageCacheFiles(join(root, 'images'), imageCacheKey(datasetSha256, pre)) : imageCacheFiles(root, 'images')),
    open: (files, ids, augmentation) => ImageCache.open(files, { paths: ids, shape, pre, augmentation }),
    create: (files, ids) => ImageCacheWriter.create(files, ids, shape),
    reused: (count) => `Reused the decoded-image cache (${count} images at ${shape.join('x')}).`,
    stored: (count) => ({ message: `Stored ${count} decoded ${shape.join('x')} images (${(bytesFor(count) / 1e6).toFixed(1)} MB on disk).`, bytes: bytesFor(count) }),
  };
}

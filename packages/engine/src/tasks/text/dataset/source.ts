/**
 * The bytes of an uploaded text file, whatever it came in: plain, gzipped, or the single file of a
 * zip (which may itself be gzipped). The container is told by magic bytes, never by the name; the
 * bytes are streamed (Node's zlib, yauzl), never held whole, and counted as they are inflated.
 */
import { ARCHIVE_LIMITS, GraftError, TEXT_DATASET_LIMITS, type ArchiveLimits, type TextDatasetLimits } from '@graft/contracts';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { openZip, zipEntries, type ZipEntry, type ZipFile } from '../../../util/zip.ts';
import { ZipGuard, zipListingError } from '../../../util/zip-guard.ts';

export type Compression = 'none' | 'gzip' | 'zip';

export interface TextSource {
  /** The text file's bytes, decompressed, in order (BOM included). */
  chunks: Chunks;
  compression: Compression;
  /** The file's name inside the zip. */
  entry: string | null;
  /** The name that tells the format, if any (the zip entry, or the upload without `.gz`). */
  name: string;
  close(): void;
}

const READ_CHUNK = 256 * 1024;
const IMAGE_NAME = /\.(jpe?g|png|gif|bmp|webp)$/i;

const isZip = (b: Buffer) => b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && (b[2] === 3 || b[2] === 5) && (b[3] === 4 || b[3] === 6);
const isGzip = (b: Buffer) => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;

function invalid(message: string): GraftError {
  return new GraftError('invalid_text_dataset', message, 'file');
}

/**
 * An async sequence of chunks whose first bytes can be looked at before it is read. Each chunk
 * is a Buffer; reading it twice is not possible.
 */
export class Chunks implements AsyncIterable<Buffer> {
  private readonly it: AsyncIterator<Buffer>;
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  private done = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** At least `n` bytes from the start (fewer only at the end), or up to and including the first byte `stop`. */
  async peek(n: number, stop?: number): Promise<Buffer> {
    while (!this.done && this.heldBytes < n) {
      if (stop !== undefined && this.held.some((c) => c.includes(stop))) break;
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        this.held.push(r.value);
        this.heldBytes += r.value.length;
      }
    }
    return Buffer.concat(this.held);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    try {
      while (this.held.length) yield this.held.shift()!;
      if (this.done) return;
      for (;;) {
        const r = await this.it.next();
        if (r.done) return;
        yield r.value;
      }
    } finally {
      // Read to the end, or stopped early: either way the source is finished with (files closed, inflaters ended).
      await this.it.return?.();
    }
  }
}

/** Counts bytes as they pass and stops past the decompressed-size limit. */
async function* bounded(source: AsyncIterable<Buffer>, limit: number, what: string): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const chunk of source) {
    bytes += chunk.length;
    if (bytes > limit) throw new GraftError('payload_too_large', `The ${what} file is larger than ${limit} bytes once decompressed (the limit).`, 'file');
    yield chunk;
  }
}

/**
 * Gunzips `source`, refusing a stream that inflates more than `archive.maxRatio` times the
 * compressed bytes read so far (past `ratioFloorBytes`): a gzip bomb stops within its first chunks.
 */
async function* gunzip(source: AsyncIterable<Buffer>, archive: ArchiveLimits): AsyncGenerator<Buffer> {
  let inflated = 0;
  const input = Readable.from(source, { objectMode: false });
  const z = createGunzip({ chunkSize: READ_CHUNK });
  input.on('error', (err) => z.destroy(err));
  input.pipe(z);
  try {
    for await (const c of z as AsyncIterable<Buffer>) {
      inflated += c.length;
      const compressed = z.bytesWritten; // compressed bytes the inflater has consumed so far
      if (inflated > archive.ratioFloorBytes && inflated > archive.maxRatio * Math.max(1, compressed)) {
        throw new GraftError('unsafe_archive', `The gzip data inflates ${compressed} bytes to more than ${inflated} (more than ${archive.maxRatio} times).`, 'file');
      }
      yield c;
    }
  } catch (err) {
    if (err instanceof GraftError) throw err;
    throw invalid(`The gzip data is damaged: ${(err as Error).message}.`);
  } finally {
    // Stopped early (a refusal) or done: end both sides; destroying `input` returns the source iterator.
    input.destroy();
    z.destroy();
  }
}

async function head(path: string, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function ignoredEntry(name: string): boolean {
  return name.endsWith('/') || name.split('/').some((p) => p === '__MACOSX' || p.startsWith('.'));
}

async function zipSource(path: string, archive: ArchiveLimits): Promise<{ stream: Readable; entry: string; close: () => void }> {
  let zip: ZipFile;
  try {
    zip = await openZip(path);
  } catch (err) {
    throw new GraftError('invalid_archive', `The file starts like a zip archive but cannot be read (${(err as Error).message}).`, 'file');
  }
  try {
    let first: ZipEntry | undefined;
    let files = 0;
    let images = 0;
    // The same layout checks as image archives: overlapping or duplicated entries, unsafe names, sizes and ratios.
    const guard = new ZipGuard(zip, zip.fileSize, archive);
    try {
      for await (const e of zipEntries(zip)) {
        guard.add(e);
        if (ignoredEntry(e.fileName)) continue;
        if (IMAGE_NAME.test(e.fileName)) images++;
        files++;
        first ??= e;
      }
    } catch (err) {
      throw zipListingError(err, 'The zip archive');
    }
    guard.finish();
    if (files !== 1 || !first) {
      const hint = images > 0 ? ` It holds ${images} image(s): an image dataset is uploaded with task=image-classification.` : '';
      throw invalid(`A text dataset zip must hold exactly one file (a CSV or JSONL file); this one holds ${files}.${hint}`);
    }
    const entry = first;
    if (entry.isEncrypted()) throw invalid(`The zip entry "${entry.fileName}" is encrypted.`);
    if (IMAGE_NAME.test(entry.fileName)) {
      throw invalid(`The zip holds one image ("${entry.fileName}"), not a CSV or JSONL file: an image dataset is uploaded with task=image-classification.`);
    }
    const stream = await new Promise<Readable>((resolve, reject) =>
      zip.openReadStream(entry, (err, s) => (err || !s ? reject(err ?? new Error('no stream')) : resolve(s))),
    ).catch((err: Error) => {
      throw invalid(`The zip entry "${entry.fileName}" cannot be read: ${err.message}.`);
    });
    return { stream, entry: entry.fileName, close: () => zip.close() };
  } catch (err) {
    zip.close();
    throw err;
  }
}

async function* zipChunks(stream: Readable): AsyncGenerator<Buffer> {
  try {
    for await (const c of stream as AsyncIterable<Buffer>) yield c;
  } catch (err) {
    throw invalid(`The zip entry cannot be inflated: ${(err as Error).message}.`);
  }
}

/** Opens the uploaded file at `path` (`filename`: the name the client gave, or '') as a text source. */
export async function openTextSource(
  path: string,
  filename: string,
  limits: TextDatasetLimits = TEXT_DATASET_LIMITS,
  archive: ArchiveLimits = ARCHIVE_LIMITS,
): Promise<TextSource> {
  const magic = await head(path, 4);
  const maxInflated = Math.min(limits.maxDecompressedBytes, archive.maxInflatedBytes);
  if (isZip(magic)) {
    const z = await zipSource(path, archive);
    let chunks = new Chunks(bounded(zipChunks(z.stream), maxInflated, 'zipped'));
    const inner = await chunks.peek(2);
    if (isGzip(inner)) chunks = new Chunks(bounded(gunzip(chunks, archive), maxInflated, 'gzipped'));
    return { chunks, compression: 'zip', entry: z.entry, name: z.entry.replace(/\.gz$/i, ''), close: z.close };
  }
  const file = createReadStream(path, { highWaterMark: READ_CHUNK }) as AsyncIterable<Buffer> & Readable;
  const close = () => (file as Readable).destroy();
  if (isGzip(magic)) {
    const chunks = new Chunks(bounded(gunzip(file, archive), maxInflated, 'gzipped'));
    return { chunks, compression: 'gzip', entry: null, name: filename.replace(/\.gz$/i, ''), close };
  }
  return { chunks: new Chunks(file), compression: 'none', entry: null, name: filename, close };
}

/**
 * The text task's input cache: every text tokenized once (per job, or once per dataset + tokenizer
 * + maximum length in a shared cache directory) and stored as fixed-size int32 records —
 * `[length, id_0 … id_{maxLength-1}]`, ids after truncation with the special tokens, the tail
 * unused — in the order of the example ids, read back a batch at a time with positioned reads.
 * A batch becomes `[input_ids, attention_mask]` int32 [n, L], padded to its longest text (the
 * encoder takes any length up to maxLength; the mask hides the padding).
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { InputCache, InputCacheStore, InputCacheWriter } from '../task.ts';

export const TOKEN_CACHE_VERSION = 1;

/** What identifies a tokenization: the tokenizer files' hash, the maximum length, the padding id. */
export interface TokenIdentity {
  tokenizer: string;
  maxLength: number;
  padId: number;
}

interface TokenCacheIndex extends TokenIdentity {
  version: number;
  dtype: 'int32';
  /** Example ids in record order. */
  ids: string[];
}

/** A batch as read from the cache: the records of its rows, one after the other. */
export interface TokenRecords {
  records: Int32Array;
  count: number;
}

const recordInts = (maxLength: number) => maxLength + 1;

/** Token rows (each ≤ maxLength ids) → [input_ids, attention_mask] int32 [n, longest], padded with `padId`. */
export function tokenTensors(rows: readonly ArrayLike<number>[], padId: number): [tf.Tensor2D, tf.Tensor2D] {
  const length = Math.max(1, ...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * length).fill(padId);
  const mask = new Int32Array(rows.length * length);
  rows.forEach((r, i) => {
    ids.set(r, i * length);
    mask.fill(1, i * length, i * length + r.length);
  });
  return [tf.tensor2d(ids, [rows.length, length], 'int32'), tf.tensor2d(mask, [rows.length, length], 'int32')];
}

class TokenCache implements InputCache<TokenRecords> {
  private readonly recordBytes: number;

  constructor(
    private readonly fh: FileHandle,
    private readonly index: TokenCacheIndex,
  ) {
    this.recordBytes = recordInts(index.maxLength) * 4;
  }

  async read(rows: readonly number[]): Promise<TokenRecords> {
    const buf = Buffer.alloc(rows.length * this.recordBytes);
    await Promise.all(
      rows.map(async (r, k) => {
        if (!(r >= 0 && r < this.index.ids.length)) throw new Error(`token cache row ${r} out of range`);
        const { bytesRead } = await this.fh.read(buf, k * this.recordBytes, this.recordBytes, r * this.recordBytes);
        if (bytesRead !== this.recordBytes) throw new Error(`short read from the token cache (row ${r})`);
      }),
    );
    return { records: new Int32Array(buf.buffer, buf.byteOffset, buf.length / 4), count: rows.length };
  }

  /** Texts are never augmented: `random` is ignored. */
  inputs(batch: TokenRecords): tf.Tensor[] {
    const stride = recordInts(this.index.maxLength);
    const rows: Int32Array[] = [];
    for (let i = 0; i < batch.count; i++) {
      const at = i * stride;
      rows.push(batch.records.subarray(at + 1, at + 1 + batch.records[at]!));
    }
    return tokenTensors(rows, this.index.padId);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Writes records to a temporary file and renames it (and its index) into place when complete. */
export class TokenCacheWriter implements InputCacheWriter {
  private written = 0;

  private constructor(
    private readonly files: { data: string; index: string },
    private readonly index: TokenCacheIndex,
    private readonly fh: FileHandle,
    private readonly tmp: string,
  ) {}

  static async create(files: { data: string; index: string }, ids: readonly string[], identity: TokenIdentity): Promise<TokenCacheWriter> {
    await mkdir(dirname(files.data), { recursive: true });
    const tmp = `${files.data}.${randomUUID()}.tmp`;
    const fh = await open(tmp, 'w');
    return new TokenCacheWriter(files, { version: TOKEN_CACHE_VERSION, dtype: 'int32', ...identity, ids: [...ids] }, fh, tmp);
  }

  /** The token ids of record `row` (special tokens included, already truncated to maxLength). */
  async write(row: number, ids: ArrayLike<number>): Promise<void> {
    const { maxLength } = this.index;
    if (ids.length > maxLength) throw new Error(`a token row of ${ids.length} ids exceeds maxLength ${maxLength}`);
    const record = new Int32Array(recordInts(maxLength));
    record[0] = ids.length;
    record.set(ids, 1);
    await this.fh.write(new Uint8Array(record.buffer), 0, record.byteLength, row * record.byteLength);
    this.written++;
  }

  async finish(): Promise<void> {
    await this.fh.close();
    if (this.written < this.index.ids.length) {
      await rm(this.tmp, { force: true });
      throw new Error(`token cache incomplete: ${this.written} of ${this.index.ids.length} records`);
    }
    await rename(this.tmp, this.files.data);
    const tmpIndex = `${this.files.index}.${randomUUID()}.tmp`;
    await writeFile(tmpIndex, JSON.stringify(this.index));
    await rename(tmpIndex, this.files.index);
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => {});
    await rm(this.tmp, { force: true });
  }
}

async function openTokenCache(files: { data: string; index: string }, ids: readonly string[], identity: TokenIdentity): Promise<TokenCache | null> {
  let index: TokenCacheIndex;
  try {
    index = JSON.parse(await readFile(files.index, 'utf8')) as TokenCacheIndex;
    const size = (await stat(files.data)).size;
    if (
      index.version !== TOKEN_CACHE_VERSION ||
      index.tokenizer !== identity.tokenizer ||
      index.maxLength !== identity.maxLength ||
      index.padId !== identity.padId ||
      index.ids.length !== ids.length ||
      index.ids.some((id, i) => id !== ids[i]) ||
      size !== index.ids.length * recordInts(index.maxLength) * 4
    ) {
      return null;
    }
  } catch {
    return null;
  }
  return new TokenCache(await open(files.data, 'r'), index);
}

/** The token-id cache as the text task's `InputCacheStore`. */
export function tokenCacheStore(identity: TokenIdentity): InputCacheStore<TokenRecords> {
  const key = (datasetSha256: string) => createHash('sha256').update(JSON.stringify({ v: TOKEN_CACHE_VERSION, dataset: datasetSha256, ...identity })).digest('hex');
  const filesOf = (dir: string, name: string) => ({ data: join(dir, `${name}.i32`), index: join(dir, `${name}.json`) });
  const bytesFor = (count: number) => count * recordInts(identity.maxLength) * 4;
  return {
    eventType: 'tokens',
    // Shared: <cacheDir>/tokens/<key>.i32; a job's own: <workDir>/tokens.i32.
    files: (root, datasetSha256) => (datasetSha256 ? filesOf(join(root, 'tokens'), key(datasetSha256)) : filesOf(root, 'tokens')),
    open: (files, ids) => openTokenCache(files, ids, identity),
    create: (files, ids) => TokenCacheWriter.create(files, ids, identity),
    reused: (count) => `Reused the token cache (${count} texts, up to ${identity.maxLength} tokens each).`,
    stored: (count) => ({ message: `Stored the token ids of ${count} texts (${(bytesFor(count) / 1e6).toFixed(1)} MB on disk).`, bytes: bytesFor(count) }),
  };
}

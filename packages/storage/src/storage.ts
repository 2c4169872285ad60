/**
 * The storage contract shared by both drivers. Every process has a local directory (STORAGE_DIR):
 * for the `local` driver it is the store itself; for `s3` it holds only staged uploads, training
 * output on its way up and the cache of pulled objects. Keys are relative paths
 * (`datasets/ds_….zip`, `base-models/bm_…/model.json`).
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';

export interface StoredFile {
  key: string;
  bytes: number;
  sha256: string;
}

/** A local copy of a stored object (a file, or a directory for a prefix), held until released. */
export interface Pulled {
  path: string;
  release(): void;
}

export interface Storage {
  readonly driver: 'local' | 's3';
  /** The local directory (absolute). */
  readonly root: string;
  init(): Promise<void>;

  // ---- the local side: staged uploads and working files
  /** Absolute local path of a key; refuses keys that would escape the root. */
  path(key: string): string;
  /** The key of an absolute local path inside the root (e.g. a file a training process wrote). */
  keyOf(absPath: string): string;
  /** A fresh key under tmp/ for a file that is checked before it is committed. */
  tempKey(ext?: string): string;
  /** Streams `source` to the local file of `key`, hashing as it goes (never whole in memory). */
  writeStream(key: string, source: Readable): Promise<StoredFile>;

  // ---- the store
  /** Makes the local file or directory of `fromKey` the stored object(s) `toKey`; the local copy is gone afterwards. */
  commit(fromKey: string, toKey: string): Promise<void>;
  /** The stored object, streamed. */
  read(key: string): Promise<Readable>;
  /** Size of the stored object, null when there is none. */
  size(key: string): Promise<number | null>;
  /** Removes the stored object `key` and everything under `key/`, and any local copy. */
  remove(key: string): Promise<void>;
  /** A local copy of the stored object (`directory`: every object under `key/`) to read from disk. */
  pull(key: string, opts?: { directory?: boolean }): Promise<Pulled>;
  /** A URL the client can download from directly (presigned), or null to stream through the API. */
  downloadUrl(key: string, opts: { filename: string; contentType?: string }): Promise<string | null>;
}

export class StorageNotFound extends Error {
  constructor(readonly key: string) {
    super(`not in storage: ${key}`);
    this.name = 'StorageNotFound';
  }
}

/** A pass-through stream that counts and hashes what flows through it. */
export function hashingTap(): { tap: Transform; result: () => { bytes: number; sha256: string } } {
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  return { tap, result: () => ({ bytes, sha256: hash.digest('hex') }) };
}

/**
 * Where graft keeps files (dataset archives, model artifacts): a directory on local disk by
 * default. Keys are relative paths (`datasets/ds_….zip`); writes go to a temporary file first and
 * are renamed into place, so a reader never sees half a file.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface StoredFile {
  key: string;
  bytes: number;
  sha256: string;
}

export class LocalStorage {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }

  /** Absolute path of a key; refuses keys that would escape the root. */
  path(key: string): string {
    const p = resolve(this.root, key);
    if (!p.startsWith(this.root + sep)) throw new Error(`storage key escapes the root: ${key}`);
    return p;
  }

  /** The key of an absolute path inside the root (e.g. a file a training process wrote). */
  keyOf(absPath: string): string {
    const p = resolve(absPath);
    if (!p.startsWith(this.root + sep)) throw new Error(`path is outside storage: ${absPath}`);
    return p.slice(this.root.length + 1);
  }

  async init(): Promise<void> {
    await mkdir(join(this.root, 'tmp'), { recursive: true });
  }

  /** A fresh temporary key (under tmp/) for a write that is committed later with `commit`. */
  tempKey(ext = ''): string {
    return `tmp/${randomUUID()}${ext}`;
  }

  /** Streams `source` to `key`, hashing as it goes; never holds the whole file in memory. */
  async writeStream(key: string, source: Readable): Promise<StoredFile> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    const hash = createHash('sha256');
    let bytes = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        bytes += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline(source, tap, createWriteStream(target));
    } catch (err) {
      await rm(target, { force: true });
      throw err;
    }
    return { key, bytes, sha256: hash.digest('hex') };
  }

  /** Moves a file into place under `key` (atomic within one filesystem). */
  async commit(fromKey: string, toKey: string): Promise<void> {
    const to = this.path(toKey);
    await mkdir(dirname(to), { recursive: true });
    await rename(this.path(fromKey), to);
  }

  /** Copies a file from outside storage into it (rename when possible). */
  async importFile(absPath: string, key: string): Promise<StoredFile> {
    return this.writeStream(key, createReadStream(absPath));
  }

  read(key: string): Readable {
    return createReadStream(this.path(key));
  }

  async size(key: string): Promise<number | null> {
    try {
      return (await stat(this.path(key))).size;
    } catch {
      return null;
    }
  }

  async remove(key: string): Promise<void> {
    await rm(this.path(key), { force: true, recursive: true });
  }
}

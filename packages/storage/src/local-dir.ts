/** The local directory every driver has: safe key → path mapping, staged writes, listing. */
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hashingTap, type StoredFile } from './storage.ts';

export class LocalDir {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }

  path(key: string): string {
    const p = resolve(this.root, key);
    if (!p.startsWith(this.root + sep)) throw new Error(`storage key escapes the root: ${key}`);
    return p;
  }

  keyOf(absPath: string): string {
    const p = resolve(absPath);
    if (!p.startsWith(this.root + sep)) throw new Error(`path is outside storage: ${absPath}`);
    return p.slice(this.root.length + 1).split(sep).join('/');
  }

  tempKey(ext = ''): string {
    return `tmp/${randomUUID()}${ext}`;
  }

  async init(): Promise<void> {
    await mkdir(join(this.root, 'tmp'), { recursive: true });
  }

  async writeStream(key: string, source: Readable): Promise<StoredFile> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    const { tap, result } = hashingTap();
    try {
      await pipeline(source, tap, createWriteStream(target));
    } catch (err) {
      await rm(target, { force: true });
      throw err;
    }
    return { key, ...result() };
  }

  async removeLocal(key: string): Promise<void> {
    await rm(this.path(key), { force: true, recursive: true });
  }
}

/** Every file under `dir`, as paths relative to it with forward slashes. */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).split(sep).join('/'))
    .sort();
}

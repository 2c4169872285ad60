/**
 * The `local` driver: the store is STORAGE_DIR itself (one host, or a directory every process
 * mounts). Commits are renames, so a reader never sees half a file.
 */
import { createReadStream } from 'node:fs';
import { mkdir, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { LocalDir } from './local-dir.ts';
import { StorageNotFound, type Pulled, type Storage, type StoredFile } from './storage.ts';

export class LocalStorage implements Storage {
  readonly driver = 'local' as const;
  readonly root: string;
  private readonly dir: LocalDir;

  constructor(root: string) {
    this.dir = new LocalDir(root);
    this.root = this.dir.root;
  }

  init = () => this.dir.init();
  path = (key: string) => this.dir.path(key);
  keyOf = (absPath: string) => this.dir.keyOf(absPath);
  tempKey = (ext?: string) => this.dir.tempKey(ext);
  writeStream = (key: string, source: Readable): Promise<StoredFile> => this.dir.writeStream(key, source);

  async commit(fromKey: string, toKey: string): Promise<void> {
    const to = this.path(toKey);
    await mkdir(dirname(to), { recursive: true });
    await rename(this.path(fromKey), to);
  }

  async read(key: string): Promise<Readable> {
    if ((await this.size(key)) === null) throw new StorageNotFound(key);
    return createReadStream(this.path(key));
  }

  async size(key: string): Promise<number | null> {
    try {
      const s = await stat(this.path(key));
      return s.isFile() ? s.size : null;
    } catch {
      return null;
    }
  }

  remove = (key: string) => this.dir.removeLocal(key);

  async pull(key: string, opts: { directory?: boolean } = {}): Promise<Pulled> {
    const path = this.path(key);
    const s = await stat(path).catch(() => null);
    if (!s || (opts.directory ? !s.isDirectory() : !s.isFile())) throw new StorageNotFound(key);
    return { path, release() {} };
  }

  async downloadUrl(): Promise<string | null> {
    return null;
  }
}

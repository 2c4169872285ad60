/**
 * A worker's local copies of stored objects (datasets, bases, models used as bases), bounded in
 * bytes: the least recently used are deleted first, never one that a running job holds. Stored
 * objects never change under a key (keys carry ids), so a copy on disk is valid as long as it
 * exists. The index is rebuilt from the directory at start, so the cache survives restarts.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pulled } from './storage.ts';

interface Entry {
  bytes: number;
  lastUsed: number;
  pins: number;
}

export interface PullCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  evictions: number;
}

async function sizeOf(path: string): Promise<number> {
  const s = await stat(path);
  if (!s.isDirectory()) return s.size;
  let total = 0;
  for (const e of await readdir(path)) total += await sizeOf(join(path, e));
  return total;
}

export class PullCache {
  private index: Map<string, Entry> | null = null;
  private readonly inflight = new Map<string, Promise<void>>();
  private counters = { hits: 0, misses: 0, evictions: 0 };

  constructor(
    private readonly dir: string,
    private readonly tmpDir: string,
    readonly maxBytes: number,
    private readonly onEvict: (key: string, bytes: number) => void = () => {},
  ) {}

  private entryPath(key: string) {
    return join(this.dir, encodeURIComponent(key));
  }

  private async load(): Promise<Map<string, Entry>> {
    if (this.index) return this.index;
    await mkdir(this.dir, { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    const index = new Map<string, Entry>();
    for (const name of await readdir(this.dir)) {
      const p = join(this.dir, name);
      const s = await stat(p).catch(() => null);
      if (s) index.set(decodeURIComponent(name), { bytes: await sizeOf(p), lastUsed: s.mtimeMs, pins: 0 });
    }
    return (this.index = index);
  }

  /** A local copy of `key`, fetched with `fetch(dest)` (which writes a file or directory at dest) when absent. */
  async get(key: string, fetch: (dest: string) => Promise<void>): Promise<Pulled> {
    const index = await this.load();
    const path = this.entryPath(key);
    let entry = index.get(key);
    if (entry) this.counters.hits++;
    else {
      let pending = this.inflight.get(key);
      if (!pending) {
        this.counters.misses++;
        pending = (async () => {
          const tmp = join(this.tmpDir, `pull-${randomUUID()}`);
          try {
            await fetch(tmp);
            await rm(path, { recursive: true, force: true });
            await rename(tmp, path);
          } catch (err) {
            await rm(tmp, { recursive: true, force: true });
            throw err;
          }
          index.set(key, { bytes: await sizeOf(path), lastUsed: Date.now(), pins: 0 });
        })().finally(() => this.inflight.delete(key));
        this.inflight.set(key, pending);
      } else this.counters.hits++;
      await pending;
      entry = index.get(key)!;
    }
    entry.pins++;
    entry.lastUsed = Date.now();
    const now = new Date();
    await utimes(path, now, now).catch(() => {});
    await this.evict();
    let released = false;
    return {
      path,
      release: () => {
        if (released) return;
        released = true;
        entry.pins--;
        void this.evict();
      },
    };
  }

  /** Forgets a key (its stored object was removed). */
  async drop(key: string): Promise<void> {
    const index = await this.load();
    const e = index.get(key);
    if (e && e.pins > 0) return; // in use: it goes when released and evicted
    index.delete(key);
    await rm(this.entryPath(key), { recursive: true, force: true });
  }

  private async evict(): Promise<void> {
    const index = await this.load();
    let total = [...index.values()].reduce((s, e) => s + e.bytes, 0);
    if (total <= this.maxBytes) return;
    const candidates = [...index.entries()].filter(([, e]) => e.pins === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [key, e] of candidates) {
      if (total <= this.maxBytes) break;
      index.delete(key);
      total -= e.bytes;
      this.counters.evictions++;
      await rm(this.entryPath(key), { recursive: true, force: true });
      this.onEvict(key, e.bytes);
    }
  }

  async stats(): Promise<PullCacheStats> {
    const index = await this.load();
    return { entries: index.size, bytes: [...index.values()].reduce((s, e) => s + e.bytes, 0), maxBytes: this.maxBytes, ...this.counters };
  }
}

/**
 * Shared caches under the worker's cache directory are bounded by size, least recently used first
 * (the worker's cache bound, `@graft/storage` trimCache, reads each entry's mtime). A hit marks its
 * entry as used now; best effort, a failure only makes the entry look older.
 */
import { utimes } from 'node:fs/promises';

export async function markCacheUsed(...paths: string[]): Promise<void> {
  const now = new Date();
  await Promise.all(paths.map((p) => utimes(p, now, now).catch(() => {})));
}

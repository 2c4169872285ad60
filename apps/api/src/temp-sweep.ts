/**
 * Staged uploads live under STORAGE_DIR/tmp until they are checked and committed; every request
 * removes its own on every path, but a crash mid-request leaves them behind. At start the API
 * removes what is older than `maxAgeMs` (not all: other API processes may share the directory and
 * be receiving uploads right now).
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';

export const TEMP_MAX_AGE_MS = 60 * 60 * 1000;

export async function sweepTemp(dir: string, log: FastifyBaseLogger, maxAgeMs = TEMP_MAX_AGE_MS, now = Date.now()): Promise<number> {
  let removed = 0;
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const path = join(dir, name);
    const s = await stat(path).catch(() => null);
    if (!s || now - s.mtimeMs < maxAgeMs) continue;
    await rm(path, { recursive: true, force: true });
    removed++;
  }
  if (removed > 0) log.info({ dir, removed }, 'removed temporary files left by an earlier run');
  return removed;
}

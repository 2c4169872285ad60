/**
 * The bound of the shared derived caches under `STORAGE_DIR/cache` (what trainings build and reuse
 * across jobs: `images/` decoded images, `tokens/` tokenized texts, `features/` frozen-base
 * features, `onnx/` converted bases, `model-zips/` unpacked model zips, `hosted/` fetched hosted
 * bases): when they hold more than `maxBytes`, whole entries are deleted, least recently used first.
 *
 * An entry is a directory (`hosted/<sha>/`, `model-zips/<sha>/`) or the files sharing a key
 * (`features/<key>.f32` + `<key>.json`); its last use is its newest mtime, which the engine sets on
 * every cache hit (`markCacheUsed`). Entries used within `protectMs` are never deleted (a job that
 * just found one is opening it), nor are young temporary files (a write under way); temporary files
 * older than an hour are leftovers of a crash and go first. Open files stay readable after their
 * name is removed, so a running job that holds one keeps working; the next job rebuilds the entry.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface CacheTrimResult {
  /** Bytes in the cache before and after. */
  before: number;
  after: number;
  /** Entries removed (least recently used first), and their bytes. */
  removed: string[];
  removedBytes: number;
}

interface Entry {
  name: string;
  paths: string[];
  bytes: number;
  lastUsed: number;
  temporary: boolean;
}

const TEMP_MAX_AGE_MS = 3600_000;
const isTemporary = (name: string) => name.startsWith('.tmp') || /\.tmp$/.test(name) || name.includes('.tmp-');

async function sizeAndNewest(path: string): Promise<{ bytes: number; newest: number }> {
  const s = await stat(path).catch(() => null);
  if (!s) return { bytes: 0, newest: 0 };
  if (!s.isDirectory()) return { bytes: s.size, newest: s.mtimeMs };
  let bytes = 0;
  let newest = s.mtimeMs;
  for (const child of await readdir(path).catch(() => [] as string[])) {
    const c = await sizeAndNewest(join(path, child));
    bytes += c.bytes;
    newest = Math.max(newest, c.newest);
  }
  return { bytes, newest };
}

/** Every entry of the cache, by kind folder. */
async function entries(root: string): Promise<Entry[]> {
  const out: Entry[] = [];
  for (const kind of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (!kind.isDirectory()) continue;
    const dir = join(root, kind.name);
    const groups = new Map<string, Entry>();
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const temporary = isTemporary(name);
      // Files of one key share the part of their name before the first dot; temporary files stand alone.
      const key = temporary ? name : name.split('.')[0] || name;
      const { bytes, newest } = await sizeAndNewest(join(dir, name));
      const g = groups.get(key) ?? { name: `${kind.name}/${key}`, paths: [], bytes: 0, lastUsed: 0, temporary };
      g.paths.push(join(dir, name));
      g.bytes += bytes;
      g.lastUsed = Math.max(g.lastUsed, newest);
      groups.set(key, g);
    }
    out.push(...groups.values());
  }
  return out;
}

/** Deletes least recently used entries until the cache holds at most `maxBytes`. */
export async function trimCache(root: string, maxBytes: number, opts: { protectMs?: number; now?: number } = {}): Promise<CacheTrimResult> {
  const now = opts.now ?? Date.now();
  const protectMs = opts.protectMs ?? 10 * 60_000;
  const all = await entries(root);
  const before = all.reduce((n, e) => n + e.bytes, 0);
  let total = before;
  const removed: string[] = [];
  let removedBytes = 0;
  const drop = async (e: Entry) => {
    for (const p of e.paths) await rm(p, { recursive: true, force: true });
    total -= e.bytes;
    removedBytes += e.bytes;
    removed.push(e.name);
  };
  // Crash leftovers first, whatever the bound.
  for (const e of all.filter((e) => e.temporary && now - e.lastUsed > TEMP_MAX_AGE_MS)) await drop(e);
  const candidates = all.filter((e) => !e.temporary && now - e.lastUsed >= protectMs).sort((a, b) => a.lastUsed - b.lastUsed);
  for (const e of candidates) {
    if (total <= maxBytes) break;
    await drop(e);
  }
  return { before, after: total, removed, removedBytes };
}

/**
 * The shared caches' bound (CACHE_MAX_BYTES) on a real directory laid out as the engine writes it:
 * least recently used entries go first, a cache hit through the engine's own reader makes an entry
 * recent again, entries used within the protection window and writes under way stay, crash
 * leftovers go.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readFeatureCache, writeFeatureCache } from '../../../packages/engine/src/data/feature-cache.ts';
import { trimCache } from '@graft/storage';

const HOUR = 3600_000;

function file(path: string, bytes: number, ageMs: number) {
  writeFileSync(path, Buffer.alloc(bytes));
  const t = new Date(Date.now() - ageMs);
  utimesSync(path, t, t);
}
function dir(path: string, files: Record<string, number>, ageMs: number) {
  mkdirSync(path, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) file(join(path, name), bytes, ageMs);
  const t = new Date(Date.now() - ageMs);
  utimesSync(path, t, t);
}

test('the cache is trimmed to its bound, least recently used first; a hit counts as a use', async () => {
  const root = mkdtempSync(join(process.env.STORAGE_DIR ?? tmpdir(), 'cache-'));
  for (const kind of ['features', 'images', 'model-zips', 'hosted', 'onnx']) mkdirSync(join(root, kind), { recursive: true });
  // features/<key>: written by the engine, then made the oldest entry of all.
  const ids = ['x', 'y'];
  const parts = { baseId: 'bm', sourceIdentity: 's', cutLayer: 'c', datasetSha256: 'd', pooling: 'avg' };
  await writeFeatureCache(root, 'featkey', parts, ids, 250, new Float32Array(500)); // 2000 bytes + index
  for (const p of ['featkey.f32', 'featkey.json']) utimesSync(join(root, 'features', p), new Date(Date.now() - 50 * HOUR), new Date(Date.now() - 50 * HOUR));
  file(join(root, 'images', 'old.u8'), 3000, 40 * HOUR);
  file(join(root, 'images', 'old.json'), 100, 40 * HOUR);
  dir(join(root, 'model-zips', 'zipsha'), { 'model.json': 500, 'weights.bin': 2500 }, 30 * HOUR);
  dir(join(root, 'hosted', 'urlsha'), { 'model.json': 500, 'group1-shard1of1.bin': 2500 }, 20 * HOUR);
  file(join(root, 'onnx', 'onnxkey.onnx'), 3000, 2 * 60_000); // used two minutes ago: protected
  file(join(root, 'onnx', 'onnxkey.json'), 100, 2 * 60_000);
  file(join(root, 'hosted', '.tmp-123-abc'), 1000, 2 * HOUR); // a crash's leftover
  file(join(root, 'images', 'new.u8.1234.tmp'), 1000, 60_000); // a write under way

  // A job reads the features (a hit): the oldest entry becomes the most recently used.
  assert.ok(await readFeatureCache(root, 'featkey', ids, 250));

  const total = 2000 + 3100 + 3000 + 3000 + 3100 + 1000 + 1000;
  const indexBytes = statSync(join(root, 'features', 'featkey.json')).size;
  const r = await trimCache(root, 10_000, { protectMs: 10 * 60_000 });
  assert.equal(r.before, total + indexBytes);
  // The leftover goes whatever the bound; then images/old (40 h) and model-zips (30 h) are enough.
  assert.deepEqual(r.removed, ['hosted/.tmp-123-abc', 'images/old', 'model-zips/zipsha']);
  assert.ok(r.after <= 10_000, `${r.after} bytes left`);
  assert.equal(existsSync(join(root, 'images', 'old.u8')) || existsSync(join(root, 'images', 'old.json')), false);
  assert.equal(existsSync(join(root, 'model-zips', 'zipsha')), false);
  for (const kept of ['features/featkey.f32', 'features/featkey.json', 'hosted/urlsha/model.json', 'onnx/onnxkey.onnx', 'images/new.u8.1234.tmp']) {
    assert.ok(existsSync(join(root, kept)), `${kept} kept`);
  }

  // A bound below what is protected: everything else goes; entries used within the window (the features
  // just read, the ONNX conversion) and the write under way stay.
  const tight = await trimCache(root, 0, { protectMs: 10 * 60_000 });
  assert.deepEqual(tight.removed, ['hosted/urlsha']);
  assert.equal(tight.after, 2000 + indexBytes + 3100 + 1000);
  // Without the window, the bound is the bound: only the write under way is left.
  const none = await trimCache(root, 0, { protectMs: 0 });
  assert.deepEqual(none.removed.sort(), ['features/featkey', 'onnx/onnxkey']);
  assert.equal(none.after, 1000);
  assert.ok(existsSync(join(root, 'images', 'new.u8.1234.tmp')));
});

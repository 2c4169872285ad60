/**
 * The cross-job feature cache: the frozen encoder's pooled features of every example of a dataset,
 * persisted under `<cacheDir>/features/<key>.f32` (float32 rows, one per example id, in the order
 * of the index's `paths`) with `<key>.json` (the ids, dim and what the key was made of). The key is
 * the sha256 of the base's id and source identity, the cut layer, the dataset's sha256, the pooling
 * and what the task says turns an example into model input (image preprocessing; a text tokenizer
 * and maximum length), so a later job on the same dataset and base reuses the features instead of
 * running the encoder. Both files are written to temporary names and renamed into place.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalJson } from '../util/hash.ts';
import { markCacheUsed } from '../util/cache-use.ts';

export const FEATURE_CACHE_VERSION = 1;

export interface FeatureCacheKeyParts {
  baseId: string;
  /** What identifies the weights (see bases/source-identity.ts). */
  sourceIdentity: string;
  cutLayer: string;
  datasetSha256: string;
  pooling: string;
  /** The task's input identity (`TaskEncoder.inputIdentity`), e.g. `preprocessing` for images. */
  [input: string]: unknown;
}

export interface FeatureCacheIndex {
  version: number;
  key: string;
  dim: number;
  /** Example ids in row order (the name dates from image paths). */
  paths: string[];
  parts: FeatureCacheKeyParts;
  createdAt: string;
}

export function featureCacheKey(parts: FeatureCacheKeyParts): string {
  return createHash('sha256').update(canonicalJson({ v: FEATURE_CACHE_VERSION, ...parts })).digest('hex');
}

export function featureCacheFiles(cacheDir: string, key: string): { data: string; index: string } {
  const dir = join(cacheDir, 'features');
  return { data: join(dir, `${key}.f32`), index: join(dir, `${key}.json`) };
}

/** The cached features for exactly these example ids and dim, or null (missing, partial or different). */
export async function readFeatureCache(cacheDir: string, key: string, ids: readonly string[], dim: number): Promise<Float32Array | null> {
  const files = featureCacheFiles(cacheDir, key);
  try {
    const index = JSON.parse(await readFile(files.index, 'utf8')) as FeatureCacheIndex;
    if (index.version !== FEATURE_CACHE_VERSION || index.key !== key || index.dim !== dim || index.paths.length !== ids.length) return null;
    if (index.paths.some((p, i) => p !== ids[i])) return null;
    if ((await stat(files.data)).size !== ids.length * dim * 4) return null;
    const bytes = await readFile(files.data);
    const out = new Float32Array(ids.length * dim);
    new Uint8Array(out.buffer).set(bytes);
    await markCacheUsed(files.data, files.index);
    return out;
  } catch {
    return null;
  }
}

export async function writeFeatureCache(cacheDir: string, key: string, parts: FeatureCacheKeyParts, ids: readonly string[], dim: number, features: Float32Array): Promise<void> {
  if (features.length !== ids.length * dim) throw new Error(`feature cache: ${features.length} values for ${ids.length} x ${dim}`);
  const files = featureCacheFiles(cacheDir, key);
  await mkdir(join(cacheDir, 'features'), { recursive: true });
  const tag = randomUUID();
  const tmpData = `${files.data}.${tag}.tmp`;
  const tmpIndex = `${files.index}.${tag}.tmp`;
  const index: FeatureCacheIndex = { version: FEATURE_CACHE_VERSION, key, dim, paths: [...ids], parts, createdAt: new Date().toISOString() };
  try {
    await writeFile(tmpData, new Uint8Array(features.buffer, features.byteOffset, features.byteLength));
    await writeFile(tmpIndex, JSON.stringify(index));
    // Data first: a reader that finds the index finds the whole data file.
    await rename(tmpData, files.data);
    await rename(tmpIndex, files.index);
  } catch (err) {
    await rm(tmpData, { force: true });
    await rm(tmpIndex, { force: true });
    throw err;
  }
}

/**
 * Hosted tfjs models (model.json + weight shards over HTTP(S)) fetched once into a disk cache:
 * `<cacheDir>/hosted/<sha256(url)>/` holds model.json, the shards (at their manifest paths) and
 * `source.json`. A download goes to a temporary sibling directory renamed into place when complete,
 * so a cache directory is either whole or absent, and concurrent fetches of one URL do not mix.
 * Once cached, a model loads without network. No TensorFlow here.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, isAbsolute, sep } from 'node:path';
import { TrainingError } from '../errors.ts';
import { markCacheUsed } from '../util/cache-use.ts';

export const HOSTED_LIMITS = {
  /** model.json larger than this is refused. */
  maxModelJsonBytes: 32 * 1024 * 1024,
  /** model.json + all shards. */
  maxTotalBytes: 1024 * 1024 * 1024,
  /** Per request (model.json or one shard). */
  timeoutMs: 120_000,
};

export interface HostedFetchOptions {
  /** Cache root (`<cacheDir>/hosted/...`). null: a private temporary directory, removed by `release()`. */
  cacheDir?: string | null;
  /** Expected sha256 (hex) of model.json's bytes. */
  sha256?: string;
  signal?: AbortSignal;
  fetch?: typeof fetch;
  limits?: Partial<typeof HOSTED_LIMITS>;
}

export interface HostedModel {
  /** Directory with model.json and its weight files. */
  dir: string;
  fromCache: boolean;
  /** Removes the directory when it is a private temporary one; a no-op for the shared cache. */
  release(): Promise<void>;
}

/** The default cache root: GRAFT_MODEL_CACHE_DIR, else `<tmpdir>/graft-model-cache`. */
export function defaultModelCacheDir(): string {
  return process.env.GRAFT_MODEL_CACHE_DIR?.trim() || join(tmpdir(), 'graft-model-cache');
}

export function hostedCacheDir(cacheDir: string, url: string): string {
  return join(cacheDir, 'hosted', sha256Hex(url));
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The URL of a weight file named by a manifest path, relative to model.json's URL; model.json's
 * query string (e.g. TF Hub's `?tfjs-format=file`) is carried over, as tfjs' own http loader does.
 */
export function weightUrl(modelJsonUrl: string, path: string): string {
  const base = new URL(modelJsonUrl);
  const u = new URL(path, base);
  if (base.search && !u.search) u.search = base.search;
  return u.href;
}

/** A manifest path that stays inside the model directory: relative, no `..`, no scheme. */
export function safeRelativePath(p: string): string | null {
  if (!p || /^[a-z][a-z0-9+.-]*:/i.test(p) || p.includes('\\') || p.includes('\0')) return null;
  const rel = normalize(p);
  if (isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`) || rel.split(sep).includes('..')) return null;
  return rel;
}

/**
 * Returns a directory holding the hosted model: the cached copy when there is one (no network),
 * else a fresh download. Throws TrainingError `base_model_unavailable` when it cannot be fetched
 * and is not cached, or when model.json does not match `sha256`.
 */
export async function fetchHostedModel(url: string, opts: HostedFetchOptions = {}): Promise<HostedModel> {
  const limits = { ...HOSTED_LIMITS, ...opts.limits };
  const cacheRoot = opts.cacheDir === undefined ? defaultModelCacheDir() : opts.cacheDir;
  const expected = opts.sha256?.trim().toLowerCase();
  if (expected && !/^[0-9a-f]{64}$/.test(expected)) throw new TrainingError('base_model_unavailable', `sha256 "${opts.sha256}" for ${url} is not 64 hex digits.`);

  let stale: Error | null = null;
  if (cacheRoot) {
    const dir = hostedCacheDir(cacheRoot, url);
    const cached = await readIfExists(join(dir, 'model.json'));
    if (cached) {
      try {
        if (expected) checkSha(url, cached, expected, 'cached ');
        await markCacheUsed(dir);
        return { dir, fromCache: true, release: async () => {} };
      } catch (err) {
        stale = err as Error; // the cached copy is another version: fetch again, keep the error if that fails
      }
    }
  }

  const parent = cacheRoot ? join(cacheRoot, 'hosted') : tmpdir();
  await mkdir(parent, { recursive: true });
  const tmp = join(parent, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await download(url, tmp, expected, limits, opts);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw stale && !(err instanceof TrainingError && /sha256/.test(err.message)) ? stale : err;
  }
  if (!cacheRoot) return { dir: tmp, fromCache: false, release: () => rm(tmp, { recursive: true, force: true }) };
  const dir = hostedCacheDir(cacheRoot, url);
  if (stale) {
    const old = `${tmp}-stale`;
    await rename(dir, old).catch(() => {});
    await rm(old, { recursive: true, force: true });
  }
  try {
    await rename(tmp, dir);
  } catch (err) {
    // Another process cached the same URL meanwhile: keep theirs.
    await rm(tmp, { recursive: true, force: true });
    if (!(await exists(join(dir, 'model.json')))) throw err;
  }
  return { dir, fromCache: false, release: async () => {} };
}

async function download(url: string, dir: string, expected: string | undefined, limits: typeof HOSTED_LIMITS, opts: HostedFetchOptions): Promise<void> {
  const doFetch = opts.fetch ?? fetch;
  let total = 0;
  const get = async (target: string, maxBytes: number): Promise<Uint8Array> => {
    const signals = [AbortSignal.timeout(limits.timeoutMs), ...(opts.signal ? [opts.signal] : [])];
    let res: Response;
    try {
      res = await doFetch(target, { signal: AbortSignal.any(signals), redirect: 'follow' });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw unavailable(url, `GET ${target} failed (${describeFetchError(err)})`);
    }
    if (!res.ok) throw unavailable(url, `GET ${target} answered HTTP ${res.status}`);
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > maxBytes || total + (Number.isFinite(declared) ? declared : 0) > limits.maxTotalBytes) {
      throw new TrainingError('base_model_unavailable', `The hosted model ${url} is larger than graft accepts (${limits.maxTotalBytes} bytes in all).`);
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    if (res.body) {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        size += chunk.byteLength;
        if (size > maxBytes || total + size > limits.maxTotalBytes) {
          throw new TrainingError('base_model_unavailable', `The hosted model ${url} is larger than graft accepts (${limits.maxTotalBytes} bytes in all, ${limits.maxModelJsonBytes} for model.json).`);
        }
        chunks.push(chunk);
      }
    }
    total += size;
    return Buffer.concat(chunks);
  };

  const modelJsonBytes = await get(url, limits.maxModelJsonBytes);
  if (expected) checkSha(url, modelJsonBytes, expected, '');
  let modelJson: { weightsManifest?: { paths?: unknown }[] };
  try {
    modelJson = JSON.parse(Buffer.from(modelJsonBytes).toString('utf8')) as typeof modelJson;
  } catch (err) {
    throw unavailable(url, `model.json is not JSON (${(err as Error).message})`, false);
  }
  if (!modelJson || typeof modelJson !== 'object' || !Array.isArray(modelJson.weightsManifest)) {
    throw unavailable(url, 'model.json has no weightsManifest: not a tfjs model', false);
  }
  await mkdir(dir, { recursive: true });
  const paths = modelJson.weightsManifest.flatMap((g) => (Array.isArray(g.paths) ? g.paths : []));
  for (const p of paths) {
    const rel = typeof p === 'string' ? safeRelativePath(p) : null;
    if (!rel) throw unavailable(url, `model.json names the weight file ${JSON.stringify(p)}, which is not a plain relative path`, false);
    const data = await get(weightUrl(url, p as string), limits.maxTotalBytes);
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    await writeFile(join(dir, rel), data);
  }
  await writeFile(join(dir, 'model.json'), modelJsonBytes);
  await writeFile(
    join(dir, 'source.json'),
    JSON.stringify({ url, fetchedAt: new Date().toISOString(), modelJsonSha256: sha256Hex(modelJsonBytes), bytes: total, files: paths }, null, 2),
  );
}

function checkSha(url: string, bytes: Uint8Array, expected: string, what: string): void {
  const actual = sha256Hex(bytes);
  if (actual !== expected) {
    throw new TrainingError(
      'base_model_unavailable',
      `The ${what}model.json of ${url} has sha256 ${actual}, not the expected ${expected}: the hosted model changed or the download is corrupt. ` +
        'Check the URL and the expected sha256, or upload the model you mean (POST /v1/base-models).',
    );
  }
}

function unavailable(url: string, detail: string, network = true): TrainingError {
  const how = network
    ? ' The worker needs network access to fetch it once (it is cached afterwards) and has none, or the host is unreachable. ' +
      'To use this base offline, download model.json and its weight files yourself and upload them as a zip with POST /v1/base-models ' +
      '(or place them in the worker\'s model cache).'
    : '';
  return new TrainingError('base_model_unavailable', `The hosted base model ${url} cannot be fetched: ${detail}.${how}`);
}

function describeFetchError(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e.cause?.code ?? e.cause?.message;
  return [e.message ?? String(err), cause].filter(Boolean).join(': ');
}

async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/**
 * Model zips as bases: a zip a user uploads (`POST /v1/base-models`: model.json + weight files) and
 * the model.zip of a previous graft fine-tune (model.json, weights.bin, labels.json,
 * preprocessing.json, training.json). Unpacking is defensive: no absolute paths, no `..`, no links,
 * bounded entry count and bytes (counted as they are inflated, not trusted from headers). No TensorFlow here.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import yauzl from 'yauzl';
import { TrainingError } from '../errors.ts';
import { sha256File } from '../util/hash.ts';
import { markCacheUsed } from '../util/cache-use.ts';
import { ARCHIVE_LIMITS, GraftError, type ArchiveLimits } from '@graft/contracts';
import { readZipEntry, zipEntries } from '../util/zip.ts';
import { checkZipLayout } from '../util/zip-guard.ts';
import { safeRelativePath } from './hosted-cache.ts';

export const MODEL_ZIP_LIMITS = {
  maxEntries: 2_000,
  /** Sum of the inflated sizes of all files. */
  maxTotalBytes: 1024 * 1024 * 1024,
  /** One file. */
  maxFileBytes: 1024 * 1024 * 1024,
};
export type ModelZipLimits = typeof MODEL_ZIP_LIMITS;

/** The dataset uploads' archive rules (ratio, overlap, duplicates, names) at a model zip's size limits. */
export function modelArchiveLimits(limits: Partial<ModelZipLimits> = {}): ArchiveLimits {
  const lim = { ...MODEL_ZIP_LIMITS, ...limits };
  return { ...ARCHIVE_LIMITS, maxEntries: lim.maxEntries, maxInflatedBytes: lim.maxTotalBytes };
}

/**
 * A model zip a user uploads, checked from its central directory before anything is inflated, by
 * the same guard as dataset archives: GraftError `unsafe_archive` (overlapping, shared or duplicated
 * entries, names escaping it, a compression ratio over the limit), `too_many_entries`,
 * `payload_too_large`, `invalid_archive`.
 */
export function checkModelZip(zipPath: string, limits: Partial<ModelZipLimits> = {}): Promise<void> {
  return checkZipLayout(zipPath, modelArchiveLimits(limits), 'The model archive');
}

export interface UnpackedModelZip {
  /** The directory holding model.json: always `destDir` (a single wrapping folder is stripped). */
  modelDir: string;
  /** Paths written, relative to destDir ('/'-separated). */
  files: string[];
  /** Bytes written. */
  bytes: number;
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/**
 * Unpacks a model zip into `destDir` (created if missing), so that model.json (or `opts.rootFile`) is at `destDir`'s root:
 * when every file of the zip sits in one top-level folder (a zipped directory), that folder is
 * stripped. Throws TrainingError `invalid_base_model` for an unreadable zip, an unsafe or duplicate
 * entry name, a link, too many entries or bytes, or no model.json. Nothing is written before every
 * entry name has been checked.
 */
export async function unpackModelZip(zipPath: string, destDir: string, limits: Partial<ModelZipLimits> = {}, opts: { rootFile?: string } = {}): Promise<UnpackedModelZip> {
  // The file that marks the model's folder: model.json for tfjs models, tokenizer.json for an ONNX text encoder's folder.
  const rootFile = opts.rootFile ?? 'model.json';
  const lim = { ...MODEL_ZIP_LIMITS, ...limits };
  const bad = (msg: string) => new TrainingError('invalid_base_model', msg);
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(zipPath);
  } catch (err) {
    throw bad(`The model archive is not a readable zip file: ${(err as Error).message}.`);
  }
  const files: string[] = [];
  let bytes = 0;
  try {
    // Pass 0: the archive's layout (shared or overlapping records, ratio, sizes), nothing inflated.
    try {
      await checkModelZip(zipPath, lim);
    } catch (err) {
      throw err instanceof GraftError ? bad(err.message) : err;
    }
    // Pass 1: names only (the central directory), all checked.
    const wanted: { entry: yauzl.Entry; rel: string }[] = [];
    const seen = new Set<string>();
    let count = 0;
    for await (const entry of zipEntries(zip)) {
      count++;
      if (count > lim.maxEntries) throw bad(`The model archive has more than ${lim.maxEntries} entries.`);
      const name = entry.fileName;
      if (name.endsWith('/')) continue; // a directory entry
      if (name.split('/').some((part) => part === '__MACOSX' || part === '.DS_Store')) continue;
      const rel = safeRelativePath(name);
      if (!rel || name.startsWith('/') || /^[a-z]:/i.test(name)) throw bad(`The model archive holds an unsafe entry name "${name}" (absolute, "..", or a backslash).`);
      if (((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK) throw bad(`The model archive holds a symbolic link "${name}"; only plain files are accepted.`);
      if (seen.has(rel)) throw bad(`The model archive holds "${name}" twice.`);
      seen.add(rel);
      if (entry.uncompressedSize > lim.maxFileBytes) throw bad(`"${name}" is larger than ${lim.maxFileBytes} bytes.`);
      wanted.push({ entry, rel: rel.split(sep).join('/') });
    }
    const strip = commonFolder(wanted.map((w) => w.rel));
    if (!wanted.some((w) => w.rel.slice(strip.length) === rootFile)) {
      throw bad(`The model archive has no ${rootFile} at its root (or inside a single top-level folder).`);
    }
    // Pass 2: inflate, counting bytes as they come (headers can lie).
    await mkdir(destDir, { recursive: true });
    for (const { entry, rel } of wanted) {
      const out = rel.slice(strip.length);
      const data = await readZipEntry(zip, entry, Math.min(lim.maxFileBytes, lim.maxTotalBytes - bytes), () =>
        new TrainingError('invalid_base_model', `The model archive inflates beyond its size limit at "${entry.fileName}" (${lim.maxTotalBytes} bytes in all, ${lim.maxFileBytes} per file).`));
      bytes += data.length;
      const target = join(destDir, out);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, data, { flag: 'wx' });
      files.push(out);
    }
  } catch (err) {
    if (err instanceof TrainingError) throw err;
    const msg = (err as Error).message;
    if (/invalid relative path|absolute path/i.test(msg)) throw bad(`The model archive holds an unsafe entry name (${msg}): entries must be relative paths without "..".`);
    throw bad(`The model archive cannot be unpacked: ${msg}.`);
  } finally {
    zip.close();
  }
  return { modelDir: destDir, files, bytes };
}

/** "folder/" when every path is inside that one top-level folder, else "". */
function commonFolder(paths: string[]): string {
  const first = paths[0]?.split('/')[0];
  if (!first || !paths.every((p) => p.includes('/') && p.split('/')[0] === first)) return '';
  return `${first}/`;
}

/**
 * A graft model zip unpacked for loading: cached under `<cacheDir>/model-zips/<sha256 of the zip>/`
 * (atomically: a temporary sibling renamed into place), or in a private temporary directory that
 * `release()` removes when cacheDir is null.
 */
export async function unpackModelZipCached(zipPath: string, cacheDir: string | null): Promise<{ dir: string; release(): Promise<void> }> {
  if (!cacheDir) {
    const tmp = join(tmpdir(), `graft-model-zip-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      const { modelDir } = await unpackModelZip(zipPath, tmp);
      return { dir: modelDir, release: () => rm(tmp, { recursive: true, force: true }) };
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }
  const root = join(cacheDir, 'model-zips');
  const final = join(root, await sha256File(zipPath));
  const noop = async () => {};
  if (await isDir(final)) {
    await markCacheUsed(final);
    return { dir: final, release: noop };
  }
  await mkdir(root, { recursive: true });
  const tmp = join(root, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await unpackModelZip(zipPath, tmp);
    await rename(tmp, final);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (!(await isDir(final))) throw err; // else: another process unpacked it meanwhile
  }
  return { dir: final, release: noop };
}

async function isDir(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isDirectory(), () => false);
}

function openZip(path: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.open(path, { lazyEntries: true, autoClose: false, validateEntrySizes: true, decodeStrings: true, strictFileNames: false }, (err, zip) =>
      err || !zip ? reject(err ?? new Error('no zip')) : resolve(zip),
    ),
  );
}



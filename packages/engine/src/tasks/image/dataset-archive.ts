/**
 * The dataset format: a .zip whose top-level folders are class names holding JPEG or PNG images
 * (Keras' `image_dataset_from_directory` layout). One wrapping folder (a zipped directory) is
 * looked through. This module reads archives without TensorFlow, so the API can validate uploads.
 */
import { ARCHIVE_LIMITS, DATASET_LIMITS, GraftError, type ArchiveLimits } from '@graft/contracts';
import { openZip, readZipEntry, readZipFiles, zipEntries, type ZipEntry, type ZipFile } from '../../util/zip.ts';
import { InflateBudget, ZipGuard, zipListingError } from '../../util/zip-guard.ts';
import type { DatasetLimits } from './archive-check.ts';
import { decodeImage, DECODE_LIMITS } from './decode.ts';

export interface ArchiveImage {
  /** Path inside the archive. */
  path: string;
  className: string;
}

export interface ArchiveInspection {
  /** Sorted by name; the index in this array is the class's output index. */
  classes: { name: string; images: number }[];
  images: ArchiveImage[];
  skipped: { path: string; reason: string }[];
}

const IMAGE_EXT = /\.(jpe?g|png)$/i;

function ignoredReason(path: string): string | null {
  const parts = path.split('/');
  if (parts[0] === '__MACOSX') return 'macOS resource fork';
  if (parts.some((p) => p.startsWith('.'))) return 'hidden file';
  return null;
}

/** One image file, inflated (it is held in memory to be decoded). */
const MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024;

/** Images that cannot be decoded are listed in the refusal, up to this many. */
const LISTED_UNREADABLE = 10;

/**
 * Lists and checks every entry. The zip's layout is checked first from its central directory
 * (ZipGuard: overlapping or duplicated entries, names escaping it, inflated size and ratio), then
 * each image is inflated within the upload's byte budget and decoded in full by the trainer's own
 * `decodeImage` with its limits (DECODE_LIMITS), so an image accepted here is one training can
 * read. CPU-bound: the API runs it in a child process (`ArchiveCheckPool`). Throws GraftError
 * with a code the API answers: invalid_archive, unsafe_archive, payload_too_large, unreadable_entry
 * (naming up to 10 images and why), too_many_entries, no_images, too_few_classes.
 */
export async function inspectArchive(path: string, limits: DatasetLimits = DATASET_LIMITS, archiveLimits: ArchiveLimits = ARCHIVE_LIMITS): Promise<ArchiveInspection> {
  let zip: ZipFile;
  try {
    zip = await openZip(path);
  } catch (err) {
    throw new GraftError('invalid_archive', `The file is not a readable .zip archive (${(err as Error).message}).`, 'file');
  }
  try {
    if (zip.entryCount > limits.maxEntries) {
      throw new GraftError('too_many_entries', `The archive has ${zip.entryCount} entries; the limit is ${limits.maxEntries}.`, 'file');
    }
    const guard = new ZipGuard(zip, zip.fileSize, archiveLimits);
    const files: { path: string; entry: ZipEntry }[] = [];
    const skipped: { path: string; reason: string }[] = [];
    try {
      for await (const entry of zipEntries(zip)) {
        guard.add(entry);
        if (entry.fileName.endsWith('/')) continue; // directory
        const reason = ignoredReason(entry.fileName);
        if (reason) skipped.push({ path: entry.fileName, reason });
        else files.push({ path: entry.fileName, entry });
      }
    } catch (err) {
      throw zipListingError(err);
    }
    guard.finish();
    const budget = new InflateBudget(archiveLimits.maxInflatedBytes);
    const unreadable: { path: string; reason: string }[] = [];
    // A zipped folder (`flowers/daisy/1.jpg`): look through the one wrapping folder.
    const tops = new Set(files.map((f) => f.path.split('/')[0]));
    const strip = tops.size === 1 && files.every((f) => f.path.split('/').length >= 3) ? `${[...tops][0]}/` : '';

    const counts = new Map<string, number>();
    const images: ArchiveImage[] = [];
    for (const { path: p, entry } of files) {
      const rel = p.slice(strip.length);
      const parts = rel.split('/');
      if (parts.length < 2) { skipped.push({ path: p, reason: 'not inside a class folder' }); continue; }
      if (!IMAGE_EXT.test(p)) { skipped.push({ path: p, reason: 'not a JPEG or PNG image (by extension)' }); continue; }
      const className = parts[0]!;
      if (className.length > limits.maxClassNameLength) {
        throw new GraftError('unreadable_entry', `Class folder name "${className.slice(0, 40)}..." is longer than ${limits.maxClassNameLength} characters.`, 'file');
      }
      if (entry.isEncrypted()) throw new GraftError('unreadable_entry', `Entry "${p}" is encrypted.`, 'file');
      let data: Buffer;
      try {
        const cap = Math.min(MAX_IMAGE_FILE_BYTES, budget.remaining);
        data = await readZipEntry(zip, entry, cap, cap < MAX_IMAGE_FILE_BYTES ? budget.tooLarge : () => new Error(`it is larger than ${MAX_IMAGE_FILE_BYTES} bytes`));
      } catch (err) {
        if (err instanceof GraftError) throw err;
        throw new GraftError('unreadable_entry', `Entry "${p}" cannot be read: ${(err as Error).message}.`, 'file');
      }
      budget.spend(data.length);
      try {
        const img = decodeImage(data, DECODE_LIMITS);
        if (img.width > limits.maxImageSide || img.height > limits.maxImageSide) {
          throw new Error(`it is ${img.width}x${img.height} pixels; the limit is ${limits.maxImageSide} per side`);
        }
      } catch (err) {
        unreadable.push({ path: p, reason: (err as Error).message });
        if (unreadable.length >= LISTED_UNREADABLE) break;
        continue;
      }
      counts.set(className, (counts.get(className) ?? 0) + 1);
      images.push({ path: p, className });
    }
    if (unreadable.length > 0) {
      const list = unreadable.map((u) => `"${u.path}": ${u.reason}`).join('; ');
      const n = unreadable.length >= LISTED_UNREADABLE ? `At least ${unreadable.length} images` : unreadable.length === 1 ? '1 image' : `${unreadable.length} images`;
      throw new GraftError('unreadable_entry', `${n} cannot be decoded (training could not read them; fix or remove them): ${list}.`, 'file');
    }
    if (images.length === 0) throw new GraftError('no_images', 'The archive holds no JPEG or PNG image inside a class folder (expected <class>/<image>.jpg).', 'file');
    if (counts.size > limits.maxClasses) throw new GraftError('too_many_entries', `The archive has ${counts.size} classes; the limit is ${limits.maxClasses}.`, 'file');
    if (counts.size < 2) {
      throw new GraftError('too_few_classes', `Found images for ${counts.size} class (${[...counts.keys()].join(', ')}); classification needs at least 2 class folders.`, 'file');
    }
    const classes = [...counts.entries()].map(([name, n]) => ({ name, images: n })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { classes, images, skipped };
  } finally {
    zip.close();
  }
}

/** Reads the given images from an archive, in archive order, one at a time (bounded memory). */
export function readArchiveImages(path: string, wanted: ReadonlySet<string>): AsyncGenerator<{ path: string; data: Buffer }> {
  return readZipFiles(path, wanted);
}

export { ArchiveCheckPool, ARCHIVE_CHECK_LIMITS } from './archive-check.ts';

/**
 * A few images of each class, for a person to look at (the dashboard's thumbnails): the first
 * `perClass` by path in each class folder, found from the zip's directory alone (the archive was
 * checked in full at upload), each at most `maxBytes`.
 */
export async function sampleArchiveImages(path: string, perClass: number, maxBytes = 512 * 1024): Promise<{ path: string; className: string; data: Buffer }[]> {
  const zip = await openZip(path);
  try {
    const files: { path: string; entry: ZipEntry }[] = [];
    for await (const entry of zipEntries(zip)) {
      if (!entry.fileName.endsWith('/') && !ignoredReason(entry.fileName)) files.push({ path: entry.fileName, entry });
    }
    const tops = new Set(files.map((f) => f.path.split('/')[0]));
    const strip = tops.size === 1 && files.every((f) => f.path.split('/').length >= 3) ? `${[...tops][0]}/` : '';
    const byClass = new Map<string, { path: string; entry: ZipEntry }[]>();
    for (const f of files) {
      const parts = f.path.slice(strip.length).split('/');
      if (parts.length < 2 || !IMAGE_EXT.test(f.path) || f.entry.uncompressedSize > maxBytes) continue;
      byClass.set(parts[0]!, [...(byClass.get(parts[0]!) ?? []), f]);
    }
    const out: { path: string; className: string; data: Buffer }[] = [];
    for (const className of [...byClass.keys()].sort()) {
      for (const f of byClass.get(className)!.sort((a, b) => (a.path < b.path ? -1 : 1)).slice(0, perClass)) {
        out.push({ path: f.path, className, data: await readZipEntry(zip, f.entry, maxBytes) });
      }
    }
    return out;
  } finally {
    zip.close();
  }
}

/**
 * Refuses hostile zips from their central directory, before anything is inflated: too many entries,
 * a name given twice or escaping the archive, entries whose local records overlap or share
 * compressed data (the 17.6 GiB-from-76 KB bomb: 300 directory entries pointing at one deflated
 * block), entries reaching into the central directory, declared sizes beyond the inflation bound or
 * a compression ratio beyond the limit. The sizes are checked again while inflating (yauzl's
 * validateEntrySizes and the caller's byte budget), since headers can lie.
 */
import { ARCHIVE_LIMITS, GraftError, type ArchiveLimits } from '@graft/contracts';
import { openZip, zipEntries, type ZipEntry, type ZipFile } from './zip.ts';

const LOCAL_HEADER_BYTES = 30;

const unsafe = (message: string) => new GraftError('unsafe_archive', message, 'file');

export class ZipGuard {
  private readonly names = new Set<string>();
  private readonly spans: { start: number; end: number; name: string }[] = [];
  private declared = 0;
  private readonly directoryOffset: number;

  /** Create it right after opening the zip, before any entry is read. */
  constructor(
    zip: ZipFile,
    private readonly archiveBytes: number,
    private readonly limits: ArchiveLimits = ARCHIVE_LIMITS,
  ) {
    if (zip.entryCount > limits.maxEntries) throw new GraftError('too_many_entries', `The archive has ${zip.entryCount} entries; the limit is ${limits.maxEntries}.`, 'file');
    // yauzl reads the central directory from this offset on; local records must all lie before it.
    const cursor = (zip as unknown as { readEntryCursor?: unknown }).readEntryCursor;
    this.directoryOffset = typeof cursor === 'number' ? cursor : archiveBytes;
  }

  /** Checks one central-directory entry as it is listed. */
  add(entry: ZipEntry): void {
    const name = entry.fileName;
    if (this.names.has(name)) throw unsafe(`The archive holds "${clip(name)}" twice.`);
    this.names.add(name);
    const inflated = entry.uncompressedSize;
    if (inflated > this.limits.ratioFloorBytes && inflated > this.limits.maxRatio * Math.max(1, entry.compressedSize)) {
      throw unsafe(`Entry "${clip(name)}" inflates ${entry.compressedSize} bytes to ${inflated} (more than ${this.limits.maxRatio} times).`);
    }
    this.declared += inflated;
    if (this.declared > this.limits.maxInflatedBytes) {
      throw new GraftError('payload_too_large', `The archive inflates to more than ${this.limits.maxInflatedBytes} bytes (the limit).`, 'file');
    }
    const start = entry.relativeOffsetOfLocalHeader;
    this.spans.push({ start, end: start + LOCAL_HEADER_BYTES + entry.fileNameLength + entry.compressedSize, name });
  }

  /** Checks the entries together, once all are listed. */
  finish(): void {
    const spans = [...this.spans].sort((a, b) => a.start - b.start);
    for (let i = 0; i < spans.length; i++) {
      const s = spans[i]!;
      const prev = spans[i - 1];
      if (prev && s.start < prev.end) {
        const how = s.start === prev.start ? 'share one local record' : 'overlap';
        throw unsafe(`Entries "${clip(prev.name)}" and "${clip(s.name)}" ${how}: each entry's data must be its own.`);
      }
      if (s.end > this.directoryOffset) throw unsafe(`Entry "${clip(s.name)}" reaches into the archive's central directory.`);
    }
    if (this.declared > this.limits.ratioFloorBytes && this.declared > this.limits.maxRatio * Math.max(1, this.archiveBytes)) {
      throw unsafe(`The archive inflates ${this.archiveBytes} bytes to ${this.declared} (more than ${this.limits.maxRatio} times).`);
    }
  }
}

/**
 * Checks a zip's layout from its central directory alone (nothing inflated): the ZipGuard's rules
 * for any archive a user uploads. Throws GraftError (`invalid_archive`, `unsafe_archive`,
 * `too_many_entries`, `payload_too_large`; param `file`).
 */
export async function checkZipLayout(path: string, limits: ArchiveLimits = ARCHIVE_LIMITS, what = 'The archive'): Promise<void> {
  let zip: ZipFile;
  try {
    zip = await openZip(path);
  } catch (err) {
    throw new GraftError('invalid_archive', `${what} is not a readable .zip file (${clip((err as Error).message, 200)}).`, 'file');
  }
  try {
    const guard = new ZipGuard(zip, zip.fileSize, limits);
    try {
      for await (const entry of zipEntries(zip)) guard.add(entry);
    } catch (err) {
      throw zipListingError(err, what);
    }
    guard.finish();
  } finally {
    zip.close();
  }
}

/** A failure while listing entries: yauzl's refusals of unsafe names are `unsafe_archive`, the rest damage. */
export function zipListingError(err: unknown, what = 'The archive'): GraftError {
  if (err instanceof GraftError) return err;
  const message = (err as Error).message ?? String(err);
  if (/invalid relative path|absolute path|invalid characters in fileName/i.test(message)) {
    return unsafe(`${what} holds an entry whose name escapes it (${clip(message, 120)}): names must be relative paths without "..".`);
  }
  return new GraftError('invalid_archive', `${what} is damaged: ${clip(message, 200)}.`, 'file');
}

/** Bytes inflated from one upload so far, against its bound (shared by every entry read). */
export class InflateBudget {
  private used = 0;
  constructor(private readonly limit: number) {}
  /** The most the next entry may inflate to. */
  get remaining(): number {
    return Math.max(0, this.limit - this.used);
  }
  spend(bytes: number): void {
    this.used += bytes;
  }
  tooLarge = () => new GraftError('payload_too_large', `The archive inflates to more than ${this.limit} bytes (the limit).`, 'file');
}

function clip(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

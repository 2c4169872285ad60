/**
 * Zip files, both ways, without TensorFlow: reading entries one at a time (bounded memory, yauzl)
 * and writing zips whose bytes depend only on their contents (fixed timestamps and modes, yazl).
 */
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import yazl from 'yazl';

export type ZipFile = yauzl.ZipFile;
export type ZipEntry = yauzl.Entry;

export function openZip(path: string): Promise<ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.open(path, { lazyEntries: true, autoClose: false, validateEntrySizes: true, decodeStrings: true }, (err, zip) =>
      err || !zip ? reject(err ?? new Error('no zip')) : resolve(zip),
    ),
  );
}

/** Reads one entry in full; past `maxBytes` (counted while inflating) it stops with `tooLarge()`. */
export function readZipEntry(zip: ZipFile, entry: ZipEntry, maxBytes = Infinity, tooLarge = () => new Error(`entry is larger than ${maxBytes} bytes`)): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (err, stream) => {
      if (err || !stream) return reject(err ?? new Error('no stream'));
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) {
          stream.destroy();
          return reject(tooLarge());
        }
        chunks.push(c);
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(Buffer.concat(chunks)));
    });
  });
}

/** The entries of an open zip (yauzl, lazyEntries), one at a time. */
export async function* zipEntries(zip: ZipFile): AsyncGenerator<ZipEntry> {
  const queue: (ZipEntry | null | Error)[] = [];
  let wake: (() => void) | null = null;
  zip.on('entry', (e: ZipEntry) => { queue.push(e); wake?.(); });
  zip.on('end', () => { queue.push(null); wake?.(); });
  zip.on('error', (e: Error) => { queue.push(e); wake?.(); });
  zip.readEntry();
  for (;;) {
    if (queue.length === 0) await new Promise<void>((r) => (wake = r));
    wake = null;
    const next = queue.shift()!;
    if (next === null) return;
    if (next instanceof Error) throw next;
    yield next;
    zip.readEntry();
  }
}

/** Reads the named entries of a zip, in archive order, one at a time (bounded memory). */
export async function* readZipFiles(path: string, wanted: ReadonlySet<string>): AsyncGenerator<{ path: string; data: Buffer }> {
  const zip = await openZip(path);
  try {
    for await (const entry of zipEntries(zip)) {
      if (!wanted.has(entry.fileName)) continue;
      yield { path: entry.fileName, data: await readZipEntry(zip, entry) };
    }
  } finally {
    zip.close();
  }
}

/** A zip entry: bytes in memory, or a file on disk streamed into the zip (large encoder files). */
export type ZipInput = { name: string; data: Uint8Array } | { name: string; file: string };

// Built from local-time fields and stored as a DOS timestamp only (which has no time zone), so the
// bytes are the same in every time zone.
const FIXED_MTIME = new Date(2020, 0, 1, 0, 0, 0);

/**
 * Writes a zip whose bytes depend only on its contents. Returns the size of the zip written.
 * `store`: entries are stored, not deflated (float weights deflate by a few per cent at a real CPU
 * cost; what is written every epoch is stored).
 */
export async function writeZip(path: string, files: readonly ZipInput[], opts: { store?: boolean } = {}): Promise<number> {
  const zip = new yazl.ZipFile();
  const options = { mtime: FIXED_MTIME, mode: 0o100644, forceDosTimestamp: true, compress: !opts.store };
  for (const f of files) {
    if ('file' in f) zip.addFile(f.file, f.name, options);
    else zip.addBuffer(Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength), f.name, options);
  }
  zip.end();
  const out = createWriteStream(path);
  await pipeline(zip.outputStream, out);
  return out.bytesWritten;
}

/** Writes a zip whose bytes depend only on its contents: fixed timestamps and modes. */
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';

// Built from local-time fields and stored as a DOS timestamp only (which has no time zone), so the
// bytes are the same in every time zone.
const FIXED_MTIME = new Date(2020, 0, 1, 0, 0, 0);

/** Returns the size of the zip written. */
export async function writeZip(path: string, files: readonly { name: string; data: Uint8Array }[]): Promise<number> {
  const zip = new yazl.ZipFile();
  for (const f of files) {
    zip.addBuffer(Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength), f.name, {
      mtime: FIXED_MTIME,
      mode: 0o100644,
      forceDosTimestamp: true,
    });
  }
  zip.end();
  const out = createWriteStream(path);
  await pipeline(zip.outputStream, out);
  return out.bytesWritten;
}

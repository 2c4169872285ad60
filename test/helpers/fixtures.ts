/** Real files for tests: PNG images (pngjs) and zip archives (yazl), built in a temp directory. */
import { createWriteStream } from 'node:fs';
import { PNG } from 'pngjs';
import yazl from 'yazl';

/** A w×h PNG filled with one colour plus a little seeded noise (so images differ). */
export function png(w: number, h: number, rgb: [number, number, number], seed = 1): Buffer {
  const img = new PNG({ width: w, height: h });
  let s = seed;
  for (let i = 0; i < w * h; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const n = (s % 21) - 10;
    img.data[i * 4] = Math.max(0, Math.min(255, rgb[0] + n));
    img.data[i * 4 + 1] = Math.max(0, Math.min(255, rgb[1] + n));
    img.data[i * 4 + 2] = Math.max(0, Math.min(255, rgb[2] + n));
    img.data[i * 4 + 3] = 255;
  }
  return PNG.sync.write(img);
}

export function writeZip(path: string, entries: { name: string; data: Buffer | string }[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const zip = new yazl.ZipFile();
    for (const e of entries) zip.addBuffer(Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data), e.name, { mtime: new Date(0) });
    zip.outputStream.pipe(createWriteStream(path)).on('close', () => resolve()).on('error', reject);
    zip.end();
  });
}

/** Two colour classes ("red", "blue"), `perClass` images each, 16×16. */
export function colourEntries(perClass: number, classes: Record<string, [number, number, number]> = { red: [220, 30, 30], blue: [30, 30, 220] }) {
  return Object.entries(classes).flatMap(([name, rgb], c) =>
    Array.from({ length: perClass }, (_, i) => ({ name: `${name}/${i}.png`, data: png(16, 16, rgb, c * 1000 + i + 1) })),
  );
}

/**
 * Writes `colourEntries(perClass)` as a zip under `dir` and uploads it to the API as an image
 * dataset (the common ground of API tests that need a dataset and no training); its id.
 */
export async function uploadColourDataset(apiUrl: string, dir: string, perClass = 4): Promise<string> {
  const { mkdir, readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  await mkdir(dir, { recursive: true });
  const path = join(dir, `colours-${perClass}.zip`);
  await writeZip(path, colourEntries(perClass));
  const form = new FormData();
  form.set('task', 'image-classification');
  form.set('file', new Blob([await readFile(path)]), 'colours.zip');
  const res = await fetch(`${apiUrl}/v1/datasets`, { method: 'POST', body: form });
  const body = (await res.json()) as { id: string };
  if (res.status !== 201) throw new Error(`dataset upload answered ${res.status}: ${JSON.stringify(body)}`);
  return body.id;
}

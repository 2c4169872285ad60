/** A two-class dataset of noisy red and blue 64x64 PNGs (resized by each base's preprocessing). */
import { join } from 'node:path';
import { rgbPng } from '../../packages/engine/test/fixtures.ts';
import { mulberry32 } from '../../packages/engine/src/util/random.ts';
import { writeZip } from '../../packages/engine/src/util/zip.ts';

export async function colourZip(dir: string, images: number, seed: number): Promise<string> {
  const random = mulberry32(seed);
  const files: { name: string; data: Uint8Array }[] = [];
  for (const [cls, rgb] of [['red', [200, 40, 40]], ['blue', [40, 60, 200]]] as const) {
    for (let k = 0; k < images / 2; k++) {
      const px = new Uint8Array(64 * 64 * 3);
      for (let p = 0; p < 64 * 64; p++) px.set(rgb.map((v) => Math.max(0, Math.min(255, v + Math.round((random() - 0.5) * 120)))), p * 3);
      files.push({ name: `${cls}/${k}.png`, data: rgbPng(px, 64, 64) });
    }
  }
  const zip = join(dir, 'colours.zip');
  await writeZip(zip, files);
  return zip;
}

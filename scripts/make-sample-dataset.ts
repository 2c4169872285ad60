/**
 * Writes samples/digits-5-9.zip: 60 PNGs (28x28 grey) of each MNIST digit 5-9 in folders
 * five/six/seven/eight/nine: a transfer task for `bm_mnist_cnn`, which never saw these digits.
 * Deterministic: the same bytes on every run.
 *
 *   node --import tsx scripts/make-sample-dataset.ts
 */
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { makeDigitsZip } from '../packages/engine/test/fixtures.ts';

const out = fileURLToPath(new URL('../samples/digits-5-9.zip', import.meta.url));
await mkdir(fileURLToPath(new URL('../samples/', import.meta.url)), { recursive: true });
const bytes = await makeDigitsZip(out, { digits: [5, 6, 7, 8, 9], perClass: 60, offset: 0 });
console.log(`wrote ${out} (${bytes} bytes)`);

/**
 * Worker memory for a MobileNetV2 fine-tune (224x224, batch 32, phase 1 + phase 2 with the top 6
 * layers unfrozen) at two dataset sizes, each in a fresh process: peak resident set size and the
 * decoded-image cache on disk. The claim is that memory does not grow with the dataset.
 *
 *   node --import tsx bench/memory.ts            (runs 60 and 240 images)
 *   node --import tsx bench/memory.ts --one 240  (one size, in this process)
 */
import { normalizeFineTune, type CreateFineTuneBody } from '@graft/contracts';
import { fineTune, initBackend, resolveCatalogBase } from '@graft/engine';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { colourZip } from './lib/colour-zip.ts';

const one = process.argv.indexOf('--one');
if (one < 0) {
  console.log(`${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}`);
  for (const n of [60, 240]) {
    process.stdout.write(execFileSync(process.execPath, ['--import', 'tsx', process.argv[1]!, '--one', String(n)], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('images')).join('\n') + '\n');
  }
  process.exit(0);
}

const images = Number(process.argv[one + 1]);
const backend = await initBackend();
const base = resolveCatalogBase('bm_mobilenet_v2')!;
const dir = await mkdtemp(join(tmpdir(), 'graft-bench-mem-'));
const zip = await colourZip(dir, images, 9);
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
const spec = normalizeFineTune(
  { baseModel: base.descriptor.id, dataset: 'bench', validationSplit: 0.2, earlyStopping: false, checkpointEvery: 1_000_000, trainableLayers: 6, hyperparameters: { epochs: 1, fineTuneEpochs: 1, batchSize: 32 } } as CreateFineTuneBody,
  base.descriptor,
  1,
);
const cacheDir = join(dir, 'cache');
const t = performance.now();
await fineTune({ base, datasetPath: zip, spec, outDir: join(dir, 'out'), cacheDir });
clearInterval(sampler);
let cacheBytes = 0;
for (const f of await readdir(join(cacheDir, 'images')).catch(() => [])) cacheBytes += (await stat(join(cacheDir, 'images', f))).size;
console.log(`images ${images}: peak RSS ${(peak / 2 ** 30).toFixed(2)} GiB, decoded-image cache ${(cacheBytes / 2 ** 20).toFixed(1)} MiB (${(cacheBytes / images / 1024).toFixed(1)} KiB/image), job ${((performance.now() - t) / 1000).toFixed(0)} s on ${backend.name}`);
await rm(dir, { recursive: true, force: true });

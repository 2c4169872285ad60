/**
 * Predictions of an exported MobileNetV2 model on ONNX Runtime against tfjs (`loadPredictor` with
 * `runtime: 'onnx'`, what the API's prediction threads use): the load (ONNX: conversion and check
 * included) and warm predictions of 1 and 32 images, p50/p99 over `--rounds`, runtimes interleaved.
 *
 *   node --import tsx bench/predict-onnx.ts [--images 20] [--rounds 10]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeFineTune, type CreateFineTuneBody } from '@graft/contracts';
import { initBackend } from '../packages/engine/src/backend/backend.ts';
import { resolveCatalogBase } from '../packages/engine/src/bases/catalog.ts';
import { loadPredictor, type Predictor } from '../packages/engine/src/export/predictor.ts';
import { fineTune } from '../packages/engine/src/pipeline/fine-tune.ts';
import { inspectArchive, readArchiveImages } from '../packages/engine/src/tasks/image/dataset-archive.ts';
import { makeDigitsZip } from '../packages/engine/test/fixtures.ts';
import { fmtLoad, machine } from './lib/machine.ts';

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const rounds = arg('rounds', 10);
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

const backend = await initBackend();
const base = resolveCatalogBase('bm_mobilenet_v2')!;
const dir = await mkdtemp(join(tmpdir(), 'graft-bench-predict-onnx-'));
const loadBefore = machine().load;
try {
  const dataset = join(dir, 'digits.zip');
  await makeDigitsZip(dataset, { perClass: Math.ceil(arg('images', 20) / 5) });
  const spec = normalizeFineTune({ baseModel: base.descriptor.id, dataset: 'ds_bench', hyperparameters: { epochs: 1 }, earlyStopping: false, checkpointEvery: 1_000_000_000 } as CreateFineTuneBody, base.descriptor, 7);
  const job = await fineTune({ base, datasetPath: dataset, spec, outDir: join(dir, 'job') });
  const images: Uint8Array[] = [];
  const paths = new Set((await inspectArchive(dataset)).images.map((i) => i.path));
  for await (const { data } of readArchiveImages(dataset, paths)) images.push(data);
  while (images.length < 32) images.push(...images.slice(0, 32 - images.length));
  const loads: Record<string, number> = {};
  const predictors: Record<string, Predictor> = {};
  for (const runtime of ['tfjs', 'onnx'] as const) {
    const t = performance.now();
    predictors[runtime] = await loadPredictor(job.modelZipPath, { runtime });
    loads[runtime] = performance.now() - t;
    await predictors[runtime]!.predict(images.slice(0, 2)); // warm
  }
  const times: Record<string, { one: number[]; batch: number[] }> = { tfjs: { one: [], batch: [] }, onnx: { one: [], batch: [] } };
  for (let r = 0; r < rounds; r++) {
    for (const runtime of ['tfjs', 'onnx'] as const) {
      let t = performance.now();
      await predictors[runtime]!.predict([images[r % images.length]!]);
      times[runtime]!.one.push(performance.now() - t);
      t = performance.now();
      await predictors[runtime]!.predict(images.slice(0, 32));
      times[runtime]!.batch.push(performance.now() - t);
    }
  }
  const loadAfter = machine().load;
  const row = (runtime: 'tfjs' | 'onnx') => {
    const t = times[runtime]!;
    return `| ${runtime === 'onnx' ? `ONNX Runtime (converted and checked at load: relative error ${predictors.onnx!.runtime?.relError?.toExponential(1)})` : 'tfjs wasm'} | ${(loads[runtime]! / 1000).toFixed(2)} | ${quantile(t.one, 0.5).toFixed(0)} / ${quantile(t.one, 0.99).toFixed(0)} | ${quantile(t.batch, 0.5).toFixed(0)} / ${quantile(t.batch, 0.99).toFixed(0)} |`;
  };
  console.log(
    [
      `MobileNetV2 (\`bm_mobilenet_v2\`, 224×224) fine-tuned 1 epoch, \`loadPredictor\` in one process (${backend.name} backend; ONNX Runtime ${predictors.onnx!.runtime?.name === 'onnx' ? 'used' : `not used: ${predictors.onnx!.runtime?.reason}`}). Warm predictions, ${rounds} rounds, runtimes interleaved; p99 of ${rounds} is their maximum. ${machine().cpu}, ${machine().cores} cores; load average ${fmtLoad(loadBefore)} before, ${fmtLoad(loadAfter)} after.`,
      '',
      '| runtime | load, s | 1 image p50 / p99, ms | 32 images p50 / p99, ms |',
      '|---|---|---|---|',
      row('tfjs'),
      row('onnx'),
      '',
      `32 images: ONNX Runtime ${(quantile(times.tfjs!.batch, 0.5) / quantile(times.onnx!.batch, 0.5)).toFixed(1)}× faster (p50); 1 image: ${(quantile(times.tfjs!.one, 0.5) / quantile(times.onnx!.one, 0.5)).toFixed(1)}×; load: ${(loads.onnx! / loads.tfjs!).toFixed(1)}× the tfjs load.`,
    ].join('\n'),
  );
  for (const p of Object.values(predictors)) p.dispose();
} finally {
  await rm(dir, { recursive: true, force: true });
}

/**
 * Predictions of an exported image model on ONNX Runtime (`loadPredictor(zip, { runtime: 'onnx' })`,
 * what the API's prediction threads ask for): the complete model (base with its fine-tuned top, and
 * the head) converted and checked against tfjs before use; the same predictions as tfjs within 1e-4
 * per probability; tfjs, with the reason, when the setting says tfjs.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fineTune, loadPredictor, readArchiveImages } from '../src/index.ts';
import { mnistBase, specFor } from './train-helpers.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-predict-onnx-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('an exported two-phase model predicts on ONNX Runtime as it does on tfjs (within 1e-4), and scores the reported accuracy', async () => {
  const out = await fineTune({
    base: mnistBase(),
    datasetPath: SAMPLE,
    spec: specFor({ hyperparameters: { epochs: 2, fineTuneEpochs: 1 }, trainableLayers: 1, earlyStopping: false }),
    outDir: join(dir, 'job'),
  });
  const tfjs = await loadPredictor(out.modelZipPath);
  const onnx = await loadPredictor(out.modelZipPath, { runtime: 'onnx' });
  try {
    assert.deepEqual(tfjs.runtime, { name: 'tfjs', reason: null });
    assert.equal(onnx.runtime?.name, 'onnx', JSON.stringify(onnx.runtime));
    assert.ok(onnx.runtime!.relError! < 1e-4, `checked: ${onnx.runtime!.relError}`);
    const validation = new Set((tfjs.training!.split as { validation: string[] }).validation);
    const images: { path: string; data: Uint8Array }[] = [];
    for await (const image of readArchiveImages(SAMPLE, validation)) images.push(image);
    const [a, b] = [await tfjs.predict(images.map((i) => i.data)), await onnx.predict(images.map((i) => i.data))];
    let maxDiff = 0;
    let correct = 0;
    b.forEach((p, i) => {
      p.probabilities.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - a[i]!.probabilities[j]!))));
      if (p.label === images[i]!.path.split('/')[0]) correct++;
    });
    console.log(`ONNX vs tfjs predictions on ${images.length} images: max |Δp| ${maxDiff.toExponential(2)}; accuracy ${correct / images.length} (reported ${out.result.valAccuracy})`);
    assert.ok(maxDiff < 1e-4, `max probability difference ${maxDiff}`);
    assert.equal(correct / images.length, out.result.valAccuracy);
  } finally {
    tfjs.dispose();
    onnx.dispose();
  }
  const saved = process.env.GRAFT_FROZEN_RUNTIME;
  process.env.GRAFT_FROZEN_RUNTIME = 'tfjs';
  try {
    const off = await loadPredictor(out.modelZipPath, { runtime: 'onnx' });
    assert.deepEqual(off.runtime, { name: 'tfjs', reason: 'GRAFT_FROZEN_RUNTIME=tfjs' });
    off.dispose();
  } finally {
    if (saved === undefined) delete process.env.GRAFT_FROZEN_RUNTIME;
    else process.env.GRAFT_FROZEN_RUNTIME = saved;
  }
});

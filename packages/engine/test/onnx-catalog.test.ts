/**
 * Every catalog layers base converted to ONNX, cut at its feature layer and pooled as the head pools
 * it, checked against tfjs by prepareOnnxBase (relative error < 1e-4 of the feature scale), and the
 * converted-model cache: reuse, a damaged file, a conversion that fails its check.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isImageBase, type Preprocessing } from '@graft/contracts';
import { initBackend } from '../src/backend/backend.ts';
import { resolveCatalogBase } from '../src/bases/catalog.ts';
import { cutBase } from '../src/train/freezing.ts';
import { openBase } from '../src/bases/open-base.ts';
import { onnxCacheFiles, prepareOnnxBase, type OnnxBase } from '../src/onnx/prepare.ts';
import { MAX_RELATIVE_ERROR, randomInputs, relativeError, tfjsReference } from '../src/onnx/verify.ts';

let dir: string;
before(async () => {
  await initBackend();
  dir = await mkdtemp(join(tmpdir(), 'graft-onnx-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function openCut(id: string) {
  const base = resolveCatalogBase(id)!;
  assert.ok(isImageBase(base.descriptor));
  const pre: Preprocessing = base.descriptor.preprocessing;
  const opened = await openBase(base);
  return { base, pre, opened, cut: cutBase(opened.layers!, base.descriptor.featureLayer) };
}

async function release(onnx: OnnxBase) {
  if (onnx.ok) await onnx.runner.release();
}

const expectations = [
  // id, pooling, features, FLOPs per image (2 × multiply-adds of convs and dense layers)
  ['bm_mnist_cnn', 'flatten', 800, 1_309_824],
  ['bm_mobilenet_v2', 'avg', 1280, 598_988_544],
  ['bm_inception_v3', 'avg', 2048, 11_422_336_192],
] as const;

for (const [id, pooling, dim, flops] of expectations) {
  test(`${id}: converted, checked against tfjs (relative error < 1e-4), cached by checksum and cut layer`, async () => {
    const { base, pre, opened, cut } = await openCut(id);
    try {
      const onnx = await prepareOnnxBase(cut, { cacheDir: dir, pooling, preprocessing: pre });
      assert.ok(onnx.ok, onnx.ok ? '' : onnx.reason);
      try {
        const r = onnx.record;
        assert.equal(onnx.cached, false);
        assert.equal(r.cutLayer, base.descriptor.featureLayer);
        assert.ok(r.equivalence.relError < MAX_RELATIVE_ERROR, `relative error ${r.equivalence.relError}`);
        assert.ok(r.equivalence.scale > 0.01, 'features are not all (near) zero');
        assert.deepEqual(r.outputShape, [dim]);
        assert.equal(r.flopsPerImage, flops);
        assert.equal(r.ops.BatchNormalization, undefined, 'every BatchNormalization of these bases folds into its convolution');
        // Another image set than the check's, through the runner the caller gets.
        const shape = r.inputShape;
        const x = randomInputs(1, shape, pre, 99);
        const { relError } = relativeError(await onnx.runner.run(x, 1), tfjsReference(cut, x, 1, shape, pooling));
        assert.ok(relError < MAX_RELATIVE_ERROR, `second input: ${relError}`);
      } finally {
        await release(onnx);
      }
      const again = await prepareOnnxBase(cut, { cacheDir: dir, pooling, preprocessing: pre });
      assert.ok(again.ok && again.cached, 'the second job reuses the converted file');
      assert.equal(again.record.key, onnx.record.key);
      await release(again);
    } finally {
      opened.dispose();
    }
  });
}

test('the cache: a damaged file is converted again; a conversion that fails its check is recorded and falls back at once', async () => {
  const { pre, opened, cut } = await openCut('bm_mnist_cnn');
  const cacheDir = join(dir, 'damaged');
  const opts = { cacheDir, pooling: 'flatten' as const, preprocessing: pre };
  try {
    const first = await prepareOnnxBase(cut, opts);
    assert.ok(first.ok);
    await release(first);
    const files = onnxCacheFiles(cacheDir, first.record.key);
    const bytes = await readFile(files.model);
    bytes[bytes.length - 5]! ^= 0xff;
    await writeFile(files.model, bytes);
    const second = await prepareOnnxBase(cut, opts);
    assert.ok(second.ok && !second.cached, 'a file whose sha256 differs from its record is not used');
    await release(second);

    // The same base at another cut is another cache entry.
    const pool1 = cutBase(opened.layers!, 'pool1');
    const other = await prepareOnnxBase(pool1, { ...opts, pooling: 'avg' });
    assert.ok(other.ok && !other.cached);
    assert.notEqual(other.record.key, first.record.key);
    await release(other);

    // A bound nothing can meet stands in for a converter bug: fall back, say why, remember it.
    const strictDir = join(dir, 'strict');
    const failed = await prepareOnnxBase(cut, { ...opts, cacheDir: strictDir, check: { tolerance: 0 } });
    assert.equal(failed.ok, false);
    assert.match(failed.ok ? '' : failed.reason, /differs from tfjs by .* the bound is 0/);
    const remembered = await prepareOnnxBase(cut, { ...opts, cacheDir: strictDir });
    assert.ok(!remembered.ok && remembered.cached, 'the failed check is not repeated by the next job');
  } finally {
    opened.dispose();
  }
});

test('an unsupported layer falls back with the reason, without a cache entry', async () => {
  const input = tf.input({ shape: [8, 8, 3] });
  const up = tf.layers.upSampling2d({ size: [2, 2] }).apply(tf.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(input)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: up });
  const result = await prepareOnnxBase(model, { cacheDir: join(dir, 'unsupported'), pooling: 'avg', preprocessing: null });
  assert.equal(result.ok, false);
  assert.match(result.ok ? '' : result.reason, /the converter does not support layer ".*" \(UpSampling2D\)/);
  model.dispose();
});

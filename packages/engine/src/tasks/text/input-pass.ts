/**
 * Reading the texts of a dataset's rows file for a job: the one pass (each text tokenized once:
 * the frozen encoder's sentence vectors, and/or the token ids for the input cache), and the exact
 * reading the final evaluation scores on. Example ids are the rows' line numbers.
 */
import * as tf from '@tensorflow/tfjs';
import type { Example } from '../../data/example.ts';
import { TrainingCancelled, TrainingError } from '../../errors.ts';
import type { InputPassOptions, LabelledBatch } from '../task.ts';
import { readTextRows } from './dataset/rows-file.ts';
import type { SentenceEncoder } from './sentence-encoder.ts';
import { tokenTensors, type TokenCacheWriter } from './token-cache.ts';

/** How the text task tokenizes for one encoder: one text → its ids as the encoder takes them. */
export interface Tokenization {
  /** sha256 of the tokenizer files (cache keys). */
  readonly identity: string;
  readonly maxLength: number;
  readonly padId: number;
  /** Ids with the special tokens, truncated to maxLength. */
  row(text: string): Int32Array;
}

/** The frozen step of a pass: a tfjs model on token tensors, or a sentence encoder on raw texts. */
export type FeatureSource =
  | { kind: 'tokens'; run(x: tf.Tensor[]): tf.Tensor; dim: number; batchSize: number }
  | { kind: 'texts'; encoder: SentenceEncoder; batchSize: number };

const tick = () => new Promise((r) => setImmediate(r));

/** Text rows of the listed ids (line numbers), in file order; TrainingError when one is missing. */
async function* rowsOf(rowsPath: string, ids: ReadonlySet<string>, signal?: AbortSignal): AsyncGenerator<{ id: string; text: string }> {
  let found = 0;
  const seen = new Set<string>();
  for await (const r of readTextRows(rowsPath)) {
    if (signal?.aborted) throw new TrainingCancelled();
    const id = String(r.line);
    if (!ids.has(id) || seen.has(id)) continue;
    seen.add(id);
    found++;
    yield { id, text: r.text };
  }
  if (found !== ids.size) {
    const missing = [...ids].find((id) => !seen.has(id));
    throw new TrainingError('dataset_missing', `Row ${missing} is missing from the dataset's rows file.`);
  }
}

/**
 * One pass over the rows file: token ids into the input cache (when given) and sentence vectors
 * of the rows asked for ([ids.length, dim] row-major in the order of `ids`, other rows 0).
 */
export async function textPass(rowsPath: string, tokenizer: Tokenization | null, source: FeatureSource | null, dim: number, opts: InputPassOptions): Promise<Float32Array | null> {
  const writer = opts.cache as TokenCacheWriter | null;
  if (writer && !tokenizer) throw new Error('this encoder keeps no token ids');
  if (opts.features && !source) throw new Error('features asked of an encoder that cannot compute them');
  const rowOf = new Map(opts.ids.map((id, i) => [id, i]));
  const wanted = opts.features === 'all' ? null : opts.features;
  const pending: { row: number; text: string; tokens: Int32Array | null }[] = [];
  let read = 0;
  for await (const { id, text } of rowsOf(rowsPath, new Set(opts.ids), opts.signal)) {
    const row = rowOf.get(id)!;
    const tokens = tokenizer ? tokenizer.row(text) : null;
    if (writer) await writer.write(row, tokens!);
    if (opts.features && (!wanted || wanted.has(row))) pending.push({ row, text, tokens });
    if (++read % 256 === 0) {
      if (!opts.features) await opts.onProgress?.(read, opts.ids.length);
      await tick();
    }
  }
  if (!opts.features || !source) return null;
  const encoding = performance.now();
  try {
    return await encodeRows(source, tokenizer, pending, dim, opts);
  } finally {
    if (opts.timing) opts.timing.encoderMs += performance.now() - encoding;
  }
}

async function encodeRows(source: FeatureSource, tokenizer: Tokenization | null, pending: { row: number; text: string; tokens: Int32Array | null }[], dim: number, opts: InputPassOptions): Promise<Float32Array> {
  const out = new Float32Array(opts.ids.length * dim);
  if (source.kind === 'texts') {
    let vectors: Float32Array;
    try {
      vectors = await source.encoder.embed(pending.map((p) => p.text), {
        batchSize: source.batchSize,
        signal: opts.signal,
        onProgress: (done, total) => void opts.onProgress?.(done, total),
      });
    } catch (err) {
      if (opts.signal?.aborted) throw new TrainingCancelled();
      throw err;
    }
    pending.forEach((p, k) => out.set(vectors.subarray(k * dim, (k + 1) * dim), p.row * dim));
    return out;
  }
  // Sorted by length so a batch pads little; each vector goes back to its row.
  pending.sort((a, b) => a.tokens!.length - b.tokens!.length || a.row - b.row);
  for (let start = 0; start < pending.length; start += source.batchSize) {
    if (opts.signal?.aborted) throw new TrainingCancelled();
    const batch = pending.slice(start, start + source.batchSize);
    const values = tf.tidy(() => source.run(tokenTensors(batch.map((p) => p.tokens!), tokenizer!.padId)));
    const data = await values.data<'float32'>();
    values.dispose();
    batch.forEach((p, k) => out.set(data.subarray(k * dim, (k + 1) * dim), p.row * dim));
    await opts.onProgress?.(Math.min(pending.length, start + source.batchSize), pending.length);
    await tick(); // let IPC and cancel messages through
  }
  return out;
}

/** The listed rows as [input_ids, attention_mask] batches, in file order, `batchSize` at a time. */
export async function* readTokensExactly(rowsPath: string, examples: readonly Example[], tokenizer: Tokenization, batchSize: number, signal?: AbortSignal): AsyncGenerator<LabelledBatch> {
  const label = new Map(examples.map((e) => [e.id, e.label]));
  let pending: { labels: number[]; rows: Int32Array[] } = { labels: [], rows: [] };
  const take = (): LabelledBatch => {
    const { labels, rows } = pending;
    pending = { labels: [], rows: [] };
    return { labels, x: tokenTensors(rows, tokenizer.padId) };
  };
  for await (const { id, text } of rowsOf(rowsPath, new Set(label.keys()), signal)) {
    pending.rows.push(tokenizer.row(text));
    pending.labels.push(label.get(id)!);
    if (pending.rows.length >= batchSize) yield take();
  }
  if (pending.rows.length) yield take();
}

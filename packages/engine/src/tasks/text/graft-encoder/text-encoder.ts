/**
 * graft's encoder as a text base: the `TextEncoder` the text task uses (frozen sentence vectors),
 * plus what fine-tuning needs — the LayersModel itself, the cut at its pooled output, and token
 * tensors for a batch of texts.
 *
 * How the pipeline uses it (see packages/engine/README.md, "graft's text encoder"):
 * - frozen features: `embed(texts)` (or `cut()` on tensors from `encode`) → [n, dim];
 * - transfer model: `cut()` = inputs [input_ids, attention_mask] → `pooled`; the head goes on top;
 * - phase 2: `selectTrainableLayers(cut, k | { from: blockStart(config, i) })` + `unfreeze`; the
 *   frozen part runs with `training: false` (no dropout, which the shipped encoder has none of anyway).
 */
import * as tf from '@tensorflow/tfjs';
import { throwIfAborted, type EmbedOptions } from './abort.ts';
import { ATTENTION_MASK, INPUT_IDS, POOLED_LAYER, type GraftEncoderConfig } from './architecture.ts';
import { loadGraftEncoderModel, type EncoderFile } from './model-files.ts';
import { loadWordPieceTokenizer, type EncodedBatch, type WordPieceTokenizer } from '../tokenizer.ts';
import type { SentenceEncoder } from '../sentence-encoder.ts';

export interface GraftTextEncoder extends SentenceEncoder {
  readonly kind: 'tfjs-layers';
  readonly dim: number;
  readonly maxLength: number;
  readonly pooling: 'cls' | 'mean';
  readonly config: GraftEncoderConfig;
  /** The whole encoder: inputs [input_ids, attention_mask], outputs [token states, pooled]. Every layer trainable as loaded. */
  readonly model: tf.LayersModel;
  readonly tokenizer: WordPieceTokenizer;
  readonly file: EncoderFile;
  /** Tokens a text has before truncation ([CLS] and [SEP] included). */
  countTokens(text: string): number;
  /** Token ids and mask for a batch, padded to its longest text (≤ maxLength), or to `padTo`. */
  encode(texts: readonly string[], opts?: { padTo?: number }): EncodedBatch;
  /** [ids, mask] int32 tensors [n, length] of an encoded batch (the caller disposes them). */
  tensors(batch: EncodedBatch, n: number): [tf.Tensor2D, tf.Tensor2D];
  /** The model from its inputs to the pooled sentence vector (shares the weights): where a head goes. */
  cut(): tf.LayersModel;
  /** Frozen sentence vectors [texts.length × dim], in order, inference mode; checks `signal` before every batch. */
  embed(texts: readonly string[], opts?: EmbedOptions): Promise<Float32Array>;
  dispose(): void;
}

export async function openGraftTextEncoder(dir: string): Promise<GraftTextEncoder> {
  const tokenizer = await loadWordPieceTokenizer(dir);
  const { model, file } = await loadGraftEncoderModel(dir);
  const config = file.config;
  if (tokenizer.vocabSize !== config.vocabSize) {
    model.dispose();
    throw new Error(`the tokenizer in ${dir} has ${tokenizer.vocabSize} tokens but the encoder's embedding has ${config.vocabSize}`);
  }
  let cut: tf.LayersModel | null = null;
  const getCut = () => (cut ??= tf.model({ inputs: model.inputs, outputs: model.getLayer(POOLED_LAYER).output as tf.SymbolicTensor, name: `${model.name}_pooled` }));
  const encode = (texts: readonly string[], opts: { padTo?: number } = {}) => tokenizer.encode(texts, config.maxLength, opts);
  const tensors = (b: EncodedBatch, n: number): [tf.Tensor2D, tf.Tensor2D] => [
    tf.tensor2d(b.inputIds, [n, b.length], 'int32'),
    tf.tensor2d(b.attentionMask, [n, b.length], 'int32'),
  ];
  return {
    kind: 'tfjs-layers',
    dim: config.hidden,
    maxLength: config.maxLength,
    pooling: config.pooling,
    config,
    model,
    tokenizer,
    file,
    countTokens: (text) => tokenizer.countTokens(text),
    encode,
    tensors,
    cut: getCut,
    async embed(texts, opts = {}) {
      const batchSize = Math.max(1, opts.batchSize ?? 32);
      const out = new Float32Array(texts.length * config.hidden);
      // Texts sorted by length so a batch pads little; vectors go back to their places.
      const lengths = texts.map((t) => Math.min(config.maxLength, tokenizer.countTokens(t)));
      const order = texts.map((_, i) => i).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
      const pooled = getCut();
      for (let start = 0; start < order.length; start += batchSize) {
        throwIfAborted(opts.signal);
        const idx = order.slice(start, start + batchSize);
        const batch = encode(idx.map((i) => texts[i]!));
        const vectors = tf.tidy(() => {
          const [ids, mask] = tensors(batch, idx.length);
          return pooled.apply([ids, mask], { training: false }) as tf.Tensor;
        });
        const data = await vectors.data();
        vectors.dispose();
        idx.forEach((i, row) => out.set(data.subarray(row * config.hidden, (row + 1) * config.hidden), i * config.hidden));
        opts.onProgress?.(Math.min(order.length, start + batchSize), order.length);
        // Let the event loop run (cancel messages, heartbeats) between batches.
        await new Promise((r) => setImmediate(r));
      }
      throwIfAborted(opts.signal);
      return out;
    },
    dispose() {
      model.dispose();
    },
  };
}

export { INPUT_IDS, ATTENTION_MASK };


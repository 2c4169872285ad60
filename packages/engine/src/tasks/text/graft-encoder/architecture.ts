/**
 * graft's transformer encoder as a tfjs LayersModel (functional API), BERT's shape scaled down:
 *
 *   input_ids, attention_mask  int32 [batch, length ≤ maxLength]
 *   token_embedding + position_embedding → embedding_norm
 *   block_0 … block_{N-1}: multi-head self-attention (masked) + feed-forward (GELU), each with a
 *     residual connection and LayerNormalization, after (post-LN, BERT) or before (pre-LN) it
 *   outputs: [token states [batch, length, hidden], pooled [batch, hidden]] (`pooled`: cls or masked mean)
 *
 * Layer names are the freezing interface: every layer of block i starts with `block_i_`, and a block
 * begins with `block_i_attention` (post-LN) or `block_i_attention_norm` (pre-LN), so
 * `trainableLayers: { from: "block_3_attention" }` unfreezes block 3 and everything above it, and
 * `trainableLayers: k` counts the weighted layers from the top (5 per block; see LAYERS_PER_BLOCK).
 */
import * as tf from '@tensorflow/tfjs';
import { Dense, LayerNorm, MaskedPooling, MultiHeadSelfAttention, PositionEmbedding, truncatedNormal, type Pooling } from './layers.ts';
import { registerWasmTextGradientKernels } from './wasm-segment-sum.ts';

export interface GraftEncoderConfig {
  vocabSize: number;
  /** Longest input (positions in the position table). */
  maxLength: number;
  hidden: number;
  blocks: number;
  heads: number;
  /** Feed-forward inner size (BERT: 4 × hidden). */
  ffn: number;
  /** 'post': LayerNormalization after each residual add (BERT); 'pre': before each sub-layer, plus a final one. */
  norm: 'post' | 'pre';
  pooling: Pooling;
  /** Dropout after the embeddings and each sub-layer while training (0: no dropout layers). */
  dropout: number;
  layerNormEpsilon: number;
}

export const DEFAULT_CONFIG: GraftEncoderConfig = {
  vocabSize: 8000,
  maxLength: 128,
  hidden: 128,
  blocks: 2,
  heads: 4,
  ffn: 512,
  norm: 'post',
  pooling: 'mean',
  dropout: 0,
  layerNormEpsilon: 1e-6,
};

/** Layers with weights in one block: attention, attention_norm, ffn_intermediate, ffn_output, ffn_norm. */
export const LAYERS_PER_BLOCK = 5;

/** The name of the layer giving sentence vectors: the cut point of a transfer model. */
export const POOLED_LAYER = 'pooled';
export const INPUT_IDS = 'input_ids';
export const ATTENTION_MASK = 'attention_mask';

/** The layer that opens block i (the `{ from }` value that unfreezes block i and everything above). */
export function blockStart(config: Pick<GraftEncoderConfig, 'norm'>, i: number): string {
  return config.norm === 'post' ? `block_${i}_attention` : `block_${i}_attention_norm`;
}

export function validateConfig(c: GraftEncoderConfig): void {
  const positive = ['vocabSize', 'maxLength', 'hidden', 'blocks', 'heads', 'ffn'] as const;
  for (const k of positive) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`encoder config ${k} must be a positive integer, not ${c[k]}`);
  }
  if (c.hidden % c.heads !== 0) throw new Error(`hidden (${c.hidden}) must be a multiple of heads (${c.heads})`);
  if (c.norm !== 'post' && c.norm !== 'pre') throw new Error(`norm must be "post" or "pre"`);
  if (c.pooling !== 'cls' && c.pooling !== 'mean') throw new Error(`pooling must be "cls" or "mean"`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`dropout must be in [0, 1)`);
}

/**
 * A freshly initialised encoder. With `seed`, every initializer (and dropout mask) is seeded, so the
 * same config and seed give the same weights.
 */
export function buildGraftEncoder(config: GraftEncoderConfig, opts: { seed?: number; name?: string } = {}): tf.LayersModel {
  validateConfig(config);
  registerWasmTextGradientKernels();
  let n = 0;
  const seed = () => (opts.seed === undefined ? undefined : opts.seed * 1009 + ++n);
  const normal = () => tf.initializers.truncatedNormal({ mean: 0, stddev: 0.02, ...(opts.seed === undefined ? {} : { seed: seed() }) });
  const c = config;
  const dropout = (x: tf.SymbolicTensor, name: string) =>
    c.dropout > 0 ? (tf.layers.dropout({ rate: c.dropout, seed: seed(), name }).apply(x) as tf.SymbolicTensor) : x;
  const norm = (x: tf.SymbolicTensor, name: string) =>
    new LayerNorm({ epsilon: c.layerNormEpsilon, name }).apply(x) as tf.SymbolicTensor;
  const add = (a: tf.SymbolicTensor, b: tf.SymbolicTensor, name: string) => tf.layers.add({ name }).apply([a, b]) as tf.SymbolicTensor;

  const ids = tf.input({ shape: [null], dtype: 'int32', name: INPUT_IDS });
  const mask = tf.input({ shape: [null], dtype: 'int32', name: ATTENTION_MASK });

  const tokens = tf.layers.embedding({ inputDim: c.vocabSize, outputDim: c.hidden, embeddingsInitializer: normal(), name: 'token_embedding' }).apply(ids) as tf.SymbolicTensor;
  const positioned = new PositionEmbedding({ maxLength: c.maxLength, embeddingsInitializer: truncatedNormal(seed()), name: 'position_embedding' }).apply(tokens) as tf.SymbolicTensor;
  let x = dropout(norm(positioned, 'embedding_norm'), 'embedding_dropout');

  for (let i = 0; i < c.blocks; i++) {
    const p = `block_${i}`;
    const attention = (h: tf.SymbolicTensor) =>
      dropout(new MultiHeadSelfAttention({ heads: c.heads, kernelInitializer: truncatedNormal(seed()), name: `${p}_attention` }).apply([h, mask]) as tf.SymbolicTensor, `${p}_attention_dropout`);
    const ffn = (h: tf.SymbolicTensor) => {
      const inner = new Dense({ units: c.ffn, activation: 'gelu', kernelInitializer: truncatedNormal(seed()), name: `${p}_ffn_intermediate` }).apply(h) as tf.SymbolicTensor;
      const out = new Dense({ units: c.hidden, kernelInitializer: truncatedNormal(seed()), name: `${p}_ffn_output` }).apply(inner) as tf.SymbolicTensor;
      return dropout(out, `${p}_ffn_dropout`);
    };
    if (c.norm === 'post') {
      x = norm(add(x, attention(x), `${p}_attention_residual`), `${p}_attention_norm`);
      x = norm(add(x, ffn(x), `${p}_ffn_residual`), `${p}_ffn_norm`);
    } else {
      x = add(x, attention(norm(x, `${p}_attention_norm`)), `${p}_attention_residual`);
      x = add(x, ffn(norm(x, `${p}_ffn_norm`)), `${p}_ffn_residual`);
    }
  }
  if (c.norm === 'pre') x = norm(x, 'final_norm');
  const pooled = new MaskedPooling({ mode: c.pooling, name: POOLED_LAYER }).apply([x, mask]) as tf.SymbolicTensor;
  return tf.model({ inputs: [ids, mask], outputs: [x, pooled], name: opts.name ?? 'graft_encoder' });
}

/** The encoder's config read back from a built or loaded model (the inverse of buildGraftEncoder). */
export function configOf(model: tf.LayersModel): GraftEncoderConfig {
  const emb = model.getLayer('token_embedding').getConfig() as { inputDim: number; outputDim: number };
  const pos = model.getLayer('position_embedding') as PositionEmbedding;
  const names = new Set(model.layers.map((l) => l.name));
  let blocks = 0;
  while (names.has(`block_${blocks}_attention`)) blocks++;
  const attention = model.getLayer('block_0_attention') as MultiHeadSelfAttention;
  const ffn = model.getLayer('block_0_ffn_intermediate') as Dense;
  const ln = model.getLayer('embedding_norm') as LayerNorm;
  const dropoutLayer = model.layers.find((l) => l.name === 'embedding_dropout');
  return {
    vocabSize: emb.inputDim,
    maxLength: pos.maxLength,
    hidden: emb.outputDim,
    blocks,
    heads: attention.heads,
    ffn: ffn.units,
    norm: names.has('final_norm') ? 'pre' : 'post',
    pooling: (model.getLayer(POOLED_LAYER) as MaskedPooling).mode,
    dropout: dropoutLayer ? (dropoutLayer.getConfig() as { rate: number }).rate : 0,
    layerNormEpsilon: ln.epsilon,
  };
}

export function countParams(model: tf.LayersModel): number {
  return model.weights.reduce((n, w) => n + w.shape.reduce((a: number, b) => a * (b ?? 1), 1), 0);
}

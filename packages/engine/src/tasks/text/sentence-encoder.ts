/**
 * The common contract of every text base as the text task sees it: texts in, pooled sentence
 * vectors out. Implemented by graft's tfjs encoder (`graft-encoder/`, also fine-tunable), ONNX
 * encoders run by onnxruntime-node (`onnx/`, frozen) and USE-style graph encoders (`use/`, frozen).
 */
import type { EmbedOptions } from './graft-encoder/abort.ts';

export type { EmbedOptions };

export interface SentenceEncoder {
  readonly kind: 'tfjs-layers' | 'tfjs-graph' | 'onnx';
  /** Length of a sentence vector. */
  readonly dim: number;
  /** Tokens kept per text ([CLS]/[SEP] included); longer texts are truncated. */
  readonly maxLength: number;
  /** How token states become one vector: the [CLS] state, the mean over the attention mask, or the model's own (`none`). */
  readonly pooling: 'cls' | 'mean' | 'none';
  /** Tokens a text has before truncation (special tokens included), in this encoder's tokenizer. */
  countTokens(text: string): number;
  /** Frozen sentence vectors [texts.length × dim] row-major, in input order; an aborted signal rejects with its reason. */
  embed(texts: readonly string[], opts?: EmbedOptions): Promise<Float32Array>;
  dispose(): void;
}

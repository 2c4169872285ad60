/**
 * Tokenization for graft's encoder: its `tokenizer.json` (a WordPiece tokenizer written by Hugging
 * Face's tokenizers library) read by `@huggingface/transformers`' tokenizer classes, no network.
 * `encode` pads every batch to its longest sequence (≤ maxLength): the encoder takes any length.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PreTrainedTokenizer } from '@huggingface/transformers';

export interface EncodedBatch {
  /** [n, length] row-major */
  inputIds: Int32Array;
  attentionMask: Int32Array;
  /** tokens per row (padded) */
  length: number;
}

export interface WordPieceTokenizer {
  readonly vocabSize: number;
  readonly specialIds: { pad: number; unk: number; cls: number; sep: number; mask: number };
  /** [CLS] text [SEP], truncated to maxLength, padded to the longest row of the batch (or `padTo`). */
  encode(texts: readonly string[], maxLength: number, opts?: { padTo?: number }): EncodedBatch;
  /** Token ids without [CLS]/[SEP], not truncated. */
  ids(text: string): number[];
  /** Tokens the text has before truncation, [CLS] and [SEP] included (what `encode` would keep up to maxLength). */
  countTokens(text: string): number;
}

export async function loadWordPieceTokenizer(dir: string): Promise<WordPieceTokenizer> {
  const json = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as { model?: { vocab?: Record<string, number> } };
  const config = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const tok = new PreTrainedTokenizer(json, config);
  const vocab = tok.get_vocab();
  const id = (t: string) => {
    const v = vocab.get(t);
    if (v === undefined) throw new Error(`tokenizer in ${dir} has no ${t} token`);
    return v;
  };
  const specialIds = { pad: id('[PAD]'), unk: id('[UNK]'), cls: id('[CLS]'), sep: id('[SEP]'), mask: id('[MASK]') };
  const ids = (text: string) => tok.encode(text, { add_special_tokens: false });
  return {
    vocabSize: vocab.size,
    specialIds,
    ids,
    countTokens: (text) => ids(text).length + 2,
    encode(texts, maxLength, opts = {}) {
      const rows = texts.map((t) => {
        const body = ids(t).slice(0, Math.max(0, maxLength - 2));
        return [specialIds.cls, ...body, specialIds.sep];
      });
      const length = Math.max(1, opts.padTo ?? 0, ...rows.map((r) => r.length));
      const inputIds = new Int32Array(texts.length * length).fill(specialIds.pad);
      const attentionMask = new Int32Array(texts.length * length);
      rows.forEach((r, i) => {
        inputIds.set(r, i * length);
        attentionMask.fill(1, i * length, i * length + r.length);
      });
      return { inputIds, attentionMask, length };
    },
  };
}

/**
 * The tokenizer of every text base: a folder's `tokenizer.json` (+ `tokenizer_config.json`), as
 * Hugging Face's tokenizers library writes them, read by `@huggingface/tokenizers` — the library
 * `@huggingface/transformers`' `PreTrainedTokenizer` is built on (its `encode` is this `Tokenizer`'s,
 * constructed from the same two files), without transformers' eager load of onnxruntime-node and
 * sharp (1.1 s and 37 MB against 18 ms and 1 MB), so the dataset check's worker thread can bundle
 * it. No network, no hand-written WordPiece. graft's encoder, ONNX encoders and the dataset check's
 * token counts all use this module.
 *
 * A text becomes the base's special-token template around its tokens ([CLS] … [SEP] for BERT,
 * <s> … </s> for RoBERTa: whatever the post-processor adds, found once by encoding a probe), the
 * tokens truncated so the whole fits `maxLength` (the template is always kept, as Python's
 * `truncation=True` does for one sequence). `encode` pads a batch to its longest row (≤ maxLength).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { TokenizerKind } from '@graft/contracts';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

export interface EncodedBatch {
  /** [n, length] row-major */
  inputIds: Int32Array;
  attentionMask: Int32Array;
  /** tokens per row (padded) */
  length: number;
}

export interface TextTokenizer {
  /** `model.type` of tokenizer.json, lower-cased. */
  readonly kind: TokenizerKind;
  readonly vocabSize: number;
  /** Whether the normalizer lower-cases (uncased models). */
  readonly lowercase: boolean;
  /** The files it was read from (tokenizer_config.json only when the folder has it). */
  readonly files: string[];
  readonly padId: number;
  /** The ids the post-processor puts before and after a text's tokens. */
  readonly template: { prefix: readonly number[]; suffix: readonly number[] };
  /** The id of a token of the vocabulary (special tokens included), if it has it. */
  tokenId(token: string): number | undefined;
  /** Token ids of the text alone (no special tokens), not truncated. */
  ids(text: string): number[];
  /** Tokens the text has before truncation, special tokens included. */
  countTokens(text: string): number;
  /** Whether `countTokens` adds up cached counts of the text's white-space separated chunks (see `separableByWhitespace`). */
  readonly countsByChunk: boolean;
  /** The template around the text's tokens, truncated to maxLength; padded to the longest row of the batch (or `padTo`). */
  encode(texts: readonly string[], maxLength: number, opts?: { padTo?: number }): EncodedBatch;
}

/** A BERT-style WordPiece tokenizer, with the special tokens pretraining needs by id. */
export interface WordPieceTokenizer extends TextTokenizer {
  readonly specialIds: { pad: number; unk: number; cls: number; sep: number; mask: number };
}

/** A tokenizer folder that cannot be used; the message says why. */
export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

const KINDS: readonly string[] = ['wordpiece', 'bpe', 'unigram', 'wordlevel'];

async function readJson(path: string, required: boolean): Promise<Record<string, unknown> | null> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new TokenizerError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const v = JSON.parse(raw) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new TokenizerError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Whether a tokenizer.json normalizer lower-cases (BertNormalizer's flag, or a Lowercase step in a Sequence). */
function lowercases(normalizer: unknown): boolean {
  if (!normalizer || typeof normalizer !== 'object') return false;
  const n = normalizer as { type?: string; lowercase?: boolean; normalizers?: unknown[] };
  if (n.type === 'BertNormalizer') return n.lowercase !== false;
  if (n.type === 'Lowercase') return true;
  if (n.type === 'Sequence') return (n.normalizers ?? []).some(lowercases);
  return false;
}

/** A special token named in tokenizer_config.json: a string, or an AddedToken object's content. */
function tokenFromConfig(config: Record<string, unknown>, key: string): string | null {
  const v = config[key];
  if (typeof v === 'string' && v) return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

const CHUNK_NORMALIZERS = new Set(['BertNormalizer', 'Lowercase', 'NFD', 'NFC', 'NFKD', 'NFKC', 'StripAccents', 'Strip']);
const CHUNK_PRE_TOKENIZERS = new Set(['BertPreTokenizer', 'Whitespace', 'WhitespaceSplit', 'Punctuation', 'Digits']);
const CHUNK_MODELS = new Set(['WordPiece', 'WordLevel']);

const stepsOf = (c: unknown, key: 'normalizers' | 'pretokenizers'): { type?: string }[] => {
  if (!c) return [];
  const step = c as { type?: string; normalizers?: unknown[]; pretokenizers?: unknown[] };
  return step.type === 'Sequence' ? ((step[key] ?? []) as unknown[]).flatMap((x) => stepsOf(x, key)) : [step];
};

/**
 * Whether a text's token count is the sum of its white-space separated chunks' counts: true for
 * BERT-style tokenizers, whose normalizer works character by character (white space stays a
 * separator) and whose pre-tokenizer splits at white space and drops it, before WordPiece (or
 * WordLevel) tokenizes each word alone. Not for byte-level BPE or SentencePiece (Metaspace), where
 * the space is part of the next token. Counting chunk by chunk lets a dataset check cache the
 * count of every distinct chunk: most words repeat, and a 100,000-row upload is counted in a
 * fraction of the time (bench/RESULTS.md, text upload).
 */
function separableByWhitespace(json: Record<string, unknown>): boolean {
  const model = (json.model as { type?: string } | undefined)?.type ?? '';
  const normalizers = stepsOf(json.normalizer, 'normalizers');
  const pre = stepsOf(json.pre_tokenizer, 'pretokenizers');
  return (
    CHUNK_MODELS.has(model) &&
    pre.length > 0 &&
    pre.every((p) => CHUNK_PRE_TOKENIZERS.has(p.type ?? '')) &&
    normalizers.every((n) => CHUNK_NORMALIZERS.has(n.type ?? '')) &&
    // Added tokens with white space inside (none in BERT vocabularies) would straddle chunks.
    ((json.added_tokens as { content?: string }[] | undefined) ?? []).every((t) => !/\s/.test(t.content ?? ''))
  );
}

/** Distinct chunks whose counts are kept (then the cache starts again): about 10-20 MB. */
const CHUNK_CACHE_SIZE = 100_000;

/** Where `body` sits inside `whole` (the template's prefix length), or -1. */
function offsetOf(whole: readonly number[], body: readonly number[]): number {
  for (let p = 0; p + body.length <= whole.length; p++) {
    if (body.every((v, i) => whole[p + i] === v)) return p;
  }
  return -1;
}

export async function loadTextTokenizer(dir: string): Promise<TextTokenizer> {
  const json = await readJson(join(dir, TOKENIZER_FILE), true);
  const config = await readJson(join(dir, TOKENIZER_CONFIG_FILE), false);
  return textTokenizerFrom(json!, config, dir);
}

/** The same from the files' parsed JSON (a model bundle read in memory); `dir` names where they came from in errors. */
export function textTokenizerFrom(json: Record<string, unknown>, config: Record<string, unknown> | null, dir: string): TextTokenizer {
  const model = json.model as { type?: string } | undefined;
  const kind = String(model?.type ?? '').toLowerCase();
  if (!KINDS.includes(kind)) throw new TokenizerError(`${TOKENIZER_FILE} in ${dir} has model type "${model?.type ?? '(none)'}"; expected one of WordPiece, BPE, Unigram, WordLevel`);
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json!, config ?? {});
  } catch (err) {
    throw new TokenizerError(`${TOKENIZER_FILE} in ${dir} cannot be read as a tokenizer: ${(err as Error).message}`);
  }
  const ids = (text: string) => tok.encode(text, { add_special_tokens: false }).ids;
  // The single-sequence template, from a probe: what encoding with special tokens adds around the tokens.
  const probe = 'a';
  const body = ids(probe);
  const whole = tok.encode(probe, { add_special_tokens: true }).ids;
  const at = offsetOf(whole, body);
  if (at < 0) throw new TokenizerError(`the tokenizer in ${dir} changes a text's tokens when it adds its special tokens; graft cannot truncate it`);
  const template = { prefix: whole.slice(0, at), suffix: whole.slice(at + body.length) };
  const specials = template.prefix.length + template.suffix.length;
  // As transformers does: tokenizer_config.json's pad_token, else its eos_token; else id 0.
  const padToken = tokenFromConfig(config ?? {}, 'pad_token') ?? tokenFromConfig(config ?? {}, 'eos_token');
  const padId = (padToken !== null ? tok.token_to_id(padToken) : undefined) ?? 0;
  const vocab = tok.get_vocab();
  const countsByChunk = separableByWhitespace(json!);
  const chunkCounts = new Map<string, number>();
  const countChunk = (chunk: string) => {
    const cached = chunkCounts.get(chunk);
    if (cached !== undefined) return cached;
    const n = ids(chunk).length;
    if (chunkCounts.size >= CHUNK_CACHE_SIZE) chunkCounts.clear();
    chunkCounts.set(chunk, n);
    return n;
  };
  const countTokens = countsByChunk
    ? (text: string) => {
        let n = specials;
        for (const chunk of text.split(/\s+/)) if (chunk) n += countChunk(chunk);
        return n;
      }
    : (text: string) => ids(text).length + specials;
  return {
    kind: kind as TokenizerKind,
    vocabSize: vocab.size,
    lowercase: lowercases(json.normalizer),
    files: config ? [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE] : [TOKENIZER_FILE],
    padId,
    template,
    tokenId: (token) => vocab.get(token),
    ids,
    countTokens,
    countsByChunk,
    encode(texts, maxLength, opts = {}) {
      if (maxLength <= specials) throw new RangeError(`maxLength ${maxLength} leaves no room for tokens besides the ${specials} special ones`);
      const rows = texts.map((t) => [...template.prefix, ...ids(t).slice(0, maxLength - specials), ...template.suffix]);
      const length = Math.max(1, opts.padTo ?? 0, ...rows.map((r) => r.length));
      const inputIds = new Int32Array(texts.length * length).fill(padId);
      const attentionMask = new Int32Array(texts.length * length);
      rows.forEach((r, i) => {
        inputIds.set(r, i * length);
        attentionMask.fill(1, i * length, i * length + r.length);
      });
      return { inputIds, attentionMask, length };
    },
  };
}

/** A BERT-style tokenizer ([PAD], [UNK], [CLS], [SEP], [MASK] in its vocabulary), as graft's encoder and its pretraining use it. */
export async function loadWordPieceTokenizer(dir: string): Promise<WordPieceTokenizer> {
  const tok = await loadTextTokenizer(dir);
  const id = (t: string) => {
    const v = tok.tokenId(t);
    if (v === undefined) throw new TokenizerError(`tokenizer in ${dir} has no ${t} token`);
    return v;
  };
  const specialIds = { pad: id('[PAD]'), unk: id('[UNK]'), cls: id('[CLS]'), sep: id('[SEP]'), mask: id('[MASK]') };
  return { ...tok, specialIds };
}

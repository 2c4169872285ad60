/**
 * Where token counts come from: the tokenizer of a text base. The check runs in a worker thread,
 * so it receives a plain description of the tokenizer (not an object) and opens it there.
 */
import type { TokenCounter } from './check.ts';

export interface TokenizerSpec {
  /** The text base (`bm_…`) whose tokenizer counts. */
  baseModel: string;
  /** Its maximum sequence length, in tokens. */
  maxLength: number;
  /** The folder holding its `tokenizer.json` (and `tokenizer_config.json`). */
  dir: string;
}

/**
 * Opens the tokenizer described by `spec` as a token counter.
 * Seam: the text-base tokenizer (`tasks/text/tokenizer.ts`, `countTokens`) plugs in here; until it
 * exists no text base can be named, so the API never asks for one.
 */
export async function openTokenCounter(spec: TokenizerSpec): Promise<TokenCounter> {
  throw new Error(`no tokenizer is available to count the tokens of ${spec.baseModel}`);
}

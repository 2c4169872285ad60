/**
 * Where token counts come from: the tokenizer of a text base. The check runs in a worker thread,
 * so it receives a plain description of the tokenizer (not an object) and opens it there.
 */
import { GraftError } from '@graft/contracts';
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
 * Whether `openTokenCounter` can count yet. Until the text-base tokenizer is wired in, uploads
 * that name no base answer `textStats.tokens: null`, and naming one answers `base_model_unusable`.
 */
export const TOKEN_COUNTING_AVAILABLE = false;

/**
 * Opens the tokenizer described by `spec` as a token counter.
 * Seam: the text-base tokenizer (`tasks/text/tokenizer.ts`, `countTokens`) plugs in here; until it
 * exists, naming a text base answers `base_model_unusable`.
 */
export async function openTokenCounter(spec: TokenizerSpec): Promise<TokenCounter> {
  throw new GraftError('base_model_unusable', `Token counts in the tokenizer of ${spec.baseModel} are not available yet.`, 'baseModel');
}

/**
 * Where token counts come from: the tokenizer of a text base (`tasks/text/tokenizer.ts`, the one
 * module every text base tokenizes with). The check runs in a worker thread, so it receives a plain
 * description of the tokenizer (not an object) and opens it there.
 */
import { GraftError } from '@graft/contracts';
import { loadTextTokenizer } from '../tokenizer.ts';
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
 * Whether `openTokenCounter` can count. When it can, uploads that name no base count in graft's
 * own text encoder's tokens (when the catalog has it).
 */
export const TOKEN_COUNTING_AVAILABLE = true;

/** Opens the tokenizer described by `spec` as a token counter; a folder without a usable tokenizer is `base_model_unusable`. */
export async function openTokenCounter(spec: TokenizerSpec): Promise<TokenCounter> {
  try {
    const tok = await loadTextTokenizer(spec.dir);
    return { baseModel: spec.baseModel, maxLength: spec.maxLength, countTokens: (text) => tok.countTokens(text) };
  } catch (err) {
    throw new GraftError('base_model_unusable', `The tokenizer of ${spec.baseModel} cannot be read: ${(err as Error).message.replaceAll(spec.dir, '.')}`, 'baseModel');
  }
}

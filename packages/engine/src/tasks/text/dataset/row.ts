/**
 * One record of a text dataset as the CSV and JSONL readers hand it over: valid (text + label) or
 * invalid with a code and a reason a person can act on. The rules every row obeys, whatever its
 * format, live here.
 */
import type { InvalidRowCode, TextDatasetLimits } from '@graft/contracts';
import { countCharacters } from './normalize.ts';

export type RawRow =
  | { line: number; ok: true; text: string; label: string; chars: number }
  | { line: number; ok: false; code: InvalidRowCode; reason: string };

export type TextLimits = TextDatasetLimits;

export const invalidRow = (line: number, code: InvalidRowCode, reason: string): RawRow => ({ line, ok: false, code, reason });

/**
 * The text is kept exactly as written (the tokenizer decides about whitespace); the label is
 * trimmed, so "pos" and " pos" are one class.
 */
export function checkRow(line: number, text: string | undefined, label: string | undefined, limits: TextLimits): RawRow {
  if (text === undefined) return invalidRow(line, 'missing_text', 'no text');
  if (text.trim() === '') return invalidRow(line, 'empty_text', 'the text is empty or blank');
  const chars = countCharacters(text);
  if (chars > limits.maxTextLength) {
    return invalidRow(line, 'text_too_long', `the text has ${chars} characters; the limit is ${limits.maxTextLength}`);
  }
  const l = label?.trim();
  if (!l) return invalidRow(line, 'missing_label', 'no label');
  const labelChars = countCharacters(l);
  if (labelChars > limits.maxLabelLength) {
    return invalidRow(line, 'label_too_long', `the label has ${labelChars} characters; the limit is ${limits.maxLabelLength}`);
  }
  return { line, ok: true, text, label: l, chars };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes UTF-8 strictly: undefined for bytes that are not valid UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

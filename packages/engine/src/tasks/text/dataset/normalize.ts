/**
 * What counts as "the same text" for duplicates and leakage: Unicode compatibility forms folded
 * (NFKC), lower case, runs of whitespace made one space, ends trimmed. "Great movie!" and
 * " great  MOVIE!" are the same text; anything else differing is not. A text's fingerprint is the
 * first 64 bits of the SHA-256 of its normalised UTF-8: collisions are negligible at the row limit
 * (about 3e-8 for a million distinct texts) and the texts themselves never need to be kept.
 */
import * as crypto from 'node:crypto';

/** Names the rule above; stored with fingerprints so that files made by another rule are never compared. */
export const NORMALIZATION = 'nfkc-lower-collapse-ws';

const NOT_ASCII = /[^\x00-\x7f]/;
const UNUSUAL_SPACE = /\s{2,}|[^\S ]/u;

export function normalizeText(text: string): string {
  // NFKC leaves ASCII as it is; a single plain space needs no collapsing: both tests are cheaper than the work.
  const folded = (NOT_ASCII.test(text) ? text.normalize('NFKC') : text).toLowerCase();
  return (UNUSUAL_SPACE.test(folded) ? folded.replace(/\s+/gu, ' ') : folded).trim();
}

// `crypto.hash` (one call, no Hash object) exists from Node 20.12; hex output is its fast path.
const sha256hex: (s: string) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (s) => (crypto as unknown as { hash(a: string, d: string, e: string): string }).hash('sha256', s, 'hex')
    : (s) => crypto.createHash('sha256').update(s).digest('hex');

/** The fingerprint of `text` as 16 hex digits (the first 8 bytes of the SHA-256 of its normalised UTF-8). */
export function fingerprintHex(text: string): string {
  return sha256hex(normalizeText(text)).slice(0, 16);
}

export function fingerprint(text: string): bigint {
  return BigInt(`0x${fingerprintHex(text)}`);
}

const SURROGATE = /[\ud800-\udfff]/;

/** Unicode code points in `text` (what graft calls characters; `.length` counts UTF-16 units). */
export function countCharacters(text: string): number {
  if (!SURROGATE.test(text)) return text.length; // the native scan is much faster than the loop below
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

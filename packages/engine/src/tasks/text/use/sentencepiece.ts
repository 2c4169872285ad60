/**
 * The Universal Sentence Encoder's tokenizer: a SentencePiece unigram vocabulary published for
 * TensorFlow.js as `vocab.json`, an array of `[piece, score]` (ids are positions; the first six are
 * reserved: unknown, control and user symbols). A text is NFKC-normalised, prefixed with `▁` and its
 * spaces turned into `▁`; the segmentation maximises the summed piece scores (Viterbi over every
 * piece that matches at each position); a character no piece covers is the unknown id 0, and
 * consecutive unknowns merge into one.
 *
 * This follows `@tensorflow-models/universal-sentence-encoder` 1.3's tokenizer (Apache-2.0), which
 * is what the published graphs are fed in JavaScript, with one deliberate difference: after an
 * unknown character the backward pass steps back one character (the package steps back by the
 * length of the unknown token's own text, skipping characters).
 */

export const RESERVED_SYMBOLS = 6;
const SEPARATOR = '\u2581';

export type Vocabulary = readonly (readonly [string, number])[];

export interface SentencePieceTokenizer {
  readonly vocabSize: number;
  encode(text: string): number[];
}

/** Checks the shape of a parsed vocab.json; throws with the reason. */
export function assertVocabulary(v: unknown): asserts v is Vocabulary {
  if (!Array.isArray(v) || v.length <= RESERVED_SYMBOLS) throw new Error(`vocab.json must be an array of more than ${RESERVED_SYMBOLS} [piece, score] pairs`);
  v.forEach((e, i) => {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number' || !Number.isFinite(e[1])) {
      throw new Error(`vocab.json entry ${i} is not a [piece, score] pair: ${JSON.stringify(e)?.slice(0, 80)}`);
    }
  });
}

export function sentencePieceTokenizer(vocab: Vocabulary): SentencePieceTokenizer {
  // piece (as code points joined) → [score, id]; the longest piece bounds the lattice search.
  const pieces = new Map<string, [number, number]>();
  let longest = 1;
  for (let id = RESERVED_SYMBOLS; id < vocab.length; id++) {
    const [piece, score] = vocab[id]!;
    if (!pieces.has(piece)) pieces.set(piece, [score, id]);
    longest = Math.max(longest, Array.from(piece).length);
  }
  return {
    vocabSize: vocab.length,
    encode(text) {
      const normalized = text.normalize('NFKC');
      if (normalized.length === 0) return [];
      const chars = Array.from(SEPARATOR + normalized.replace(/ /g, SEPARATOR));
      const n = chars.length;
      // best[e]: best score of a segmentation of chars[0, e); choice[e]: [start, id] of its last piece.
      const best = new Float64Array(n + 1);
      const set = new Uint8Array(n + 1);
      const choice: [number, number][] = new Array(n + 1);
      set[0] = 1;
      for (let start = 0; start < n; start++) {
        if (!set[start]) continue;
        let matched = false;
        let piece = '';
        for (let len = 1; len <= longest && start + len <= n; len++) {
          piece += chars[start + len - 1];
          const hit = pieces.get(piece);
          if (!hit) continue;
          matched = true;
          relax(start, start + len, hit[0], hit[1]);
        }
        // No piece starts here: the character is unknown (score 0, as in the package). When pieces do
        // start here, an unknown step of very low score still keeps every position reachable.
        relax(start, start + 1, matched ? -1e9 : 0, 0);
      }
      function relax(start: number, end: number, score: number, id: number) {
        const s = best[start]! + score;
        if (!set[end] || s >= best[end]!) {
          best[end] = s;
          set[end] = 1;
          choice[end] = [start, id];
        }
      }
      const ids: number[] = [];
      for (let end = n; end > 0; ) {
        const [start, id] = choice[end]!;
        ids.push(id);
        end = start;
      }
      ids.reverse();
      return ids.filter((id, i) => !(id === 0 && ids[i - 1] === 0));
    },
  };
}

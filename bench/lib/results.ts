/**
 * `bench/RESULTS.md` is part hand-written (each script's section names its command), part written
 * by `npm run bench`: a suite owns the text between `<!-- bench:<id> -->` and `<!-- /bench:<id> -->`
 * and replaces only that, so a run of one suite keeps every other figure. Raw figures go to
 * `bench/results/<id>.json`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const RESULTS_MD = join(BENCH_DIR, 'RESULTS.md');

export function writeSection(id: string, markdown: string, file = RESULTS_MD): void {
  const open = `<!-- bench:${id} -->`;
  const close = `<!-- /bench:${id} -->`;
  const block = `${open}\n${markdown.trim()}\n${close}`;
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    text = '# Benchmarks\n';
  }
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  text = start >= 0 && end > start ? text.slice(0, start) + block + text.slice(end + close.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
}

export function writeRaw(id: string, data: unknown): string {
  const dir = join(BENCH_DIR, 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${id}.json`);
  writeFileSync(path, `${JSON.stringify(data, null, 1)}\n`);
  return path;
}

export const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

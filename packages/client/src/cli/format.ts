/** Text output of the CLI: aligned tables, percentages, a one-line progress bar on a terminal. */
import type { WriteStream } from 'node:tty';

export function table(header: string[], rows: (string | number)[][], align: ('l' | 'r')[] = []): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r.map((c, i) => ((align[i] ?? 'l') === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(cells[0]!), line(widths.map((w) => '-'.repeat(w))), ...cells.slice(1).map(line)].join('\n');
}

export const pct = (v: number | null | undefined, digits = 1) => (v === null || v === undefined ? '-' : `${(v * 100).toFixed(digits)}%`);
export const fixed = (v: number | null | undefined, digits = 4) => (v === null || v === undefined ? '-' : v.toFixed(digits));

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** A bar redrawn in place on a terminal's stderr; nothing at all when stderr is not a terminal (logs, pipes). */
export class ProgressBar {
  private shown = false;
  constructor(private readonly out: WriteStream | NodeJS.WriteStream = process.stderr, private readonly enabled = !!(process.stderr as WriteStream).isTTY) {}

  update(fraction: number, text: string): void {
    if (!this.enabled) return;
    const width = 24;
    const f = Math.max(0, Math.min(1, fraction));
    const filled = Math.round(f * width);
    this.out.write(`\r\x1b[2K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(f * 100).toFixed(0).padStart(3)}% ${text}`);
    this.shown = true;
  }

  /** Clears the bar so that a normal line can be printed. */
  clear(): void {
    if (this.shown) this.out.write('\r\x1b[2K');
    this.shown = false;
  }
}

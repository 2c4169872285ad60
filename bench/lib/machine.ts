/** What a benchmark ran on, for RESULTS.md: CPU, cores, memory, load, Node and library versions. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';

const require = createRequire(import.meta.url);

export interface Machine {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  /** 1, 5 and 15 minute load averages when asked. */
  load: [number, number, number];
  flags: string;
}

export function machine(): Machine {
  let flags = '';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '';
    flags = ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16'].filter((f) => line.split(' ').includes(f)).join(' ');
  } catch {
    // not Linux
  }
  const [a, b, c] = loadavg();
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, load: [a!, b!, c!], flags };
}

export const fmtLoad = (l: readonly number[]) => l.map((x) => x.toFixed(2)).join(' / ');

/** Installed version of an npm package (as resolved from the engine). */
export function packageVersion(name: string): string {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'absent';
  }
}

/**
 * What checkpoints add to a head phase (frozen base): the same job with a checkpoint every epoch as
 * head checkpoints (graft's default while the base is frozen: the head plus a reference to the base,
 * written off the training path), as complete model zips (`headCheckpoints: false`, what every
 * checkpoint was before), and with checkpoints off. MobileNetV2 (bm_mobilenet_v2) on the bundled
 * sample, features cached by a warm-up job so every timed job trains on the same cached features.
 * Timed: from the head phase's first batch to the evaluation (every pending checkpoint written);
 * modes interleaved round by round, medians reported.
 *
 *   node --import tsx bench/checkpoints.ts [--rounds 3] [--epochs 20]   (or `npm run bench -- --only checkpoints`)
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { normalizeFineTune, type CreateFineTuneBody } from '@graft/contracts';
import { initBackend } from '../packages/engine/src/backend/backend.ts';
import { resolveCatalogBase } from '../packages/engine/src/bases/catalog.ts';
import type { CheckpointTiming } from '../packages/engine/src/export/checkpoints.ts';
import { fineTune } from '../packages/engine/src/pipeline/fine-tune.ts';
import { fmtLoad, machine } from './lib/machine.ts';
import { median } from './lib/results.ts';

const SAMPLE = fileURLToPath(new URL('../samples/digits-5-9.zip', import.meta.url));
const log = (msg: string) => console.error(`[bench:checkpoints] ${msg}`);
type Mode = 'off' | 'head' | 'full';

const MODES: readonly Mode[] = ['off', 'head', 'full'];

/** `--modes off,head` leaves complete zips out (they take most of a round). */
export function parseCheckpointArgs(argv: string[]): { rounds: number; epochs: number; modes: Mode[] } {
  const arg = (name: string, d: number) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? Number(argv[i + 1]) : d;
  };
  const i = argv.indexOf('--modes');
  const modes = i >= 0 ? MODES.filter((m) => m === 'off' || argv[i + 1]!.split(',').includes(m)) : [...MODES];
  return { rounds: arg('rounds', 3), epochs: arg('epochs', 20), modes };
}

export async function runCheckpoints(opts: { rounds: number; epochs: number; modes: Mode[] }): Promise<{ markdown: string; raw: unknown }> {
  const backend = await initBackend();
  const base = resolveCatalogBase('bm_mobilenet_v2')!;
  const dir = await mkdtemp(join(tmpdir(), 'graft-bench-ckpt-'));
  const cacheDir = join(dir, 'cache');
  const spec = (checkpointEvery: 'epoch' | number) =>
    normalizeFineTune({ baseModel: base.descriptor.id, dataset: 'ds_bench', hyperparameters: { epochs: opts.epochs, batchSize: 32 }, earlyStopping: false, checkpointEvery } as CreateFineTuneBody, base.descriptor, 7);
  const loadBefore = machine().load;
  try {
    log(`warm-up: features of the sample (${backend.name}; frozen base on ${process.env.GRAFT_FROZEN_RUNTIME ?? 'auto'})`);
    await fineTune({ base, datasetPath: SAMPLE, spec: spec(1_000_000_000), outDir: join(dir, 'warm'), cacheDir });
    const times: Record<Mode, number[]> = { off: [], head: [], full: [] };
    const spent: Record<'head' | 'full', Spent[]> = { head: [], full: [] };
    const sizes: Record<Mode, { files: number; bytes: number }> = { off: { files: 0, bytes: 0 }, head: { files: 0, bytes: 0 }, full: { files: 0, bytes: 0 } };
    for (let round = 1; round <= opts.rounds; round++) {
      for (const mode of opts.modes) {
        const outDir = join(dir, `${mode}-${round}`);
        let start = 0;
        let end = 0;
        const out = await fineTune({
          base,
          datasetPath: SAMPLE,
          spec: spec(mode === 'off' ? 1_000_000_000 : 'epoch'),
          outDir,
          cacheDir,
          headCheckpoints: mode !== 'full',
          hooks: {
            onBatch: (p) => { if (!start && p.phase === 'head') start = performance.now(); },
            onEvent: (e) => { if (e.type === 'evaluation' && !end) end = performance.now(); },
          },
        });
        times[mode].push((end - start) / 1000);
        if (mode !== 'off') spent[mode].push(sumTimings(out.checkpointTimings));
        const ck = join(outDir, 'checkpoints');
        const files = await readdir(ck).catch(() => [] as string[]);
        let bytes = 0;
        for (const f of files) bytes += (await stat(join(ck, f))).size;
        sizes[mode] = { files: files.length, bytes };
        await rm(outDir, { recursive: true, force: true });
        log(`round ${round}/${opts.rounds} ${mode}: head phase ${times[mode].at(-1)!.toFixed(2)} s, checkpoints ${files.length} files, ${(bytes / 1e6).toFixed(2)} MB`);
      }
    }
    const m = { off: median(times.off), head: median(times.head), full: median(times.full) };
    const added = (mode: Mode) => `${(((m[mode] - m.off) / m.off) * 100).toFixed(1)} %`;
    // Each round's own ratio to its off run (the rounds' load differs more than the modes' within one).
    const paired = (mode: Mode) => `${((median(times[mode].map((t, i) => t / times.off[i]!)) - 1) * 100).toFixed(1)} %`;
    const has = (mode: Mode) => opts.modes.includes(mode);
    const loadAfter = machine().load;
    const markdown = [
      `## Checkpoints in a head phase (\`npm run bench -- --only checkpoints\`)`,
      '',
      `MobileNetV2 (\`bm_mobilenet_v2\`) on the bundled sample (300 images, 240 training), head only, ${opts.epochs} epochs, batch 32, features cached by a warm-up job; ${backend.name} backend; a checkpoint every epoch. Time from the head phase's first batch to the evaluation (every checkpoint written and recorded), median of ${opts.rounds} rounds, modes interleaved. Load average ${fmtLoad(loadBefore)} before, ${fmtLoad(loadAfter)} after (a shared 2-core machine: absolute times are inflated; compare within the table). Target: checkpoints add < 5 % to the head phase.`,
      '',
      '| checkpoints | head phase, s (median) | added vs off (medians) | added vs off (median of each round\'s ratio) | files on disk | bytes on disk |',
      '|---|---|---|---|---|---|',
      `| off | ${m.off.toFixed(2)} | — | — | ${sizes.off.files} | ${sizes.off.bytes} |`,
      ...(has('head') ? [`| head + base reference (default while the base is frozen) | ${m.head.toFixed(2)} | ${added('head')} | ${paired('head')} | ${sizes.head.files} (incl. 1 template and ${sizes.head.files >> 1} resume files) | ${sizes.head.bytes} |`] : []),
      ...(has('full') ? [`| complete model zips (\`headCheckpoints: false\`) | ${m.full.toFixed(2)} | ${added('full')} | ${paired('full')} | ${sizes.full.files} (incl. ${sizes.full.files >> 1} resume files) | ${sizes.full.bytes} |`] : []),
      '',
      `Target (< 5 % added by checkpoints every epoch): head checkpoints ${(m.head - m.off) / m.off < 0.05 ? '**met**' : '**missed**'} (${added('head')} by the medians, ${paired('head')} by the rounds' ratios)${has('full') ? `; complete zips ${added('full')}` : ''}. On the training path a head checkpoint copies the head's weights and the resume state's tensors (the first also copies the complete bundle, the job's template, into memory); a thread writes them as stored zips and the resume file, and the next checkpoint (or the end of the phase) waits for the previous one to be written and reported. Time on the path that is not in the table below is the thread's and the report's work taking CPU from training (2 cores, shared).`,
      '',
      `Where a job's checkpoints spent their time (ms summed over the ${opts.epochs} checkpoints of a job, each column the median of ${opts.rounds} rounds, so they need not add up; \`CheckpointWriter.timings\`). On the training path the head phase waited for it; off the path it ran while the head trained on (or, for the last checkpoint, before the evaluation):`,
      '',
      '| checkpoints | on path: waiting for the previous | capturing the resume state | copying / writing | copying the template | on path, all | on path ÷ the head phase without checkpoints | off path: template | zip | resume file | report |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...(['head', 'full'] as const).filter(has).map((k) => {
        const c = medianSpent(spent[k]);
        return `| ${k} | ${c.waited} | ${c.resume} | ${c.copy} | ${c.templateCopy} | **${c.onPath}** | ${((Number(c.onPath) / (m.off * 1000)) * 100).toFixed(1)} % | ${c.template} | ${c.zip} | ${c.resumeFile} | ${c.report} |`;
      }),
      '',
      `Every round: ${opts.modes.map((k) => `${k} ${times[k].map((t) => t.toFixed(2)).join(' / ')} s`).join('; ')}.`,
    ].join('\n');
    return { markdown, raw: { opts, backend: backend.name, times, medians: m, sizes, spent, load: { before: loadBefore, after: loadAfter } } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Spent {
  waited: number;
  resume: number;
  copy: number;
  templateCopy: number;
  onPath: number;
  template: number;
  zip: number;
  resumeFile: number;
  report: number;
}

function sumTimings(timings: readonly CheckpointTiming[]): Spent {
  const sum = (f: (t: CheckpointTiming) => number) => timings.reduce((a, t) => a + f(t), 0);
  return {
    waited: sum((t) => t.onPath.waited),
    resume: sum((t) => t.onPath.resume),
    copy: sum((t) => t.onPath.copy),
    templateCopy: sum((t) => t.onPath.template),
    onPath: sum((t) => t.onPath.waited + t.onPath.resume + t.onPath.copy + t.onPath.template),
    template: sum((t) => t.offPath.template),
    zip: sum((t) => t.offPath.zip),
    resumeFile: sum((t) => t.offPath.resume),
    report: sum((t) => t.offPath.report),
  };
}

function medianSpent(rounds: readonly Spent[]): Record<keyof Spent, string> {
  const keys = Object.keys(rounds[0]!) as (keyof Spent)[];
  return Object.fromEntries(keys.map((k) => [k, median(rounds.map((r) => r[k])).toFixed(0)])) as Record<keyof Spent, string>;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await runCheckpoints(parseCheckpointArgs(process.argv.slice(2)));
  console.log(out.markdown);
}

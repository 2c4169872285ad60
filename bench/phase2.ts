/**
 * Phase 2 with the frozen part's activations computed once against recomputing them every batch
 * (GRAFT_PHASE2_CACHE=off, what phase 2 did before): a two-phase MobileNetV2 (bm_mobilenet_v2) job,
 * the top 6 layers with weights unfrozen, on MNIST digits 5–9 (generated, resized to 224 by the
 * base's preprocessing). Features are cached by a warm-up job, so both modes' head phases are alike.
 * Timed per phase-2 epoch (training + validation, as the job reports it), plus the one pass that
 * computes the activations (inside phase 2, before its first epoch) and the whole phase 2, from its
 * `phase` event to its last epoch. Modes interleaved round by round; medians.
 *
 *   node --import tsx bench/phase2.ts [--images 100] [--epochs 5] [--rounds 1]   (or `npm run bench -- --only phase2`)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeFineTune, type CreateFineTuneBody } from '@graft/contracts';
import { initBackend } from '../packages/engine/src/backend/backend.ts';
import { resolveCatalogBase } from '../packages/engine/src/bases/catalog.ts';
import { fineTune } from '../packages/engine/src/pipeline/fine-tune.ts';
import { makeDigitsZip } from '../packages/engine/test/fixtures.ts';
import { fmtLoad, machine } from './lib/machine.ts';
import { median } from './lib/results.ts';

const log = (msg: string) => console.error(`[bench:phase2] ${msg}`);
type Mode = 'cached' | 'recomputed';

export interface Phase2Args {
  images: number;
  epochs: number;
  rounds: number;
}

export function parsePhase2Args(argv: string[]): Phase2Args {
  const arg = (name: string, d: number) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? Number(argv[i + 1]) : d;
  };
  return { images: arg('images', 100), epochs: arg('epochs', 5), rounds: arg('rounds', 1) };
}

interface Measured {
  epochs: number[];
  /** The activation pass (cached mode), from the phase event's data. */
  passMs: number | null;
  phaseMs: number;
  runtime: string | null;
  location: string | null;
  bytes: number | null;
  frozenRuns: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
}

export async function runPhase2(opts: Phase2Args): Promise<{ markdown: string; raw: unknown }> {
  const backend = await initBackend();
  const base = resolveCatalogBase('bm_mobilenet_v2')!;
  const dir = await mkdtemp(join(tmpdir(), 'graft-bench-phase2-'));
  const cacheDir = join(dir, 'cache');
  const dataset = join(dir, 'digits.zip');
  await makeDigitsZip(dataset, { perClass: Math.ceil(opts.images / 5) });
  const body = (fineTuneEpochs: number) =>
    ({ baseModel: base.descriptor.id, dataset: 'ds_bench', hyperparameters: { epochs: 1, fineTuneEpochs, batchSize: 32 }, trainableLayers: 6, earlyStopping: false, checkpointEvery: 1_000_000_000 }) as CreateFineTuneBody;
  const loadBefore = machine().load;
  const saved = process.env.GRAFT_PHASE2_CACHE;
  try {
    log(`warm-up: features and decoded images (${backend.name}; frozen base on ${process.env.GRAFT_FROZEN_RUNTIME ?? 'auto'})`);
    await fineTune({ base, datasetPath: dataset, spec: normalizeFineTune(body(0), base.descriptor, 7), outDir: join(dir, 'warm'), cacheDir });
    const runs: Record<Mode, Measured[]> = { cached: [], recomputed: [] };
    for (let round = 1; round <= opts.rounds; round++) {
      for (const mode of ['cached', 'recomputed'] as const) {
        process.env.GRAFT_PHASE2_CACHE = mode === 'cached' ? 'on' : 'off';
        const m: Measured = { epochs: [], passMs: null, phaseMs: 0, runtime: null, location: null, bytes: null, frozenRuns: null, valLoss: null, valAccuracy: null };
        let phaseStart = 0;
        let phaseEnd = 0;
        const out = await fineTune({
          base,
          datasetPath: dataset,
          spec: normalizeFineTune(body(opts.epochs), base.descriptor, 7),
          outDir: join(dir, `${mode}-${round}`),
          cacheDir,
          hooks: {
            onEvent: (e) => {
              const d = e.data as Record<string, unknown> | undefined;
              if (e.type === 'phase' && d?.frozenActivations) {
                const f = d.frozenActivations as Record<string, unknown>;
                m.passMs = f.cached ? (f.ms as number) : null;
                m.runtime = f.cached ? (f.runtime as string) : null;
                m.location = f.cached ? (f.location as string) : null;
                m.bytes = f.cached ? (f.bytes as number) : null;
                // The pass ran before this event: phase 2 started that much earlier.
                phaseStart = performance.now() - (m.passMs ?? 0);
                log(`round ${round} ${mode}: ${e.message}`);
              }
              if (e.type === 'frozen_activations') m.frozenRuns = d!.frozenRuns as number;
            },
            onEpoch: (r) => {
              if (r.phase !== 'fine-tune') return;
              m.epochs.push(r.durationMs / 1000);
              phaseEnd = performance.now();
              log(`round ${round} ${mode}: fine-tune epoch ${r.epoch} ${(r.durationMs / 1000).toFixed(2)} s (val loss ${r.valLoss?.toFixed(4)})`);
            },
          },
        });
        m.phaseMs = phaseEnd - phaseStart;
        m.valLoss = out.result.valLoss;
        m.valAccuracy = out.result.valAccuracy;
        runs[mode].push(m);
        await rm(join(dir, `${mode}-${round}`), { recursive: true, force: true });
      }
    }
    const loadAfter = machine().load;
    const epochMedian = (mode: Mode) => median(runs[mode].flatMap((r) => r.epochs));
    const phaseMedian = (mode: Mode) => median(runs[mode].map((r) => r.phaseMs / 1000));
    const e = { cached: epochMedian('cached'), recomputed: epochMedian('recomputed') };
    const p = { cached: phaseMedian('cached'), recomputed: phaseMedian('recomputed') };
    const c = runs.cached[0]!;
    const r = runs.recomputed[0]!;
    const nTrainVal = opts.images;
    const markdown = [
      `## Phase 2 on activations computed once (\`npm run bench -- --only phase2\`)`,
      '',
      `MobileNetV2 (\`bm_mobilenet_v2\`), the top 6 layers with weights unfrozen (\`trainableLayers: 6\`), 1 head epoch then ${opts.epochs} fine-tune epochs, batch 32, ${nTrainVal} generated MNIST digits 5–9 (80 % training) resized to 224×224; features and decoded images cached by a warm-up job. ${backend.name} backend; frozen features on ${process.env.GRAFT_FROZEN_RUNTIME ?? 'auto'}. ${opts.rounds} round(s), modes interleaved; ${machine().cpu}, ${machine().cores} cores, Node ${process.version}. Load average ${fmtLoad(loadBefore)} before, ${fmtLoad(loadAfter)} after (a shared 2-core machine: absolute times are inflated; compare within the table).`,
      '',
      '| phase 2 | frozen part runs on | epoch, s (median) | one-time pass, s | whole phase 2, s | examples through the frozen part | final val loss / accuracy |',
      '|---|---|---|---|---|---|---|',
      `| activations computed once (default) | ${c.runtime ?? '—'} (${c.location ?? '—'}, ${c.bytes !== null ? `${(c.bytes / 2 ** 20).toFixed(1)} MiB` : '—'}) | ${e.cached.toFixed(2)} | ${c.passMs !== null ? (c.passMs / 1000).toFixed(2) : '—'} | ${p.cached.toFixed(2)} | ${c.frozenRuns ?? '—'} | ${c.valLoss?.toFixed(4)} / ${c.valAccuracy?.toFixed(3)} |`,
      `| recomputed every batch (\`GRAFT_PHASE2_CACHE=off\`, as before) | tfjs, every batch and validation | ${e.recomputed.toFixed(2)} | — | ${p.recomputed.toFixed(2)} | ${r.frozenRuns ?? '—'} | ${r.valLoss?.toFixed(4)} / ${r.valAccuracy?.toFixed(3)} |`,
      '',
      `Phase-2 epoch: **${(e.recomputed / e.cached).toFixed(1)}×** faster with the activations computed once; whole phase 2 (pass included): **${(p.recomputed / p.cached).toFixed(1)}×**. Every epoch: cached ${runs.cached.flatMap((x) => x.epochs).map((t) => t.toFixed(2)).join(' / ')} s; recomputed ${runs.recomputed.flatMap((x) => x.epochs).map((t) => t.toFixed(2)).join(' / ')} s.`,
      '',
      `The cached epoch is what remains: the unfrozen top's forward and backward pass on wasm (block_16's depthwise and projection convolutions and Conv_1 at 7×7, batch 32) and validation on the kept activations; the cache removes the frozen part's share, the difference between the rows.`,
    ].join('\n');
    return { markdown, raw: { opts, backend: backend.name, runs, medians: { epoch: e, phase: p }, load: { before: loadBefore, after: loadAfter } } };
  } finally {
    if (saved === undefined) delete process.env.GRAFT_PHASE2_CACHE;
    else process.env.GRAFT_PHASE2_CACHE = saved;
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await runPhase2(parsePhase2Args(process.argv.slice(2)));
  console.log(out.markdown);
}

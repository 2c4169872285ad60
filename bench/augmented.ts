/**
 * A head phase with augmentation, whose every batch runs through the frozen base: on ONNX Runtime
 * (the job's features run there, `GRAFT_FROZEN_RUNTIME=onnx`) against tfjs wasm (`tfjs`, what an
 * augmented head phase did before). MobileNetV2 (bm_mobilenet_v2) on generated MNIST digits 5–9,
 * resized to 224 by the base's preprocessing; decoded images cached by a warm-up job of each runtime
 * (so both time only the phase). Timed per head epoch (training + validation, as the job reports
 * it). Runtimes interleaved round by round; medians.
 *
 *   node --import tsx bench/augmented.ts [--images 100] [--epochs 2] [--rounds 1]   (or `npm run bench -- --only augmented`)
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

const log = (msg: string) => console.error(`[bench:augmented] ${msg}`);
const RUNTIMES = ['onnx', 'tfjs'] as const;
type Runtime = (typeof RUNTIMES)[number];

export interface AugmentedArgs {
  images: number;
  epochs: number;
  rounds: number;
}

export function parseAugmentedArgs(argv: string[]): AugmentedArgs {
  const arg = (name: string, d: number) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? Number(argv[i + 1]) : d;
  };
  return { images: arg('images', 100), epochs: arg('epochs', 2), rounds: arg('rounds', 1) };
}

interface Measured {
  epochs: number[];
  said: string | null;
  valLoss: number | null;
  valAccuracy: number | null;
}

export async function runAugmented(opts: AugmentedArgs): Promise<{ markdown: string; raw: unknown }> {
  const backend = await initBackend();
  const base = resolveCatalogBase('bm_mobilenet_v2')!;
  const dir = await mkdtemp(join(tmpdir(), 'graft-bench-augmented-'));
  const cacheDir = join(dir, 'cache');
  const dataset = join(dir, 'digits.zip');
  await makeDigitsZip(dataset, { perClass: Math.ceil(opts.images / 5) });
  const body = (epochs: number) =>
    ({
      baseModel: base.descriptor.id, dataset: 'ds_bench', hyperparameters: { epochs, batchSize: 32 }, earlyStopping: false, checkpointEvery: 1_000_000_000,
      augmentation: { flip: 'horizontal', rotation: 10, zoom: 0.1, brightness: 0.1, contrast: 0.1 },
    }) as CreateFineTuneBody;
  const saved = process.env.GRAFT_FROZEN_RUNTIME;
  const loadBefore = machine().load;
  try {
    for (const runtime of RUNTIMES) {
      process.env.GRAFT_FROZEN_RUNTIME = runtime;
      log(`warm-up (${runtime}): decoded images, validation features, the converted base`);
      await fineTune({ base, datasetPath: dataset, spec: normalizeFineTune(body(1), base.descriptor, 7), outDir: join(dir, `warm-${runtime}`), cacheDir });
    }
    const runs: Record<Runtime, Measured[]> = { onnx: [], tfjs: [] };
    for (let round = 1; round <= opts.rounds; round++) {
      for (const runtime of RUNTIMES) {
        process.env.GRAFT_FROZEN_RUNTIME = runtime;
        const m: Measured = { epochs: [], said: null, valLoss: null, valAccuracy: null };
        const out = await fineTune({
          base, datasetPath: dataset, spec: normalizeFineTune(body(opts.epochs), base.descriptor, 7), outDir: join(dir, `${runtime}-${round}`), cacheDir,
          hooks: {
            onEvent: (e) => {
              if (e.type === 'augmentation' && e.data?.frozenRuntime) m.said = e.message;
            },
            onEpoch: (r) => {
              m.epochs.push(r.durationMs / 1000);
              log(`round ${round} ${runtime}: head epoch ${r.epoch} ${(r.durationMs / 1000).toFixed(2)} s`);
            },
          },
        });
        m.valLoss = out.result.valLoss;
        m.valAccuracy = out.result.valAccuracy;
        runs[runtime].push(m);
        await rm(join(dir, `${runtime}-${round}`), { recursive: true, force: true });
      }
    }
    const loadAfter = machine().load;
    const epoch = { onnx: median(runs.onnx.flatMap((r) => r.epochs)), tfjs: median(runs.tfjs.flatMap((r) => r.epochs)) };
    const nTrain = Math.round(opts.images * 0.8);
    const row = (runtime: Runtime, label: string) => {
      const r = runs[runtime][0]!;
      return `| ${label} | ${epoch[runtime].toFixed(2)} | ${(nTrain / epoch[runtime]).toFixed(1)} | ${r.valLoss?.toFixed(4)} / ${r.valAccuracy?.toFixed(3)} |`;
    };
    const markdown = [
      '## Augmented head phase: the frozen base on every batch (`npm run bench -- --only augmented`)',
      '',
      `MobileNetV2 (\`bm_mobilenet_v2\`), base frozen, ${opts.epochs} head epochs with augmentation (flip, rotation, zoom, brightness, contrast), batch 32, ${opts.images} generated MNIST digits 5–9 (80 % training) resized to 224×224; decoded images and the validation features cached by a warm-up job of each runtime. ${backend.name} backend. ${opts.rounds} round(s), runtimes interleaved; ${machine().cpu}, ${machine().cores} cores, Node ${process.version}. Load average ${fmtLoad(loadBefore)} before, ${fmtLoad(loadAfter)} after (a shared 2-core machine: absolute times are inflated; compare within the table).`,
      '',
      '| augmented batches run the frozen base on | head epoch, s (median) | training images/s | final val loss / accuracy |',
      '|---|---|---|---|',
      row('onnx', 'ONNX Runtime (the default where features run there)'),
      row('tfjs', 'tfjs wasm (`GRAFT_FROZEN_RUNTIME=tfjs`, as before)'),
      '',
      `Head epoch with augmentation: **${(epoch.tfjs / epoch.onnx).toFixed(1)}×** faster on ONNX Runtime. The job said: "${runs.onnx[0]?.said ?? '—'}". Every epoch: ONNX Runtime ${runs.onnx.flatMap((x) => x.epochs).map((t) => t.toFixed(2)).join(' / ')} s; tfjs ${runs.tfjs.flatMap((x) => x.epochs).map((t) => t.toFixed(2)).join(' / ')} s.`,
    ].join('\n');
    return { markdown, raw: { opts, backend: backend.name, runs, medians: epoch, load: { before: loadBefore, after: loadAfter } } };
  } finally {
    if (saved === undefined) delete process.env.GRAFT_FROZEN_RUNTIME;
    else process.env.GRAFT_FROZEN_RUNTIME = saved;
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await runAugmented(parseAugmentedArgs(process.argv.slice(2)));
  console.log(out.markdown);
}

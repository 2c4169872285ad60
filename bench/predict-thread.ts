/**
 * The first prediction of an API prediction thread: the thread started from esbuild's bundle of its
 * sources (what the API does) against the sources loaded through tsx in the thread (what it did).
 * A small model (`bm_mnist_cnn` fine-tuned 2 epochs on the sample) is predicted on 8 of the sample's
 * images by a fresh one-thread `PredictPool` per round, modes interleaved, medians reported; the
 * bundling itself runs once per API process and is timed apart.
 *
 *   node --import tsx bench/predict-thread.ts [--rounds 5]   (or `npm run bench -- --only predict-thread`)
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { normalizeFineTune, type CreateFineTuneBody } from '@graft/contracts';
import { threadScript } from '@graft/engine/threads';
import { PredictPool } from '../apps/api/src/predict/pool.ts';
import { initBackend } from '../packages/engine/src/backend/backend.ts';
import { resolveCatalogBase } from '../packages/engine/src/bases/catalog.ts';
import { fineTune } from '../packages/engine/src/pipeline/fine-tune.ts';
import { openZip, readZipEntry, zipEntries } from '../packages/engine/src/util/zip.ts';
import { fmtLoad, machine } from './lib/machine.ts';
import { median } from './lib/results.ts';

const SAMPLE = fileURLToPath(new URL('../samples/digits-5-9.zip', import.meta.url));
const THREAD_ENTRY = new URL('../apps/api/src/predict/thread.ts', import.meta.url);
const log = (msg: string) => console.error(`[bench:predict-thread] ${msg}`);
type Mode = 'tsx' | 'bundled';
interface Sample { totalMs: number; startMs: number; loadMs: number; inferenceMs: number }

export function parsePredictThreadArgs(argv: string[]): { rounds: number } {
  const i = argv.indexOf('--rounds');
  return { rounds: i >= 0 ? Number(argv[i + 1]) : 5 };
}

export async function runPredictThread(opts: { rounds: number }): Promise<{ markdown: string; raw: unknown }> {
  const backend = await initBackend();
  const base = resolveCatalogBase('bm_mnist_cnn')!;
  const dir = await mkdtemp(join(tmpdir(), 'graft-bench-predict-'));
  try {
    const spec = normalizeFineTune({ baseModel: base.descriptor.id, dataset: 'ds_bench', hyperparameters: { epochs: 2, batchSize: 32 }, earlyStopping: false } as CreateFineTuneBody, base.descriptor, 7);
    const { modelZipPath } = await fineTune({ base, datasetPath: SAMPLE, spec, outDir: join(dir, 'job') });
    const bytes = (await stat(modelZipPath)).size;
    const inputs: Uint8Array[] = [];
    const zip = await openZip(SAMPLE);
    for await (const entry of zipEntries(zip)) if (/\.png$/i.test(entry.fileName) && inputs.push(await readZipEntry(zip, entry)) >= 8) break;
    zip.close();
    const loadBefore = machine().load;

    let t = performance.now();
    const script = await threadScript(THREAD_ENTRY);
    const bundleMs = performance.now() - t;
    if (script.kind !== 'js') throw new Error('esbuild did not bundle the prediction thread');
    log(`bundled in ${bundleMs.toFixed(0)} ms: ${script.url.pathname}`);

    const samples: Record<Mode, Sample[]> = { tsx: [], bundled: [] };
    for (let round = 1; round <= opts.rounds; round++) {
      for (const mode of (round % 2 ? ['tsx', 'bundled'] : ['bundled', 'tsx']) as Mode[]) {
        const pool = new PredictPool({ threads: 1, maxCacheBytes: 512 * 2 ** 20, timeoutMs: 300_000, bundle: mode === 'bundled' });
        t = performance.now();
        const out = await pool.predict({ key: `bench/${mode}/${round}`, path: modelZipPath, bytes, inputs });
        const totalMs = performance.now() - t;
        await pool.close();
        if (out.predictions.length !== inputs.length) throw new Error('a prediction is missing');
        samples[mode].push({ totalMs, startMs: out.queuedMs, loadMs: out.loadMs, inferenceMs: out.inferenceMs });
        log(`round ${round}/${opts.rounds} ${mode}: first prediction ${totalMs.toFixed(0)} ms (thread start ${out.queuedMs.toFixed(0)}, model load ${out.loadMs.toFixed(0)}, inference ${out.inferenceMs.toFixed(0)})`);
      }
    }
    const loadAfter = machine().load;
    const med = (mode: Mode, k: keyof Sample) => median(samples[mode].map((s) => s[k]));
    const row = (mode: Mode, label: string) => `| ${label} | ${(med(mode, 'totalMs') / 1000).toFixed(2)} | ${(med(mode, 'startMs') / 1000).toFixed(2)} | ${(med(mode, 'loadMs') / 1000).toFixed(2)} | ${(med(mode, 'inferenceMs') / 1000).toFixed(2)} |`;
    const markdown = [
      '## Prediction threads: the first prediction (`npm run bench -- --only predict-thread`)',
      '',
      `A fresh one-thread \`PredictPool\` (the API's) per round answers its first request: 8 sample images on \`bm_mnist_cnn\` fine-tuned 2 epochs (model zip ${bytes} bytes); ${backend.name} backend in the threads' parent. Medians of ${opts.rounds} rounds, modes interleaved. Load average ${fmtLoad(loadBefore)} before, ${fmtLoad(loadAfter)} after (a shared 2-core machine: compare within the table).`,
      '',
      '| thread code | first prediction, s | thread start | model load | inference |',
      '|---|---|---|---|---|',
      row('tsx', 'sources through tsx in the thread (before)'),
      row('bundled', 'esbuild bundle of the sources (now)'),
      '',
      `The bundle is built once per API process: ${(bundleMs / 1000).toFixed(2)} s here, before the first request joins a queue. Every round: ${(['tsx', 'bundled'] as const).map((k) => `${k} ${samples[k].map((s) => (s.totalMs / 1000).toFixed(2)).join(' / ')} s`).join('; ')}.`,
    ].join('\n');
    return { markdown, raw: { opts, backend: backend.name, bundleMs, samples, load: { before: loadBefore, after: loadAfter } } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await runPredictThread(parsePredictThreadArgs(process.argv.slice(2)));
  console.log(out.markdown);
}

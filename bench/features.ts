/**
 * Feature extraction, images/s at batch 32: graft's path (the base converted to ONNX, ONNX Runtime on
 * N threads) against tfjs wasm (graft's tfjs path: the batch in chunks of featureBatchSize, one
 * thread) and PyTorch on the same architecture with random weights (N threads; eager, and frozen +
 * optimize_for_inference), with a GEMM micro-benchmark for the machine's matrix-multiply peak and each
 * model's FLOPs. Engines are interleaved round by round, so load on a shared machine weighs on all of
 * them alike; every figure is the median over rounds and every ratio is between figures of this run.
 *
 *   node --import tsx bench/features.ts [--rounds 3] [--threads 2] [--batch 32] [--models mobilenet_v2,inception_v3] [--no-torch] [--no-install]
 *   (or `npm run bench -- --only features …`)
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { isImageBase, type Preprocessing } from '@graft/contracts';
import { initBackend } from '../packages/engine/src/backend/backend.ts';
import { resolveCatalogBase } from '../packages/engine/src/bases/catalog.ts';
import { featureBatchSize } from '../packages/engine/src/tasks/image/preprocess.ts';
import { cutBase } from '../packages/engine/src/train/freezing.ts';
import { openBase } from '../packages/engine/src/bases/open-base.ts';
import { onnxRuntimeVersion } from '../packages/engine/src/onnx/runtime.ts';
import { prepareOnnxBase } from '../packages/engine/src/onnx/prepare.ts';
import { randomInputs } from '../packages/engine/src/onnx/verify.ts';
import { ortGemm } from './lib/gemm.ts';
import { fmtLoad, machine, packageVersion } from './lib/machine.ts';
import { findTorchPython } from './lib/python.ts';
import { median } from './lib/results.ts';

const MODELS = {
  mobilenet_v2: { base: 'bm_mobilenet_v2', label: 'MobileNetV2 1.0 @224 (to out_relu, pooled)' },
  inception_v3: { base: 'bm_inception_v3', label: 'InceptionV3 @299 (to mixed10, pooled)' },
} as const;
type ModelName = keyof typeof MODELS;

export interface FeaturesOptions {
  rounds: number;
  threads: number;
  batch: number;
  models: ModelName[];
  torch: boolean;
  install: boolean;
  gemmSize: number;
}

export const DEFAULTS: FeaturesOptions = { rounds: 3, threads: 2, batch: 32, models: ['mobilenet_v2', 'inception_v3'], torch: true, install: true, gemmSize: 2048 };

const log = (msg: string) => console.error(`[bench:features] ${msg}`);

/** The Python reference as a line-protocol server (bench/torch_features.py). */
async function startTorch(python: string, opts: FeaturesOptions) {
  const script = fileURLToPath(new URL('./torch_features.py', import.meta.url));
  const child = spawn(python, [script, '--threads', String(opts.threads), '--batch', String(opts.batch), '--models', opts.models.join(',')], { stdio: ['pipe', 'pipe', 'inherit'] });
  // A bench interrupted mid-run must not leave the reference computing.
  process.once('exit', () => child.kill());
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error('the PyTorch reference exited');
    return JSON.parse(value as string) as Record<string, unknown>;
  };
  const ready = (await next()).ready as { torch: string; threads: number; models: Record<string, { flopsPerImage: number; outputShape: number[] }> };
  const ask = async (cmd: object) => {
    child.stdin.write(`${JSON.stringify(cmd)}\n`);
    return next();
  };
  return {
    ready,
    run: async (model: string, mode: 'eager' | 'optimized') => (await ask({ cmd: 'run', model, mode })).seconds as number,
    gemm: async (n: number) => (await ask({ cmd: 'gemm', n })).seconds as number,
    close: () => { child.stdin.write(`${JSON.stringify({ cmd: 'quit' })}\n`); child.stdin.end(); },
  };
}

interface PerModel {
  flops: number;
  relError: number;
  converted: { ms: number; bytes: number; ops: Record<string, number> };
  times: { graft: number[]; tfjs: number[]; torchEager: number[]; torchOptimized: number[] };
  torchFlops: number | null;
}

export interface FeatureRow {
  name: ModelName;
  label: string;
  flopsPerImage: number;
  torchFlopsPerImage: number | null;
  relError: number;
  converted: { ms: number; bytes: number; ops: Record<string, number> };
  imagesPerSecond: { graft: number; tfjsWasm: number; torchEager: number | null; torchOptimized: number | null };
  ratios: { graftOverTfjs: number; graftOverTorchEager: number | null; graftOverTorchOptimized: number | null };
  graftGflops: number;
  shareOfPeak: number;
  times: PerModel['times'];
}

export interface FeaturesRaw {
  date: string;
  command: string;
  machine: ReturnType<typeof machine> & { loadBefore: number[]; loadAfter: number[] };
  versions: { tfjs: string; tfjsBackend: string; onnxruntime: string; torch: string | null };
  options: FeaturesOptions;
  gemm: { n: number; gflops: { ort: number; torch: number | null }; peakGflops: number; times: { ort: number[]; torch: number[] } };
  torchMissing: string | null;
  models: FeatureRow[];
}

export async function runFeatures(opts: FeaturesOptions = DEFAULTS): Promise<{ raw: FeaturesRaw; markdown: string }> {
  const before = machine();
  const backend = await initBackend();
  log(`${before.cpu}, ${before.cores} cores, load ${fmtLoad(before.load)}; tfjs ${backend.name}`);
  let torch: Awaited<ReturnType<typeof startTorch>> | null = null;
  let torchMissing: string | null = null;
  if (opts.torch) {
    const found = findTorchPython({ install: opts.install });
    if ('python' in found) {
      log(`PyTorch reference: ${found.python}`);
      torch = await startTorch(found.python, opts);
    } else torchMissing = found.missing;
  } else torchMissing = 'skipped (--no-torch)';

  const models = new Map<ModelName, PerModel & { run: () => Promise<number>; runTfjs: () => number; dispose: () => Promise<void> }>();
  for (const name of opts.models) {
    const base = resolveCatalogBase(MODELS[name].base)!;
    if (!isImageBase(base.descriptor)) throw new Error(`${base.descriptor.id} is not an image base`);
    const pre: Preprocessing = base.descriptor.preprocessing;
    const opened = await openBase(base);
    const cut = cutBase(opened.layers!, base.descriptor.featureLayer);
    const onnx = await prepareOnnxBase(cut, { cacheDir: null, pooling: 'avg', preprocessing: pre, threads: opts.threads });
    if (!onnx.ok) throw new Error(`${name}: the ONNX path is not available: ${onnx.reason}`);
    const shape = onnx.record.inputShape;
    const x = randomInputs(opts.batch, shape, pre, 1);
    const xt = tf.tensor4d(x, [opts.batch, shape[0]!, shape[1]!, shape[2]!]);
    const chunk = featureBatchSize(pre);
    const runTfjs = () => {
      // graft's tfjs feature pass: inference-mode chunks of featureBatchSize images, pooled.
      const t = performance.now();
      for (let s = 0; s < opts.batch; s += chunk) {
        const y = tf.tidy(() => (cut.apply(xt.slice(s, Math.min(chunk, opts.batch - s)), { training: false }) as tf.Tensor).mean([1, 2]));
        y.dataSync();
        y.dispose();
      }
      return (performance.now() - t) / 1000;
    };
    const run = async () => {
      const t = performance.now();
      await onnx.runner.run(x, opts.batch);
      return (performance.now() - t) / 1000;
    };
    log(`${name}: converted in ${onnx.record.convertMs} ms, relative error ${onnx.record.equivalence.relError.toExponential(2)}; warming up`);
    await run();
    tf.tidy(() => (cut.apply(xt.slice(0, 1), { training: false }) as tf.Tensor).dataSync());
    models.set(name, {
      flops: onnx.record.flopsPerImage!,
      relError: onnx.record.equivalence.relError,
      converted: { ms: onnx.record.convertMs, bytes: onnx.record.bytes, ops: onnx.record.ops },
      times: { graft: [], tfjs: [], torchEager: [], torchOptimized: [] },
      torchFlops: torch?.ready.models[name]?.flopsPerImage ?? null,
      run,
      runTfjs,
      dispose: async () => { await onnx.runner.release(); xt.dispose(); opened.dispose(); },
    });
  }
  const gemm = await ortGemm(opts.gemmSize, opts.threads);
  const gemmTimes = { ort: [] as number[], torch: [] as number[] };

  for (let r = 1; r <= opts.rounds; r++) {
    for (const [name, m] of models) {
      m.times.graft.push(await m.run());
      if (torch) {
        m.times.torchEager.push(await torch.run(name, 'eager'));
        m.times.torchOptimized.push(await torch.run(name, 'optimized'));
      }
      m.times.tfjs.push(m.runTfjs());
      log(`round ${r}/${opts.rounds} ${name}: graft ${m.times.graft.at(-1)!.toFixed(2)} s, tfjs ${m.times.tfjs.at(-1)!.toFixed(2)} s${torch ? `, torch ${m.times.torchEager.at(-1)!.toFixed(2)} / ${m.times.torchOptimized.at(-1)!.toFixed(2)} s` : ''} per batch`);
    }
    for (let k = 0; k < 3; k++) {
      gemmTimes.ort.push(await gemm.run());
      if (torch) gemmTimes.torch.push(await torch.gemm(opts.gemmSize));
    }
  }
  torch?.close();
  await gemm.release();
  const after = machine();

  const gflops = (flops: number, seconds: number) => flops / seconds / 1e9;
  const peak = {
    ort: gflops(gemm.flops, median(gemmTimes.ort)),
    torch: gemmTimes.torch.length ? gflops(gemm.flops, median(gemmTimes.torch)) : null,
  };
  const peakGflops = Math.max(peak.ort, peak.torch ?? 0);
  const rows = [...models].map(([name, m]): FeatureRow => {
    const ips = (ts: number[]) => (ts.length ? opts.batch / median(ts) : null);
    const graft = ips(m.times.graft)!;
    const tfjsIps = ips(m.times.tfjs)!;
    const eager = ips(m.times.torchEager);
    const optimized = ips(m.times.torchOptimized);
    const rate = (graft * m.flops) / 1e9;
    return {
      name,
      label: MODELS[name].label,
      flopsPerImage: m.flops,
      torchFlopsPerImage: m.torchFlops,
      relError: m.relError,
      converted: m.converted,
      imagesPerSecond: { graft, tfjsWasm: tfjsIps, torchEager: eager, torchOptimized: optimized },
      ratios: { graftOverTfjs: graft / tfjsIps, graftOverTorchEager: eager ? graft / eager : null, graftOverTorchOptimized: optimized ? graft / optimized : null },
      graftGflops: rate,
      shareOfPeak: rate / peakGflops,
      times: m.times,
    };
  });
  for (const m of models.values()) await m.dispose();

  const raw: FeaturesRaw = {
    date: new Date().toISOString(),
    command: commandLine(opts),
    machine: { ...before, loadBefore: before.load, loadAfter: after.load },
    versions: { tfjs: packageVersion('@tensorflow/tfjs'), tfjsBackend: backend.name, onnxruntime: onnxRuntimeVersion(), torch: torch?.ready.torch ?? null },
    options: opts,
    gemm: { n: opts.gemmSize, gflops: peak, peakGflops, times: gemmTimes },
    torchMissing,
    models: rows,
  };
  return { raw, markdown: markdown(raw) };
}

function commandLine(opts: FeaturesOptions): string {
  const args = ['npm run bench -- --only features'];
  if (opts.rounds !== DEFAULTS.rounds) args.push(`--rounds ${opts.rounds}`);
  if (opts.threads !== DEFAULTS.threads) args.push(`--threads ${opts.threads}`);
  if (opts.batch !== DEFAULTS.batch) args.push(`--batch ${opts.batch}`);
  if (opts.models.join() !== DEFAULTS.models.join()) args.push(`--models ${opts.models.join(',')}`);
  return args.join(' ');
}

const f1 = (x: number | null) => (x == null ? '—' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const ratio = (x: number | null) => (x == null ? '—' : `${x.toFixed(2)}×`);
const verdict = (ok: boolean) => (ok ? '**met**' : '**missed**');

function markdown(raw: FeaturesRaw): string {
  const { machine: m, versions: v, options: o } = raw;
  const lines = [
    `## Feature extraction: graft's ONNX Runtime path vs tfjs wasm vs PyTorch (\`bench/features.ts\`)`,
    '',
    '```',
    raw.command,
    '```',
    '',
    `${raw.date.slice(0, 16).replace('T', ' ')} UTC. ${m.cpu}, ${m.cores} cores (${m.flags}), ${m.memGiB} GiB, Node ${m.node}. Load average (1/5/15 min) ` +
      `${fmtLoad(m.loadBefore)} before, ${fmtLoad(m.loadAfter)} after (a shared machine: other processes ran too; engines are interleaved round by round so they share it alike). ` +
      `tfjs ${v.tfjs} ${v.tfjsBackend} (SIMD, 1 thread, graft's chunked feature pass); onnxruntime-node ${v.onnxruntime}, ${o.threads} threads; ` +
      `PyTorch ${v.torch ?? `not run: ${raw.torchMissing}`}${v.torch ? `, ${o.threads} threads, random weights, architecture defined in \`bench/torch_features.py\`` : ''}. ` +
      `Batch ${o.batch}; ${o.rounds} round${o.rounds > 1 ? 's' : ''}; each figure the median over rounds.`,
    '',
    '| model | FLOPs / image | graft (ONNX Runtime) | tfjs wasm | PyTorch eager | PyTorch frozen+optimised | graft ÷ tfjs | graft ÷ PyTorch eager | graft ÷ PyTorch optimised |',
    '|---|---|---|---|---|---|---|---|---|',
    ...raw.models.map((r) =>
      `| ${r.label} | ${(r.flopsPerImage / 1e9).toFixed(2)} G${r.torchFlopsPerImage != null ? (r.torchFlopsPerImage === r.flopsPerImage ? ' (PyTorch: same)' : ` (PyTorch: ${(r.torchFlopsPerImage / 1e9).toFixed(2)} G)`) : ''} | ` +
      `**${f1(r.imagesPerSecond.graft)} img/s** | ${f1(r.imagesPerSecond.tfjsWasm)} img/s | ${f1(r.imagesPerSecond.torchEager)} img/s | ${f1(r.imagesPerSecond.torchOptimized)} img/s | ` +
      `${ratio(r.ratios.graftOverTfjs)} | ${ratio(r.ratios.graftOverTorchEager)} | ${ratio(r.ratios.graftOverTorchOptimized)} |`),
    '',
    `Matrix-multiply peak (float32 GEMM ${raw.gemm.n}×${raw.gemm.n}, ${o.threads} threads, median): ONNX Runtime ${f1(raw.gemm.gflops.ort)} GFLOP/s` +
      `${raw.gemm.gflops.torch != null ? `, PyTorch ${f1(raw.gemm.gflops.torch)} GFLOP/s` : ''}; peak = **${f1(raw.gemm.peakGflops)} GFLOP/s**. ` +
      'FLOPs = 2 × multiply-adds of the convolutions (counted by the converter and, independently, by hooks in the PyTorch script).',
    '',
    '| model | graft GFLOP/s | share of the GEMM peak (target ≥ 60 %) | graft ÷ PyTorch eager (target ≥ 5×) | converted: relative error vs tfjs, time, size |',
    '|---|---|---|---|---|',
    ...raw.models.map((r) =>
      `| ${r.name} | ${f1(r.graftGflops)} | ${(100 * r.shareOfPeak).toFixed(0)} % ${verdict(r.shareOfPeak >= 0.6)} | ` +
      `${r.ratios.graftOverTorchEager != null ? `${ratio(r.ratios.graftOverTorchEager)} ${verdict(r.ratios.graftOverTorchEager >= 5)}` : 'not measured'} | ` +
      `${r.relError.toExponential(1)}, ${(r.converted.ms / 1000).toFixed(1)} s, ${(r.converted.bytes / 2 ** 20).toFixed(1)} MiB |`),
  ];
  return lines.join('\n');
}

export function parseFeatureArgs(argv: string[]): FeaturesOptions {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (flag: string, d: number) => {
    const v = get(flag);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer`);
    return n;
  };
  const models = (get('--models') ?? DEFAULTS.models.join(',')).split(',') as ModelName[];
  for (const m of models) if (!(m in MODELS)) throw new Error(`--models: unknown "${m}" (${Object.keys(MODELS).join(', ')})`);
  return {
    rounds: num('--rounds', DEFAULTS.rounds),
    threads: num('--threads', DEFAULTS.threads),
    batch: num('--batch', DEFAULTS.batch),
    models,
    torch: !argv.includes('--no-torch'),
    install: !argv.includes('--no-install'),
    gemmSize: num('--gemm', DEFAULTS.gemmSize),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { markdown: md } = await runFeatures(parseFeatureArgs(process.argv.slice(2)));
  console.log(md);
}

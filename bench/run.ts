/**
 * `npm run bench`: runs graft's benchmark suites and writes their figures into bench/RESULTS.md
 * (each suite its own marked section; raw figures in bench/results/<suite>.json).
 *
 *   npm run bench                              every suite
 *   npm run bench -- --only features           some suites (comma-separated)
 *   npm run bench -- --scripts                 also every other bench/*.ts script, its output recorded as is
 *   suite options pass through, e.g. --rounds 5 --threads 2 --no-torch
 *
 * Not part of `npm test`: it takes minutes (tfjs wasm on InceptionV3 alone is about a minute per batch
 * of 32), and its figures mean something only on a quiet machine (the load average is recorded).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseApiArgs, runApi } from './api.ts';
import { parseCheckpointArgs, runCheckpoints } from './checkpoints.ts';
import { parseAugmentedArgs, runAugmented } from './augmented.ts';
import { parseFeatureArgs, runFeatures } from './features.ts';
import { parseJobArgs, runJob } from './job.ts';
import { parsePredictThreadArgs, runPredictThread } from './predict-thread.ts';
import { parsePhase2Args, runPhase2 } from './phase2.ts';
import { parsePredictArgs, runPredict } from './predict.ts';
import { parseUploadArgs, runUpload } from './upload.ts';
import { runTextFeaturesOnnx } from './text-features-onnx.ts';
import { fmtLoad, machine } from './lib/machine.ts';
import { BENCH_DIR, RESULTS_MD, writeRaw, writeSection } from './lib/results.ts';

interface Suite {
  /** What it measures, for --help. */
  about: string;
  run(argv: string[]): Promise<{ markdown: string; raw: unknown }>;
}

export const SUITES: Record<string, Suite> = {
  features: {
    about: 'feature extraction images/s: ONNX Runtime vs tfjs wasm vs PyTorch, GEMM peak, FLOPs',
    run: (argv) => runFeatures(parseFeatureArgs(argv)),
  },
  checkpoints: {
    about: 'a head phase with a checkpoint every epoch (head checkpoints, complete zips) against none (MobileNetV2, the sample)',
    run: (argv) => runCheckpoints(parseCheckpointArgs(argv)),
  },
  augmented: {
    about: 'a MobileNetV2 head phase with augmentation (the frozen base on every batch): on ONNX Runtime vs tfjs wasm',
    run: (argv) => runAugmented(parseAugmentedArgs(argv)),
  },
  api: {
    about: 'API hot path (autocannon): /healthz, GET and POST /v1/fine-tunes req/s and p50/p99, idle and while a job trains (--duration, --no-training, --profile <name>)',
    run: (argv) => runApi(parseApiArgs(argv)),
  },
  job: {
    about: 'a standard job end to end through the API and a worker: 1,000 images, 5 classes, MobileNetV2, 10 frozen epochs; time by stage',
    run: (argv) => runJob(parseJobArgs(argv)),
  },
  'predict-thread': {
    about: "an API prediction thread's first prediction: bundled thread code against the sources through tsx (bm_mnist_cnn, the sample)",
    run: (argv) => runPredictThread(parsePredictThreadArgs(argv)),
  },
  phase2: {
    about: 'a two-phase MobileNetV2 job (top 6 layers unfrozen): phase-2 epochs on activations computed once vs recomputing the frozen part',
    run: (argv) => runPhase2(parsePhase2Args(argv)),
  },
  predict: {
    about: 'warm POST /v1/fine-tunes/:id/predict p50/p99, 1 image and 32, sequential and concurrent (mnist_cnn and a MobileNetV2 head, trained first)',
    run: (argv) => runPredict(parsePredictArgs(argv)),
  },
  upload: {
    about: 'a 1 GB image dataset zip to POST /v1/datasets: MB/s and the API process\'s peak RSS growth (target < 64 MB)',
    run: (argv) => runUpload(parseUploadArgs(argv)),
  },
  'text-features-onnx': {
    about: 'ONNX text encoder feature pass sentences/s and peak RSS (tiny BERT fixture; --dir for another encoder)',
    run: (argv) => runTextFeaturesOnnx(argv),
  },
};

/** Modules under bench/ that are suites or helpers, not stand-alone scripts. */
const NOT_SCRIPTS = new Set(['run.ts', 'api.ts', 'features.ts', 'text-features-onnx.ts', 'checkpoints.ts', 'job.ts', 'predict-thread.ts', 'phase2.ts', 'predict.ts', 'upload.ts', 'augmented.ts']);

const argv = process.argv.slice(2);
if (argv.includes('--help')) {
  console.log(`npm run bench [-- --only <suite,…>] [--scripts]\nsuites:\n${Object.entries(SUITES).map(([k, s]) => `  ${k}: ${s.about}`).join('\n')}`);
  process.exit(0);
}
const onlyAt = argv.indexOf('--only');
const only = onlyAt >= 0 ? argv[onlyAt + 1]!.split(',') : Object.keys(SUITES);
for (const name of only) if (!SUITES[name]) throw new Error(`unknown suite "${name}" (${Object.keys(SUITES).join(', ')})`);

for (const name of only) {
  const t = performance.now();
  console.error(`[bench] ${name}: ${SUITES[name]!.about}`);
  const { markdown, raw } = await SUITES[name]!.run(argv);
  writeSection(name, markdown);
  const rawPath = writeRaw(name, raw);
  console.log(markdown);
  console.error(`[bench] ${name} done in ${((performance.now() - t) / 1000).toFixed(0)} s → ${RESULTS_MD}, ${rawPath}`);
}

if (argv.includes('--scripts')) {
  for (const file of readdirSync(BENCH_DIR).filter((f) => f.endsWith('.ts') && !NOT_SCRIPTS.has(f)).sort()) {
    const before = machine();
    const t = performance.now();
    console.error(`[bench] script ${file}`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(BENCH_DIR, file)], { cwd: join(BENCH_DIR, '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const seconds = ((performance.now() - t) / 1000).toFixed(0);
    const status = r.status === 0 ? 'exit 0' : `**exit ${r.status}**`;
    writeSection(`script:${file}`, [
      `### Last \`npm run bench -- --scripts\` output of \`bench/${file}\``,
      '',
      `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${seconds} s, ${status}, load average ${fmtLoad(before.load)} before. Command: \`node --import tsx bench/${file}\`.`,
      '',
      '```',
      (r.stdout ?? '').trim(),
      '```',
    ].join('\n'));
  }
}

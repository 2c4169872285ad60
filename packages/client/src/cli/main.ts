/**
 * `graft`: the command line on `@graft/client`. Every command takes `--json` (the API's answer on
 * stdout, nothing else there) and answers with an exit code that says what happened (EXIT below).
 * `GRAFT_URL` and `GRAFT_API_KEY` come from the environment (or `--url`, `--api-key`).
 */
import { openAsBlob } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { Graft } from '../client.ts';
import { GraftApiError, GraftConnectionError } from '../errors.ts';
import type { CreateFineTuneBody, Dataset, FineTune, PredictionList } from '../types.ts';
import { bytes, fixed, pct, ProgressBar, table } from './format.ts';
import { unzip, zipStored } from './zip.ts';

/** Exit codes: scripts can tell a refused request from an unreachable server from a failed job. */
export const EXIT = {
  ok: 0,
  /** Anything unexpected. */
  error: 1,
  /** Bad command line. */
  usage: 2,
  /** The API refused the request (4xx/5xx); stderr has its code and message. */
  api: 3,
  /** The API could not be reached. */
  connection: 4,
  /** The followed job failed. */
  jobFailed: 5,
  /** The followed job was cancelled. */
  jobCancelled: 6,
  /** Interrupted (Ctrl-C) while following: the job goes on. */
  interrupted: 130,
} as const;

const USAGE = `graft — fine-tuning jobs from the command line (GRAFT_URL, GRAFT_API_KEY)

  graft datasets upload <folder|file> [--task image-classification|text-classification] [--name N]
                                      [--max-invalid-share X] [--base-model bm_…]
  graft datasets list [--limit N] | datasets get <ds_…> | datasets delete <ds_…>
  graft bases                                  base models a worker can load
  graft tune --base <bm_…|ft_…> --dataset <ds_…> [--epochs N] [--batch-size N] [--learning-rate X]
             [--validation-split X] [--seed N] [--trainable-layers N|none] [--fine-tune-epochs N]
             [--baseline scratch] [--test-dataset ds_…] [--no-early-stopping] [--idempotency-key K] [--follow]
  graft follow <ft_…>                          live progress, per-epoch table, final metrics
  graft job <ft_…> | jobs [--status S] [--limit N] | cancel <ft_…> | delete <ft_…>
  graft download <ft_…> [-o dir/ | -o model.zip] [--checkpoint ck_…]
  graft predict <ft_…> <image…> [--text "…"]… [--top-k N] [--checkpoint ck_…]

Options everywhere: --json (machine-readable stdout), --url URL, --api-key KEY, --help.
Exit codes: 0 ok, 1 error, 2 usage, 3 API refused the request, 4 API unreachable, 5 job failed,
6 job cancelled, 130 interrupted while following (the job goes on).`;

class UsageError extends Error {}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  url: { type: 'string' },
  'api-key': { type: 'string' },
  task: { type: 'string' },
  name: { type: 'string' },
  'max-invalid-share': { type: 'string' },
  'base-model': { type: 'string' },
  limit: { type: 'string' },
  base: { type: 'string' },
  dataset: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'learning-rate': { type: 'string' },
  'validation-split': { type: 'string' },
  seed: { type: 'string' },
  'trainable-layers': { type: 'string' },
  'fine-tune-epochs': { type: 'string' },
  baseline: { type: 'string' },
  'test-dataset': { type: 'string' },
  'no-early-stopping': { type: 'boolean' },
  'idempotency-key': { type: 'string' },
  follow: { type: 'boolean', short: 'f' },
  status: { type: 'string' },
  output: { type: 'string', short: 'o' },
  checkpoint: { type: 'string' },
  'top-k': { type: 'string' },
  text: { type: 'string', multiple: true },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

function int(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${what} must be an integer, not "${v}"`);
  return n;
}
function num(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${what} must be a number, not "${v}"`);
  return n;
}
function need(v: string | undefined, what: string): string {
  if (!v) throw new UsageError(`missing ${what}`);
  return v;
}

/** Runs one command line; resolves with the exit code (never calls process.exit). */
export async function run(argv: string[], io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }, signal?: AbortSignal): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (err) {
    io.err(`graft: ${(err as Error).message}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (values.help || positionals.length === 0) {
    (values.help ? io.out : io.err)(`${USAGE}\n`);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  const graft = new Graft({ ...(values.url ? { baseUrl: values.url } : {}), ...(values['api-key'] ? { apiKey: values['api-key'] } : {}) });
  const json = !!values.json;
  const print = (value: unknown) => io.out(`${JSON.stringify(value, null, 2)}\n`);
  try {
    const [command, ...args] = positionals;
    switch (command) {
      case 'datasets':
        return await datasets(graft, args, values, io, json, print);
      case 'bases': {
        const page = await graft.baseModels.list({ limit: int(values.limit, 'limit') ?? 100 });
        if (json) print(page);
        else io.out(`${table(['id', 'task', 'format', 'input', 'pretrained on'], page.data.map((b) => [b.id, b.task, b.format, b.inputShape.join('x'), b.pretrainedOn]))}\n`);
        return EXIT.ok;
      }
      case 'tune':
        return await tune(graft, values, io, json, print, signal);
      case 'follow':
        return await follow(graft, need(args[0], 'the job id (ft_…)'), io, json, print, signal);
      case 'job': {
        const job = await graft.fineTunes.retrieve(need(args[0], 'the job id (ft_…)'));
        if (json) print(job);
        else io.out(describeJob(job));
        return exitFor(job);
      }
      case 'jobs': {
        const page = await graft.fineTunes.list({ limit: int(values.limit, 'limit') ?? 20, ...(values.status ? { status: values.status as FineTune['status'] } : {}) });
        if (json) print(page);
        else {
          io.out(
            `${table(
              ['id', 'status', 'base', 'dataset', 'epoch', 'val acc', 'created'],
              page.data.map((j) => [j.id, j.status, j.baseModel, j.dataset, `${j.progress.epoch}/${j.progress.epochs}`, pct(j.result?.valAccuracy ?? j.metrics?.valAccuracy), j.createdAt.replace('T', ' ').slice(0, 19)]),
              ['l', 'l', 'l', 'l', 'r', 'r', 'l'],
            )}\n`,
          );
        }
        return EXIT.ok;
      }
      case 'cancel': {
        const job = await graft.fineTunes.cancel(need(args[0], 'the job id (ft_…)'));
        if (json) print(job);
        else io.out(job.status === 'cancelled' ? `${job.id} cancelled\n` : `${job.id}: cancel requested; it stops within one batch\n`);
        return EXIT.ok;
      }
      case 'delete': {
        const deleted = await graft.fineTunes.delete(need(args[0], 'the job id (ft_…)'));
        if (json) print(deleted);
        else io.out(`${deleted.id} deleted\n`);
        return EXIT.ok;
      }
      case 'download':
        return await download(graft, need(args[0], 'the job id (ft_…)'), values, io, json, print);
      case 'predict':
        return await predict(graft, need(args[0], 'the job id (ft_…)'), args.slice(1), values, io, json, print);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`graft: ${err.message}\n\n${USAGE}\n`);
      return EXIT.usage;
    }
    if (err instanceof GraftApiError) {
      io.err(`graft: ${err.message} (${err.status} ${err.code}${err.param ? `, ${err.param}` : ''})\n`);
      if (json) print({ error: { status: err.status, code: err.code, message: err.message, ...(err.param ? { param: err.param } : {}) } });
      return EXIT.api;
    }
    if (err instanceof GraftConnectionError) {
      io.err(`graft: cannot reach the API: ${err.message}\n`);
      return EXIT.connection;
    }
    if (signal?.aborted) return EXIT.interrupted;
    io.err(`graft: ${(err as Error)?.message ?? String(err)}\n`);
    return EXIT.error;
  }
}

async function datasets(graft: Graft, args: string[], values: Values, io: Io, json: boolean, print: (v: unknown) => void): Promise<number> {
  const [sub, target] = args;
  if (sub === 'list') {
    const page = await graft.datasets.list({ limit: int(values.limit, 'limit') ?? 20 });
    if (json) print(page);
    else io.out(`${table(['id', 'task', 'name', 'examples', 'classes', 'created'], page.data.map((d) => [d.id, d.task, d.name, d.task === 'image-classification' ? d.imageCount : d.rowCount, d.classes.length, d.createdAt.replace('T', ' ').slice(0, 19)]), ['l', 'l', 'l', 'r', 'r', 'l'])}\n`);
    return EXIT.ok;
  }
  if (sub === 'get') {
    const ds = await graft.datasets.retrieve(need(target, 'the dataset id (ds_…)'));
    if (json) print(ds);
    else io.out(describeDataset(ds));
    return EXIT.ok;
  }
  if (sub === 'delete') {
    const deleted = await graft.datasets.delete(need(target, 'the dataset id (ds_…)'));
    if (json) print(deleted);
    else io.out(`${deleted.id} deleted\n`);
    return EXIT.ok;
  }
  if (sub !== 'upload') throw new UsageError(`unknown datasets command "${sub ?? ''}" (upload, list, get, delete)`);
  const path = resolve(need(target, 'the folder or file to upload'));
  const info = await stat(path).catch(() => null);
  if (!info) throw new UsageError(`${path} does not exist`);
  const ext = extname(path.replace(/\.gz$/i, '')).toLowerCase();
  const task = (values.task ?? (info.isDirectory() || ext === '.zip' ? 'image-classification' : 'text-classification')) as Dataset['task'];
  if (task !== 'image-classification' && task !== 'text-classification') throw new UsageError(`--task must be image-classification or text-classification`);
  let file: Blob;
  let filename: string;
  if (info.isDirectory()) {
    io.err(`zipping ${path} …\n`);
    const files = await folderFiles(path);
    if (!files.length) throw new UsageError(`${path} holds no files`);
    const zip = zipStored(await Promise.all(files.map(async (f) => ({ name: f, data: await readFile(join(path, f)) }))));
    file = new Blob([zip], { type: 'application/zip' });
    filename = `${basename(path)}.zip`;
    io.err(`${files.length} files, ${bytes(zip.length)}\n`);
  } else {
    file = await openAsBlob(path);
    filename = basename(path);
  }
  const bar = new ProgressBar();
  const ds = await graft.datasets.upload(
    {
      task,
      file,
      filename,
      ...(values.name ? { name: values.name } : {}),
      ...(values['max-invalid-share'] !== undefined ? { maxInvalidShare: num(values['max-invalid-share'], 'max-invalid-share')! } : {}),
      ...(values['base-model'] ? { baseModel: values['base-model'] } : {}),
    },
    { onProgress: (sent, total) => bar.update(total ? sent / total : 1, `uploading ${bytes(sent)} / ${bytes(total)}${sent === total ? ' (checking…)' : ''}`) },
  ).finally(() => bar.clear());
  if (json) print(ds);
  else io.out(describeDataset(ds));
  return EXIT.ok;
}

/** The files under a folder, relative with `/`, hidden ones left out (the API would skip them). */
async function folderFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const rel = relative(root, join(entry.parentPath ?? (entry as { path?: string }).path ?? root, entry.name));
    if (rel.split(sep).some((part) => part.startsWith('.'))) continue;
    out.push(rel.split(sep).join('/'));
  }
  return out.sort();
}

function describeDataset(ds: Dataset): string {
  const unit = ds.task === 'image-classification' ? 'images' : 'rows';
  const count = ds.task === 'image-classification' ? ds.imageCount : ds.rowCount;
  const lines = [`${ds.id}  ${ds.name}  (${ds.task}, ${bytes(ds.bytes)}, sha256 ${ds.sha256.slice(0, 12)}…)`, `${count} ${unit} in ${ds.classes.length} classes`, ''];
  lines.push(table(['class', unit, 'share'], ds.classes.map((c) => [c.name, 'images' in c ? c.images : c.rows, pct(c.share)]), ['l', 'r', 'r']));
  if (ds.balance.imbalanced) lines.push('', `warning: imbalanced (largest/smallest ${ds.balance.imbalanceRatio.toFixed(2)}): consider classWeights "auto"`);
  const skipped = ds.task === 'image-classification' ? ds.skippedCount : ds.invalidRowCount;
  if (skipped) lines.push('', `${skipped} ${ds.task === 'image-classification' ? 'entries skipped' : 'invalid rows skipped'}`);
  return `${lines.join('\n')}\n`;
}

async function tune(graft: Graft, values: Values, io: Io, json: boolean, print: (v: unknown) => void, signal?: AbortSignal): Promise<number> {
  const hyperparameters: NonNullable<CreateFineTuneBody['hyperparameters']> = {};
  const epochs = int(values.epochs, 'epochs');
  if (epochs !== undefined) hyperparameters.epochs = epochs;
  const batchSize = int(values['batch-size'], 'batch-size');
  if (batchSize !== undefined) hyperparameters.batchSize = batchSize;
  const lr = num(values['learning-rate'], 'learning-rate');
  if (lr !== undefined) hyperparameters.learningRate = lr;
  const ftEpochs = int(values['fine-tune-epochs'], 'fine-tune-epochs');
  if (ftEpochs !== undefined) hyperparameters.fineTuneEpochs = ftEpochs;
  const body: CreateFineTuneBody = { baseModel: need(values.base, '--base (a bm_… or ft_… id)'), dataset: need(values.dataset, '--dataset (a ds_… id)') };
  if (Object.keys(hyperparameters).length) body.hyperparameters = hyperparameters;
  const split = num(values['validation-split'], 'validation-split');
  if (split !== undefined) body.validationSplit = split;
  const seed = int(values.seed, 'seed');
  if (seed !== undefined) body.seed = seed;
  const layers = values['trainable-layers'];
  if (layers !== undefined) body.trainableLayers = layers === 'none' ? 'none' : (int(layers, 'trainable-layers') as number);
  if (values.baseline) body.baseline = values.baseline as 'none' | 'scratch';
  if (values['test-dataset']) body.testDataset = values['test-dataset'];
  if (values['no-early-stopping']) body.earlyStopping = false;
  const job = await graft.fineTunes.create(body, values['idempotency-key'] ? { idempotencyKey: values['idempotency-key'] } : {});
  if (!values.follow) {
    if (json) print(job);
    else io.out(`${job.id} ${job.status}: ${job.baseModel} on ${job.dataset}, ${job.progress.epochs} epochs planned\nfollow it: graft follow ${job.id}\n`);
    return EXIT.ok;
  }
  if (!json) io.out(`${job.id} ${job.status}: ${job.baseModel} on ${job.dataset}, ${job.progress.epochs} epochs planned\n`);
  for (const w of job.warnings ?? []) io.err(`warning (${w.type}): ${w.message}\n`);
  return follow(graft, job.id, io, json, print, signal);
}

const EPOCH_COLUMNS = ['epoch', 'phase', 'loss', 'accuracy', 'val loss', 'val acc', 'time'];
const EPOCH_WIDTHS = [5, 9, 8, 8, 8, 8, 7];
const epochLine = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(EPOCH_WIDTHS[i]!) : c.padStart(EPOCH_WIDTHS[i]!))).join('  ').trimEnd();

/** Follows a job to its end: a progress bar (terminal), one table row per epoch, then the final metrics. */
async function follow(graft: Graft, id: string, io: Io, json: boolean, print: (v: unknown) => void, signal?: AbortSignal): Promise<number> {
  const bar = new ProgressBar();
  let header = false;
  const seenEpochs = new Set<number>();
  let job: FineTune;
  try {
    job = await graft.fineTunes.waitUntilDone(id, {
      ...(signal ? { signal } : {}),
      onEvent: (e) => {
        if (e.level === 'info') return;
        bar.clear();
        io.err(`${e.level} (${e.type}): ${e.message}\n`);
      },
      onProgress: (j) => {
        const m = j.metrics;
        if (m && !seenEpochs.has(m.epoch) && !json) {
          seenEpochs.add(m.epoch);
          bar.clear();
          if (!header) io.out(`${epochLine(EPOCH_COLUMNS)}\n${epochLine(EPOCH_WIDTHS.map((w) => '-'.repeat(w)))}\n`);
          header = true;
          io.out(`${epochLine([String(m.epoch), m.phase, fixed(m.loss), pct(m.accuracy), fixed(m.valLoss), pct(m.valAccuracy), `${(m.durationMs / 1000).toFixed(1)}s`])}\n`);
        }
        const p = j.progress;
        const done = p.epochs ? (Math.max(0, p.epoch - 1) + (p.batches ? p.batch / p.batches : 0)) / p.epochs : 0;
        bar.update(j.status === 'running' ? done : 0, `${j.status} ${p.phase} epoch ${p.epoch}/${p.epochs} batch ${p.batch}/${p.batches}`);
      },
    });
  } catch (err) {
    bar.clear();
    if (signal?.aborted) {
      io.err(`stopped following; ${id} goes on (graft follow ${id}, graft cancel ${id})\n`);
      return EXIT.interrupted;
    }
    throw err;
  }
  bar.clear();
  if (json) print(job);
  else io.out(`\n${describeJob(job)}`);
  return exitFor(job);
}

function exitFor(job: FineTune): number {
  return job.status === 'failed' ? EXIT.jobFailed : job.status === 'cancelled' ? EXIT.jobCancelled : EXIT.ok;
}

function describeJob(job: FineTune): string {
  const lines = [`${job.id}  ${job.status}  ${job.baseModel} on ${job.dataset}  (created ${job.createdAt})`];
  if (job.status === 'running' || job.status === 'queued') {
    const p = job.progress;
    lines.push(`${p.phase} epoch ${p.epoch}/${p.epochs}, batch ${p.batch}/${p.batches}${job.metrics ? `; last val acc ${pct(job.metrics.valAccuracy)}` : ''}`);
  }
  if (job.error) lines.push(`error ${job.error.code}${job.error.param ? ` (${job.error.param})` : ''}: ${job.error.message}`);
  const r = job.result;
  if (r) {
    const v = r.validation;
    lines.push(
      `validation: accuracy ${pct(r.valAccuracy)}, loss ${fixed(r.valLoss)}${v ? `, top-${v.topK.k} ${pct(v.topK.accuracy)}` : ''} on ${r.validationImages} examples (${r.trainImages} trained)`,
      `${r.epochsRun} epochs${r.stoppedEarly ? ' (stopped early)' : ''}; the model has epoch ${r.bestEpoch ?? '-'}'s weights; ${(r.trainingMs / 1000).toFixed(1)} s on ${r.backend}`,
    );
    if (r.test) lines.push(`test: accuracy ${pct(r.test.accuracy)} on ${r.test.images} examples`);
    if (r.baseline) lines.push(`from scratch: val accuracy ${pct(r.baseline.valAccuracy)} (transfer gain ${r.baseline.transferGain === null ? '-' : `${(r.baseline.transferGain * 100).toFixed(1)} points`})`);
    lines.push('', table(['class', 'precision', 'recall', 'f1', 'support'], r.perClass.map((c) => [c.name, fixed(c.precision, 3), fixed(c.recall, 3), fixed(c.f1, 3), c.support]), ['l', 'r', 'r', 'r', 'r']));
    lines.push('', 'confusion matrix (rows: true class, columns: predicted)', table(['', ...r.classes], r.confusionMatrix.map((row, i) => [r.classes[i]!, ...row]), ['l', ...r.classes.map(() => 'r' as const)]));
  }
  if (job.model) lines.push('', `model: ${bytes(job.model.bytes)}; graft download ${job.id} -o ${job.id}/`);
  return `${lines.join('\n')}\n`;
}

async function download(graft: Graft, id: string, values: Values, io: Io, json: boolean, print: (v: unknown) => void): Promise<number> {
  const dl = await graft.fineTunes.download(id, values.checkpoint ? { checkpoint: values.checkpoint } : {});
  const target = resolve(values.output ?? dl.filename.replace(/\.zip$/, ''));
  const data = Buffer.from(await dl.bytes());
  if (target.toLowerCase().endsWith('.zip')) {
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, data);
    if (json) print({ path: target, bytes: data.length });
    else io.out(`${target} (${bytes(data.length)})\n`);
    return EXIT.ok;
  }
  const files = unzip(data);
  const written: string[] = [];
  for (const [name, content] of files) {
    const rel = normalize(name);
    if (isAbsolute(rel) || rel.split(sep).includes('..')) throw new Error(`refusing a zip entry outside the folder: ${name}`);
    const path = join(target, rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
    written.push(rel);
  }
  if (json) print({ path: target, bytes: data.length, files: written });
  else io.out(`${target}/ (${bytes(data.length)} zip): ${written.join(', ')}\n`);
  return EXIT.ok;
}

async function predict(graft: Graft, id: string, paths: string[], values: Values, io: Io, json: boolean, print: (v: unknown) => void): Promise<number> {
  const texts = values.text ?? [];
  if (!paths.length && !texts.length) throw new UsageError('predict needs image files (or --text "…")');
  const names = [...paths, ...texts.map((t) => (t.length > 40 ? `${t.slice(0, 37)}…` : t))];
  const inputs: (string | Uint8Array)[] = [...(await Promise.all(paths.map((p) => readFile(p)))), ...texts];
  const topK = int(values['top-k'], 'top-k');
  let answer: PredictionList | null = null;
  // The API takes at most 32 inputs a request.
  for (let i = 0; i < inputs.length; i += 32) {
    const page = await graft.fineTunes.predict(id, inputs.slice(i, i + 32), { ...(topK ? { topK } : {}), ...(values.checkpoint ? { checkpoint: values.checkpoint } : {}) });
    answer = answer ? { ...page, data: [...answer.data, ...page.data.map((p) => ({ ...p, index: p.index + i }))] } : page;
  }
  if (json) print({ ...answer!, inputs: names });
  else {
    io.out(
      `${table(
        ['input', 'label', 'probability', 'top-k'],
        answer!.data.map((p) => [names[p.index]!, p.label, pct(p.probability), p.topK.slice(1).map((t) => `${t.label} ${pct(t.probability)}`).join(', ')]),
        ['l', 'l', 'r', 'l'],
      )}\n`,
    );
  }
  return EXIT.ok;
}

/**
 * Warm prediction latency of `POST /v1/fine-tunes/:id/predict` through the real API (its own
 * process): one image and a batch of 32 per request, from one client in sequence and from a few
 * concurrent clients, on jobs the suite trains first through a worker — `bm_mnist_cnn` on the
 * bundled sample (quick) and a MobileNetV2 head on 160×160 digits (the realistic case). Client-side
 * latency (multipart request sent → JSON answer parsed, `@graft/client`), with the server's own
 * split (`timing`: waiting for the thread, inference) alongside. The first request, which loads
 * the model into a prediction thread, is reported apart.
 *
 *   npm run bench -- --only predict [--models mnist,mobilenet] [--clients 4] [--seconds 30]
 */
import { openAsBlob } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Graft, GraftApiError, type PredictionList } from '@graft/client';
import { greyJpeg, greyPng, makeDigitsZip, mnistPixels, resizeGrey } from '../packages/engine/test/fixtures.ts';
import { fmtLoad, machine, packageVersion } from './lib/machine.ts';
import { median } from './lib/results.ts';
import { startService } from './lib/service.ts';

const SAMPLE = fileURLToPath(new URL('../samples/digits-5-9.zip', import.meta.url));
const log = (msg: string) => console.error(`[bench:predict] ${msg}`);

export interface PredictOptions {
  models: string[];
  clients: number;
  /** Time budget of each single-image scenario; batches get 1.5x. */
  seconds: number;
}

export function parsePredictArgs(argv: string[]): PredictOptions {
  const at = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return { models: (at('models') ?? 'mnist,mobilenet').split(','), clients: Number(at('clients') ?? 4), seconds: Number(at('seconds') ?? 30) };
}

/** Nearest-rank percentile. */
const percentile = (xs: readonly number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.max(0, Math.ceil(p * s.length) - 1)]! : Number.NaN;
};

interface Scenario {
  name: string;
  batch: number;
  clients: number;
  n: number;
  /** Requests answered 504 prediction_timeout (not in the percentiles). */
  timeouts: number;
  p50: number;
  p99: number;
  max: number;
  /** Server-side medians: waiting for the prediction thread, inference. */
  queuedMs: number;
  inferenceMs: number;
  inputsPerSecond: number;
  load: [number, number, number];
}

/** Held-out digits (not in any training set here) as the model's users would send them. */
function inputImages(side: number, count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const digit = 5 + (i % 5);
    const pixels = resizeGrey(mnistPixels(digit, 800 + Math.floor(i / 5)), 28, side);
    out.push(side > 28 && i % 2 ? greyJpeg(pixels, side, side) : greyPng(pixels, side, side));
  }
  return out;
}

async function scenario(graft: Graft, id: string, name: string, images: Buffer[], batch: number, clients: number, budgetMs: number, maxRequests: number): Promise<Scenario> {
  const latencies: number[] = [];
  const queued: number[] = [];
  const inference: number[] = [];
  const deadline = Date.now() + budgetMs;
  let sent = 0;
  let next = 0;
  let timeouts = 0;
  const started = performance.now();
  const client = async () => {
    while (sent < maxRequests && Date.now() < deadline) {
      sent++;
      const inputs = Array.from({ length: batch }, () => images[next++ % images.length]!);
      const t = performance.now();
      let out: PredictionList;
      try {
        out = await graft.fineTunes.predict(id, inputs);
      } catch (err) {
        // A request that waited past PREDICT_TIMEOUT_MS is an answer users get too: counted, not timed.
        if (err instanceof GraftApiError && err.code === 'prediction_timeout') {
          timeouts++;
          continue;
        }
        throw err;
      }
      latencies.push(performance.now() - t);
      if (out.data.length !== batch) throw new Error(`${out.data.length} predictions for ${batch} inputs`);
      queued.push(out.timing.queuedMs);
      inference.push(out.timing.inferenceMs);
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  const wall = performance.now() - started;
  const s: Scenario = {
    name, batch, clients, n: latencies.length, timeouts,
    p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: Math.max(...latencies),
    queuedMs: median(queued), inferenceMs: median(inference), inputsPerSecond: (latencies.length * batch) / (wall / 1000),
    load: machine().load,
  };
  log(`${name}: n=${s.n} (+${timeouts} timed out) p50 ${s.p50.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms, ${s.inputsPerSecond.toFixed(1)} inputs/s (load ${fmtLoad(s.load)})`);
  return s;
}

export async function runPredict(opts: PredictOptions): Promise<{ markdown: string; raw: unknown }> {
  const dir = await mkdtemp(join(tmpdir(), 'graft-bench-predict-'));
  const service = await startService('predict', { worker: true });
  const sections: string[] = [];
  const raw: Record<string, unknown> = {};
  const loadStart = machine().load;
  try {
    const graft = new Graft({ baseUrl: service.url, timeoutMs: 300_000 });
    for (const model of opts.models) {
      if (model !== 'mnist' && model !== 'mobilenet') throw new Error(`unknown model "${model}" (mnist, mobilenet)`);
      const side = model === 'mnist' ? 28 : 160;
      let zip = SAMPLE;
      if (model === 'mobilenet') {
        zip = join(dir, 'digits-160.zip');
        await makeDigitsZip(zip, { digits: [5, 6, 7, 8, 9], perClass: 40, side, format: 'mixed' });
      }
      const dataset = await graft.datasets.upload({ task: 'image-classification', file: await openAsBlob(zip), filename: 'digits.zip' });
      const created = await graft.fineTunes.create({
        baseModel: model === 'mnist' ? 'bm_mnist_cnn' : 'bm_mobilenet_v2', dataset: dataset.id, seed: 3, earlyStopping: false,
        hyperparameters: { epochs: 3 },
      });
      const t = performance.now();
      const job = await graft.fineTunes.waitUntilDone(created.id, { timeoutMs: 20 * 60_000 });
      if (job.status !== 'succeeded') throw new Error(`the ${model} job ended ${job.status}: ${JSON.stringify(job.error)}`);
      log(`${model}: trained ${job.id} in ${((performance.now() - t) / 1000).toFixed(0)} s (${job.result?.validationImages} validation images, accuracy ${job.result?.valAccuracy})`);
      const images = inputImages(side, 64);

      const tc = performance.now();
      const cold = await graft.fineTunes.predict(job.id, [images[0]!]);
      const coldMs = performance.now() - tc;
      log(`${model}: cold request ${coldMs.toFixed(0)} ms (${JSON.stringify(cold.timing)})`);
      for (let i = 0; i < 3; i++) await graft.fineTunes.predict(job.id, images.slice(0, 32)); // warm every path (batch shapes)

      const budget = opts.seconds * 1000;
      const scenarios = [
        await scenario(graft, job.id, '1 image, 1 client', images, 1, 1, budget, 300),
        await scenario(graft, job.id, '32 images, 1 client', images, 32, 1, budget * 1.5, 100),
        await scenario(graft, job.id, `1 image, ${opts.clients} clients`, images, 1, opts.clients, budget, 600),
        await scenario(graft, job.id, `32 images, ${opts.clients} clients`, images, 32, opts.clients, budget * 1.5, 200),
      ];
      raw[model] = { job: job.id, cold: { ms: coldMs, timing: cold.timing, runtime: cold.runtime }, scenarios };
      const title = model === 'mnist' ? '`bm_mnist_cnn` (28×28 grey) fine-tuned on the bundled sample' : '`bm_mobilenet_v2` head (224×224; inputs 160×160, PNG and JPEG) fine-tuned on 200 digits';
      sections.push(
        [
          `**${title}** (job ${job.id}, model zip ${job.model?.bytes ?? '?'} bytes). Cold first request (starts the prediction thread, loads the model): ${coldMs.toFixed(0)} ms (server: thread ${cold.timing.queuedMs} ms, load ${cold.timing.loadMs} ms, inference ${cold.timing.inferenceMs} ms). Answered by: ${cold.runtime.name === 'onnx' ? 'ONNX Runtime' : `TensorFlow.js${cold.runtime.reason ? ` (${cold.runtime.reason})` : ''}`}.`,
          '',
          '| warm requests | n answered | 504 (timed out) | p50 | p99 | max | server: waiting for the thread (median) | server: inference (median) | inputs/s | load average after |',
          '|---|---|---|---|---|---|---|---|---|---|',
          ...scenarios.map((s) => `| ${s.name} | ${s.n} | ${s.timeouts} | ${s.p50.toFixed(0)} ms | ${s.p99.toFixed(0)} ms | ${s.max.toFixed(0)} ms | ${s.queuedMs} ms | ${s.inferenceMs} ms | ${s.inputsPerSecond.toFixed(1)} | ${fmtLoad(s.load)} |`),
        ].join('\n'),
      );
    }
  } finally {
    await service.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const m = machine();
  const markdown = [
    '## Predictions: warm latency of `POST /v1/fine-tunes/:id/predict` (`bench/predict.ts`)',
    '',
    '```',
    `npm run bench -- --only predict${opts.models.join(',') !== 'mnist,mobilenet' ? ` --models ${opts.models.join(',')}` : ''}${opts.clients !== 4 ? ` --clients ${opts.clients}` : ''}${opts.seconds !== 30 ? ` --seconds ${opts.seconds}` : ''}`,
    '```',
    '',
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Node ${m.node}; tfjs ${packageVersion('@tensorflow/tfjs')}, onnxruntime-node ${packageVersion('onnxruntime-node')}. Load average ${fmtLoad(loadStart)} at the start, ${fmtLoad(m.load)} at the end, and after each row below (a shared 2-core machine: other processes ran too, so latencies are inflated).`,
    '',
    `The API in its own process with the default \`PREDICT_THREADS=1\` (one prediction thread: concurrent requests wait for it), multipart images sent by \`@graft/client\` over loopback; latency = request sent → answer parsed. Each row runs for at most ${opts.seconds} s (batches ${opts.seconds * 1.5} s) or a request cap, after 3 warm-up batches; p99 is the nearest rank, so with fewer than 100 requests it is the slowest but one or the slowest. Issue 9 sets no target for these figures.`,
    '',
    ...sections.flatMap((s) => [s, '']),
    'An image model predicts in the prediction thread through the whole exported model, on ONNX Runtime where `GRAFT_FROZEN_RUNTIME` allows it and the converted model checks out against TensorFlow.js when the thread loads it (the cold request pays that), else on TensorFlow.js; "Answered by" above is what the answers said. A request waits for the one thread behind the others, its time limit (`PREDICT_TIMEOUT_MS`, 30 s) counting from when the thread is ready: a `504` above is such a request.',
  ].join('\n');
  return { markdown, raw: { opts, load: { start: loadStart, end: m.load }, ...raw } };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await runPredict(parsePredictArgs(process.argv.slice(2)));
  console.log(out.markdown);
}

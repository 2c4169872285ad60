/**
 * A 1 GB image dataset zip uploaded to `POST /v1/datasets` on the real API (its own process, real
 * Postgres, local storage): throughput, and how much the API process's resident memory grows
 * (target: < 64 MB). The zip is generated into a temporary directory: photo-sized images
 * (1024×768, smooth colour fields with sensor-like noise), PNG and JPEG alternating, a pool of
 * distinct images repeated under distinct names until the archive reaches the size, entries
 * stored (not deflated), as zipped photo folders are. The API checks every entry in full (inflate,
 * decode) before it answers 201, so the time covers receiving, storing and checking.
 *
 * Memory: the API's VmHWM (peak resident set, all threads) is reset through /proc/<pid>/clear_refs
 * before each upload and read after it, cross-checked by sampling VmRSS every 20 ms. That is the API
 * process alone: the check runs in a child process (since the dataset check moved out of the API's
 * threads), whose own peak is reported apart, as the child states it when it answers (its
 * `getrusage` maximum, logged by the API) and as sampled from /proc every 20 ms. Before measuring,
 * the API answers one Postgres-reading request (Prisma loads its query compiler on the first query,
 * whatever the route).
 *
 * The bundled sample (45 KB) is uploaded first (the first image upload of the process bundles the
 * check's code), then `--sample-runs` more times: a small upload's latency, which a fresh check
 * process per upload adds its start to. `--baseline <dir>`: another checkout of graft (set up) runs
 * its API too, each upload measured on both back to back, so before/after ratios share one load.
 *
 * `--variants`: also the current build without the spare check process, and with used ones kept warm.
 *
 *   npm run bench -- --only upload [--gb 1] [--runs 1] [--sample-runs 5] [--side 1024x768] [--pool 48] [--baseline <dir>] [--variants]
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import yazl from 'yazl';
import { rgbPng } from '../packages/engine/test/fixtures.ts';
import { mulberry32 } from '../packages/engine/src/util/random.ts';
import { fmtLoad, machine } from './lib/machine.ts';
import { childrenOf, cpuSecondsOf, memoryOf, startService, type Service } from './lib/service.ts';

const log = (msg: string) => console.error(`[bench:upload] ${msg}`);
const SAMPLE = fileURLToPath(new URL('../samples/digits-5-9.zip', import.meta.url));
const MiB = 2 ** 20;
const TARGET_MB = 64;

export interface UploadOptions {
  gb: number;
  runs: number;
  width: number;
  height: number;
  /** Distinct images in the pool. */
  pool: number;
  /** Uploads of the sample after the first. */
  sampleRuns: number;
  /** Another checkout whose API is measured too. */
  baseline?: string | undefined;
  /** Also the current build without a spare check process, and with warm ones. */
  variants: boolean;
}

export function parseUploadArgs(argv: string[]): UploadOptions {
  const at = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const [w, h] = (at('side') ?? '1024x768').split('x').map(Number);
  return { gb: Number(at('gb') ?? 1), runs: Number(at('runs') ?? 1), width: w!, height: h ?? w!, pool: Number(at('pool') ?? 48), sampleRuns: Number(at('sample-runs') ?? 5), baseline: at('baseline'), variants: argv.includes('--variants') };
}

/** A photo-like RGB image: a few smooth colour fields with per-pixel noise (so it neither compresses to nothing nor is pure noise). */
function photo(width: number, height: number, seed: number): Uint8Array {
  const random = mulberry32(seed);
  const c = Array.from({ length: 4 }, () => [random() * 255, random() * 255, random() * 255]);
  const px = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const v = y / height;
    for (let x = 0; x < width; x++) {
      const u = x / width;
      for (let k = 0; k < 3; k++) {
        const base = c[0]![k]! * (1 - u) * (1 - v) + c[1]![k]! * u * (1 - v) + c[2]![k]! * (1 - u) * v + c[3]![k]! * u * v;
        px[(y * width + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(base + (random() - 0.5) * 24)));
      }
    }
  }
  return px;
}

function rgbJpeg(px: Uint8Array, width: number, height: number): Buffer {
  const rgba = Buffer.alloc(width * height * 4, 255);
  for (let i = 0, j = 0; i < px.length; i += 3, j += 4) {
    rgba[j] = px[i]!;
    rgba[j + 1] = px[i + 1]!;
    rgba[j + 2] = px[i + 2]!;
  }
  return jpeg.encode({ data: rgba, width, height }, 90).data;
}

/** Writes the archive: `class_<k>/img_<n>.(png|jpg)`, 5 classes, until `bytes` are reached. */
export async function writeDatasetZip(path: string, bytes: number, opts: UploadOptions): Promise<{ entries: number; png: number; jpeg: number; meanBytes: number }> {
  const pool: { data: Buffer; ext: string }[] = [];
  for (let i = 0; i < opts.pool; i++) {
    const px = photo(opts.width, opts.height, 1000 + i);
    pool.push(i % 2 ? { data: rgbJpeg(px, opts.width, opts.height), ext: 'jpg' } : { data: rgbPng(px, opts.width, opts.height), ext: 'png' });
  }
  const zip = new yazl.ZipFile();
  const done = pipeline(zip.outputStream, createWriteStream(path));
  let total = 0;
  let n = 0;
  const counts = { png: 0, jpeg: 0 };
  while (total < bytes) {
    const img = pool[n % pool.length]!;
    zip.addBuffer(img.data, `class_${n % 5}/img_${String(n).padStart(5, '0')}.${img.ext}`, { compress: false, mtime: new Date(0), mode: 0o100644 });
    total += img.data.length;
    if (img.ext === 'png') counts.png++;
    else counts.jpeg++;
    n++;
  }
  zip.end();
  await done;
  return { entries: n, ...counts, meanBytes: total / n };
}

/** Resets the process's peak RSS (VmHWM) to its current RSS (Linux: clear_refs 5). */
const resetPeak = (pid: number) => writeFile(`/proc/${pid}/clear_refs`, '5');

/**
 * `current`: this build as configured by default (a fresh check process per upload, a spare started ahead);
 * `no spare`: the same without the spare (DATASET_CHECK_SPARE_MS=0); `warm`: used check processes kept a
 * minute for the next upload (DATASET_CHECK_IDLE_MS=60000); `baseline`: another checkout.
 */
type Build = 'current' | 'baseline' | 'warm' | 'no spare';

interface Run {
  build: Build;
  label: string;
  /** The sample's repeated uploads are summarised, not tabled one by one. */
  repeat: boolean;
  path: string;
  bytes: number;
  seconds: number;
  /** Until the last byte of the request was handed to the socket. */
  sendSeconds: number;
  mbPerS: number;
  before: number;
  peak: number;
  growthMiB: number;
  sampledPeak: number;
  apiCpuSeconds: number;
  /** The check process's peak RSS as it reported it (API log), and as sampled from /proc; null when there was none (a check thread). */
  childPeak: number | null;
  childSampledPeak: number | null;
  load: [number, number, number];
  status: number;
  body: unknown;
}

/** One multipart upload streamed from disk with node:http (so the end of sending is seen). */
function upload(url: string, zipPath: string, size: number): Promise<{ status: number; body: string; sentAt: number }> {
  const boundary = `----graftbench${Date.now().toString(16)}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="task"\r\n\r\nimage-classification\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="photos.zip"\r\nContent-Type: application/zip\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return new Promise((resolve, reject) => {
    let sentAt = 0;
    const req = request(`${url}/v1/datasets`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + size + tail.length } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sentAt }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.write(head);
    const file = createReadStream(zipPath);
    file.on('error', reject);
    file.pipe(req, { end: false });
    file.on('end', () => req.end(tail, () => (sentAt = performance.now())));
  });
}

/** The check process's own figure, from the API's log line "dataset check process" written since `from`. */
function childPeakFromLog(logs: string, from: number): number | null {
  let peak: number | null = null;
  for (const line of logs.slice(from).split('\n')) {
    if (!line.includes('"dataset check process"')) continue;
    try {
      const v = (JSON.parse(line) as { childPeakRssBytes?: number }).childPeakRssBytes;
      if (typeof v === 'number') peak = Math.max(peak ?? 0, v);
    } catch {
      // not a JSON line
    }
  }
  return peak;
}

async function measure(service: Service, build: Build, label: string, path: string, repeat: boolean): Promise<Run> {
  const pid = service.api.pid!;
  const bytes = (await stat(path)).size;
  await new Promise((r) => setTimeout(r, 1000)); // let the API settle (GC, the last check thread or process gone)
  await resetPeak(pid);
  const before = (await memoryOf(pid)).rss;
  let sampledPeak = before;
  let childSampledPeak: number | null = null;
  const sampler = setInterval(() => {
    void memoryOf(pid).then((m) => (sampledPeak = Math.max(sampledPeak, m.rss)), () => {});
    void childrenOf(pid).then((kids) =>
      Promise.all(kids.map((k) => memoryOf(k).then((m) => (childSampledPeak = Math.max(childSampledPeak ?? 0, m.rss)), () => {}))),
    );
  }, 20);
  const logFrom = service.logs().length;
  const cpu0 = await cpuSecondsOf(pid);
  const t = performance.now();
  const res = await upload(service.url, path, bytes);
  const ms = performance.now() - t;
  clearInterval(sampler);
  const cpu = (await cpuSecondsOf(pid)) - cpu0;
  const { hwm, rss } = await memoryOf(pid);
  sampledPeak = Math.max(sampledPeak, rss);
  const peak = Math.max(hwm, sampledPeak);
  await new Promise((r) => setTimeout(r, 200)); // the log line may trail the answer
  const body = JSON.parse(res.body) as { id?: string; imageCount?: number; error?: unknown };
  const run: Run = {
    build, label, repeat, path, bytes, seconds: ms / 1000, sendSeconds: (res.sentAt - t) / 1000, mbPerS: bytes / 1e6 / (ms / 1000), before, peak, growthMiB: (peak - before) / MiB, sampledPeak,
    apiCpuSeconds: cpu, childPeak: childPeakFromLog(service.logs(), logFrom), childSampledPeak, load: machine().load, status: res.status,
    body: res.status === 201 ? { id: body.id, imageCount: body.imageCount } : body,
  };
  const child = run.childPeak !== null ? `; check process peak ${(run.childPeak / MiB).toFixed(0)} MiB (sampled ${((run.childSampledPeak ?? 0) / MiB).toFixed(0)})` : '';
  log(`${build}: ${label}: ${res.status} in ${run.seconds.toFixed(2)} s (sent in ${run.sendSeconds.toFixed(1)} s), ${run.mbPerS.toFixed(1)} MB/s; API RSS ${(before / MiB).toFixed(0)} → peak ${(peak / MiB).toFixed(0)} MiB (+${run.growthMiB.toFixed(0)} MiB; sampled peak ${(sampledPeak / MiB).toFixed(0)})${child}, API CPU ${cpu.toFixed(1)} s, load ${fmtLoad(run.load)}`);
  if (res.status !== 201) throw new Error(`upload answered ${res.status}: ${res.body.slice(0, 500)}`);
  await fetch(`${service.url}/v1/datasets/${body.id}`, { method: 'DELETE' }); // free the stored GB before the next run
  return run;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const mib = (b: number | null) => (b === null ? '—' : `${(b / MiB).toFixed(0)} MiB`);

export async function runUpload(opts: UploadOptions): Promise<{ markdown: string; raw: unknown }> {
  const dir = await mkdtemp(join(tmpdir(), 'graft-bench-upload-'));
  const zipPath = join(dir, 'photos.zip');
  const t = performance.now();
  const made = await writeDatasetZip(zipPath, opts.gb * 1e9, opts);
  const size = (await stat(zipPath)).size;
  log(`archive: ${made.entries} entries (${made.png} PNG, ${made.jpeg} JPEG, ${opts.width}×${opts.height}, mean ${(made.meanBytes / 1e6).toFixed(2)} MB), ${(size / 1e9).toFixed(3)} GB, written in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  const services: { build: Build; service: Service }[] = [];
  const runs: Run[] = [];
  const warm: Record<string, { before: number; after: number }> = {};
  try {
    const env = { MAX_UPLOAD_BYTES: String(4 * 2 ** 30) };
    if (opts.baseline) services.push({ build: 'baseline', service: await startService('upload-baseline', { worker: false, env, root: opts.baseline }) });
    services.push({ build: 'current', service: await startService('upload', { worker: false, env: { ...env, DATASET_CHECK_IDLE_MS: '0', DATASET_CHECK_SPARE_MS: '60000' } }) });
    if (opts.variants) {
      services.push({ build: 'no spare', service: await startService('upload-nospare', { worker: false, env: { ...env, DATASET_CHECK_IDLE_MS: '0', DATASET_CHECK_SPARE_MS: '0' } }) });
      services.push({ build: 'warm', service: await startService('upload-warm', { worker: false, env: { ...env, DATASET_CHECK_IDLE_MS: '60000', DATASET_CHECK_SPARE_MS: '0' } }) });
    }
    for (const { build, service } of services) {
      const pid = service.api.pid!;
      const before = (await memoryOf(pid)).rss;
      await fetch(`${service.url}/v1/datasets`).then((r) => r.arrayBuffer());
      await new Promise((r) => setTimeout(r, 500));
      warm[build] = { before, after: (await memoryOf(pid)).rss };
      log(`${build}: warm-up GET /v1/datasets: API RSS ${(warm[build].before / MiB).toFixed(0)} → ${(warm[build].after / MiB).toFixed(0)} MiB`);
    }
    // First an image upload of the bundled sample (45 KB): the API's first image check bundles the check's code once per process.
    const uploads = [
      { label: 'the bundled sample (45 KB), the first image upload', path: SAMPLE, repeat: false },
      ...Array.from({ length: opts.sampleRuns }, (_, i) => ({ label: `the sample again (#${i + 2})`, path: SAMPLE, repeat: true })),
      ...Array.from({ length: opts.runs }, (_, i) => ({ label: `${(size / 1e9).toFixed(2)} GB${opts.runs > 1 ? ` #${i + 1}` : ''}`, path: zipPath, repeat: false })),
    ];
    for (const u of uploads) for (const { build, service } of services) runs.push(await measure(service, build, u.label, u.path, u.repeat));
  } finally {
    for (const { service } of services) await service.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const m = machine();
  const builds = services.map((s) => s.build);
  const bigOf = (b: Build) => runs.filter((r) => r.build === b && r.path !== SAMPLE);
  const worst = Math.max(...bigOf('current').map((r) => r.growthMiB));
  const met = worst * (MiB / 1e6) < TARGET_MB;
  const sampleRepeats = (b: Build) => runs.filter((r) => r.build === b && r.repeat).map((r) => r.seconds * 1000);
  const firstSample = (b: Build) => runs.find((r) => r.build === b && r.path === SAMPLE && !r.repeat)!;
  const row = (r: Run) =>
    `| ${r.label} | ${r.build} | ${r.status} | ${r.seconds.toFixed(1)} s | ${r.sendSeconds.toFixed(1)} s | ${r.mbPerS.toFixed(1)} | ${r.apiCpuSeconds.toFixed(1)} s | ${(r.before / MiB).toFixed(0)} → ${(r.peak / MiB).toFixed(0)} MiB | **+${r.growthMiB.toFixed(0)} MiB** | ${r.childPeak === null ? '— (in the API)' : `${mib(r.childPeak)} (sampled ${mib(r.childSampledPeak)})`} | ${fmtLoad(r.load)} |`;
  const sampleLine = builds
    .map((b) => {
      const xs = sampleRepeats(b);
      if (!xs.length) return '';
      return `${b}: the sample's upload after the first, ${xs.length} times: median **${median(xs).toFixed(0)} ms** (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)}); API RSS growth at most +${Math.max(...runs.filter((r) => r.build === b && r.repeat).map((r) => r.growthMiB)).toFixed(0)} MiB; the first upload ${(firstSample(b).seconds * 1000).toFixed(0)} ms.`;
    })
    .filter(Boolean);
  const ratios: string[] = [];
  if (opts.baseline) {
    const xs = sampleRepeats('current');
    const bs = sampleRepeats('baseline');
    if (xs.length && bs.length) ratios.push(`sample upload (median) ${(median(xs) / median(bs)).toFixed(2)}x the time`);
    for (const b of ['no spare', 'warm'] as const) {
      const ws = sampleRepeats(b);
      if (ws.length && bs.length) ratios.push(`${b}: ${(median(ws) / median(bs)).toFixed(2)}x`);
    }
    const big = bigOf('current');
    const bigBase = bigOf('baseline');
    big.forEach((r, i) => {
      const b = bigBase[i];
      if (b) ratios.push(`${r.label}: ${(r.seconds / b.seconds).toFixed(2)}x the time, API CPU ${b.apiCpuSeconds.toFixed(1)} → ${r.apiCpuSeconds.toFixed(1)} s, API RSS growth +${b.growthMiB.toFixed(0)} → +${r.growthMiB.toFixed(0)} MiB`);
    });
  }
  const markdown = [
    '## Upload: a 1 GB image dataset zip (`bench/upload.ts`)',
    '',
    '```',
    `npm run bench -- --only upload${opts.gb !== 1 ? ` --gb ${opts.gb}` : ''}${opts.runs !== 1 ? ` --runs ${opts.runs}` : ''}${opts.sampleRuns !== 5 ? ` --sample-runs ${opts.sampleRuns}` : ''}${opts.baseline ? ' --baseline <checkout of the commit before>' : ''}${opts.variants ? ' --variants' : ''}`,
    '```',
    '',
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Node ${m.node}. Load average after each upload below; ${fmtLoad(m.load)} at the end (a shared 2-core machine: other processes ran too, so times are inflated; the API's CPU time is not).`,
    '',
    `Archive: ${(size / 1e9).toFixed(3)} GB, ${made.entries} stored entries in 5 class folders: ${opts.width}×${opts.height} photo-like images (smooth colour fields plus noise), ${made.png} PNG and ${made.jpeg} JPEG (quality 90), mean ${(made.meanBytes / 1e6).toFixed(2)} MB; ${opts.pool} distinct images repeated under distinct names. Sent as one multipart request streamed from disk over loopback to the API in its own process (\`MAX_UPLOAD_BYTES\` raised to 4 GiB), which streams it to storage, then has every image inflated and decoded (current: in a child process; baseline: in a thread of the API) before answering 201. Memory: the API process' peak resident set (VmHWM, every thread; a child process is not counted in it) reset before each upload, minus its RSS then; cross-checked by sampling VmRSS every 20 ms. The check process' own peak is given apart: as it reported it (its getrusage maximum, in the API's log) and as sampled from /proc. Warm-up \`GET /v1/datasets\` first: ${builds.map((b) => `${b} API RSS ${(warm[b]!.before / MiB).toFixed(0)} → ${(warm[b]!.after / MiB).toFixed(0)} MiB`).join('; ')}.${opts.baseline ? ' Baseline: the API of a checkout of the commit before the change, beside this one, each upload measured on both back to back.' : ''}`,
    '',
    ...(opts.variants
      ? ['"current": as configured by default, a fresh check process per upload with a spare started ahead (`DATASET_CHECK_SPARE_MS=60000`); "no spare": the same without the spare (`DATASET_CHECK_SPARE_MS=0`); "warm": a used check process stays a minute for the next upload (`DATASET_CHECK_IDLE_MS=60000`).', '']
      : []),
    '| upload | build | answer | time | of which sending | MB/s | API CPU | API RSS before → peak | API growth | check process peak | load average after |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...runs.filter((r) => !r.repeat).map(row),
    '',
    ...sampleLine.map((l) => `- ${l}`),
    ...(ratios.length ? ['', `Current ÷ baseline (same run): ${ratios.join('; ')}.`] : []),
    '',
    `Target: API RSS growth < ${TARGET_MB} MB during the 1 GB upload — **${met ? 'met' : 'missed'}** (worst +${worst.toFixed(0)} MiB = ${(worst * MiB / 1e6).toFixed(0)} MB in the current build; the first image upload of the process, which bundles the check's code, grew it by +${firstSample('current').growthMiB.toFixed(0)} MiB). "Of which sending": until the request's last byte was handed to the socket; the rest is the check (every image decoded) and storing the row.`,
  ].join('\n');
  return { markdown, raw: { opts, size, made, warm, runs } };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await runUpload(parseUploadArgs(process.argv.slice(2)));
  console.log(out.markdown);
}

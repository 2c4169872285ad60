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
 * before each upload and read after it, cross-checked by sampling VmRSS every 20 ms. Before
 * measuring, the API answers one Postgres-reading request (Prisma loads its query compiler on the
 * first query, whatever the route).
 *
 *   npm run bench -- --only upload [--gb 1] [--runs 1] [--side 1024x768] [--pool 48]
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
import { cpuSecondsOf, memoryOf, startService } from './lib/service.ts';

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
}

export function parseUploadArgs(argv: string[]): UploadOptions {
  const at = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const [w, h] = (at('side') ?? '1024x768').split('x').map(Number);
  return { gb: Number(at('gb') ?? 1), runs: Number(at('runs') ?? 1), width: w!, height: h ?? w!, pool: Number(at('pool') ?? 48) };
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

interface Run {
  label: string;
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

export async function runUpload(opts: UploadOptions): Promise<{ markdown: string; raw: unknown }> {
  const dir = await mkdtemp(join(tmpdir(), 'graft-bench-upload-'));
  const zipPath = join(dir, 'photos.zip');
  let t = performance.now();
  const made = await writeDatasetZip(zipPath, opts.gb * 1e9, opts);
  const size = (await stat(zipPath)).size;
  log(`archive: ${made.entries} entries (${made.png} PNG, ${made.jpeg} JPEG, ${opts.width}×${opts.height}, mean ${(made.meanBytes / 1e6).toFixed(2)} MB), ${(size / 1e9).toFixed(3)} GB, written in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  const service = await startService('upload', { worker: false, env: { MAX_UPLOAD_BYTES: String(4 * 2 ** 30) } });
  const runs: Run[] = [];
  let warm = { before: 0, after: 0 };
  try {
    const pid = service.api.pid!;
    {
      const before = (await memoryOf(pid)).rss;
      await fetch(`${service.url}/v1/datasets`).then((r) => r.arrayBuffer());
      await new Promise((r) => setTimeout(r, 500));
      warm = { before, after: (await memoryOf(pid)).rss };
      log(`warm-up GET /v1/datasets: API RSS ${(warm.before / MiB).toFixed(0)} → ${(warm.after / MiB).toFixed(0)} MiB`);
    }
    // First an image upload of the bundled sample (45 KB): the API's first image check bundles the check thread's code once per process.
    const uploads = [{ label: 'the bundled sample (45 KB), the first image upload', path: SAMPLE }, ...Array.from({ length: opts.runs }, (_, i) => ({ label: `${(size / 1e9).toFixed(2)} GB${opts.runs > 1 ? ` #${i + 1}` : ''}`, path: zipPath }))];
    for (const { label, path } of uploads) {
      const bytes = (await stat(path)).size;
      await new Promise((r) => setTimeout(r, 1000)); // let the API settle (GC, the last check thread gone)
      await resetPeak(pid);
      const before = (await memoryOf(pid)).rss;
      let sampledPeak = before;
      const sampler = setInterval(() => void memoryOf(pid).then((m) => (sampledPeak = Math.max(sampledPeak, m.rss)), () => {}), 20);
      const cpu0 = await cpuSecondsOf(pid);
      t = performance.now();
      const res = await upload(service.url, path, bytes);
      const ms = performance.now() - t;
      clearInterval(sampler);
      const cpu = (await cpuSecondsOf(pid)) - cpu0;
      const { hwm, rss } = await memoryOf(pid);
      sampledPeak = Math.max(sampledPeak, rss);
      const peak = Math.max(hwm, sampledPeak);
      const body = JSON.parse(res.body) as { id?: string; imageCount?: number; error?: unknown };
      const run: Run = {
        label, path, bytes, seconds: ms / 1000, sendSeconds: (res.sentAt - t) / 1000, mbPerS: bytes / 1e6 / (ms / 1000), before, peak, growthMiB: (peak - before) / MiB, sampledPeak,
        apiCpuSeconds: cpu, load: machine().load, status: res.status, body: res.status === 201 ? { id: body.id, imageCount: body.imageCount } : body,
      };
      runs.push(run);
      log(`${label}: ${res.status} in ${run.seconds.toFixed(1)} s (sent in ${run.sendSeconds.toFixed(1)} s), ${run.mbPerS.toFixed(1)} MB/s; API RSS ${(before / MiB).toFixed(0)} → peak ${(peak / MiB).toFixed(0)} MiB (+${run.growthMiB.toFixed(0)} MiB; sampled peak ${(sampledPeak / MiB).toFixed(0)}), API CPU ${cpu.toFixed(1)} s, load ${fmtLoad(run.load)}`);
      if (res.status !== 201) throw new Error(`upload answered ${res.status}: ${res.body.slice(0, 500)}`);
      await fetch(`${service.url}/v1/datasets/${body.id}`, { method: 'DELETE' }); // free the stored GB before the next run
    }
  } finally {
    await service.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const m = machine();
  const big = runs.filter((r) => r.path !== SAMPLE);
  const worst = Math.max(...big.map((r) => r.growthMiB));
  const met = worst * (MiB / 1e6) < TARGET_MB;
  const markdown = [
    '## Upload: a 1 GB image dataset zip (`bench/upload.ts`)',
    '',
    '```',
    `npm run bench -- --only upload${opts.gb !== 1 ? ` --gb ${opts.gb}` : ''}${opts.runs !== 1 ? ` --runs ${opts.runs}` : ''}`,
    '```',
    '',
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Node ${m.node}. Load average after each upload below; ${fmtLoad(m.load)} at the end (a shared 2-core machine: other processes ran too, so times are inflated; the API's CPU time is not).`,
    '',
    `Archive: ${(size / 1e9).toFixed(3)} GB, ${made.entries} stored entries in 5 class folders: ${opts.width}×${opts.height} photo-like images (smooth colour fields plus noise), ${made.png} PNG and ${made.jpeg} JPEG (quality 90), mean ${(made.meanBytes / 1e6).toFixed(2)} MB; ${opts.pool} distinct images repeated under distinct names. Sent as one multipart request streamed from disk over loopback to the API in its own process (\`MAX_UPLOAD_BYTES\` raised to 4 GiB), which streams it to storage and then inflates and decodes every image in its check thread before answering 201. Memory: the API's peak resident set (VmHWM, every thread) reset before each upload, minus its RSS then; cross-checked by sampling VmRSS every 20 ms. Warm-up \`GET /v1/datasets\` first: API RSS ${(warm.before / MiB).toFixed(0)} → ${(warm.after / MiB).toFixed(0)} MiB.`,
    '',
    '| upload | answer | time | of which sending | MB/s | API CPU | API RSS before → peak | growth | load average after |',
    '|---|---|---|---|---|---|---|---|---|',
    ...runs.map((r) => `| ${r.label} | ${r.status} | ${r.seconds.toFixed(1)} s | ${r.sendSeconds.toFixed(1)} s | ${r.mbPerS.toFixed(1)} | ${r.apiCpuSeconds.toFixed(1)} s | ${(r.before / MiB).toFixed(0)} → ${(r.peak / MiB).toFixed(0)} MiB | **+${r.growthMiB.toFixed(0)} MiB** | ${fmtLoad(r.load)} |`),
    '',
    `Target: API RSS growth < ${TARGET_MB} MB during the 1 GB upload — **${met ? 'met' : 'missed'}** (worst +${worst.toFixed(0)} MiB = ${(worst * MiB / 1e6).toFixed(0)} MB; the first image upload of the process, which bundles and starts the check thread, grew it by +${runs[0]!.growthMiB.toFixed(0)} MiB). "Of which sending": until the request's last byte was handed to the socket; the rest is the check (every image decoded) and storing the row.`,
  ].join('\n');
  return { markdown, raw: { opts, size, made, warm, runs } };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await runUpload(parseUploadArgs(process.argv.slice(2)));
  console.log(out.markdown);
}

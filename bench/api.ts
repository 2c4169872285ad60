/**
 * The API's hot paths under load (autocannon on loopback, the client on the same machine):
 * `GET /healthz` (the process' ceiling), `GET /v1/fine-tunes/:id` at 50 connections and
 * `POST /v1/fine-tunes` at 20 and 50 connections (a distinct Idempotency-Key per request, as a
 * careful client sends), each as req/s, p50/p99 and its ratio to /healthz in the same run.
 * Twice: with the machine otherwise idle, and while a worker process trains a long bm_mnist_cnn job
 * on the same machine (the GET then reads that running job).
 *
 * The API runs as its own process (`apps/api/src/main.ts`, default settings: LOG_LEVEL info, logs to
 * /dev/null) on a database and Redis prefix of its own, created and removed by the suite.
 *
 *   node --import tsx bench/api.ts [--duration 10] [--no-training] [--routes healthz,get,post20,post50] [--profile <name> [--profile-baseline]] [--baseline <dir>]
 *   npm run bench -- --only api
 *
 * `--profile <name>` runs the API under `node --cpu-prof` and writes its flame graph as bench/<name>.svg
 * (the .cpuprofile itself stays in a temporary directory, named in the log). `--baseline <dir>` also
 * runs the API of another checkout of graft (set up with `node scripts/setup.mjs`, e.g. a worktree
 * of the commit before a change) and measures every route on both back to back: before/after
 * ratios under one load. `--profile-baseline` profiles that one instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { dropDatabase, prepareDatabase } from '@graft/db';
import { cpuProfileToSvg } from './lib/flamegraph.ts';
import { fmtLoad, machine, packageVersion } from './lib/machine.ts';
import { BENCH_DIR } from './lib/results.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SAMPLE = join(ROOT, 'samples/digits-5-9.zip');
const log = (msg: string) => console.error(`[bench:api] ${msg}`);

export interface ApiBenchOptions {
  /** Seconds of each measured run (each after a 2 s warm-up). */
  duration: number;
  training: boolean;
  profile?: string | undefined;
  /** Which runs: healthz (every ratio's denominator), get, post20, post50. */
  routes: string[];
  /** Another checkout of graft (set up) whose API is measured beside this one: before/after in one run. */
  baseline?: string | undefined;
  /** Which API `--profile` profiles (`--profile-baseline`: the baseline's). */
  profileBuild?: 'current' | 'baseline';
}

export function parseApiArgs(argv: string[]): ApiBenchOptions {
  const at = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const routes = (at('routes') ?? 'healthz,get,post20,post50').split(',');
  return { duration: Number(at('duration') ?? 10), training: !argv.includes('--no-training'), profile: at('profile'), routes, baseline: at('baseline'), profileBuild: argv.includes('--profile-baseline') ? 'baseline' : 'current' };
}

interface Figure {
  build: 'current' | 'baseline';
  name: string;
  connections: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  load: [number, number, number];
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function spawnNode(args: string[], env: NodeJS.ProcessEnv, cwd: string): { proc: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, output: () => err, exited };
}

async function stop(p: { proc: ChildProcess; exited: Promise<number | null> }, graceMs = 15_000) {
  if (p.proc.exitCode !== null) return;
  p.proc.kill('SIGTERM');
  const t = setTimeout(() => p.proc.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(t);
}

/** One autocannon run; `warmUp` runs first for 2 s and is not reported. */
async function cannon(
  name: string,
  url: string,
  opts: { connections: number; duration: number; method?: 'GET' | 'POST'; body?: string; idempotencyKeys?: boolean },
  at: { build: Figure['build']; variant: string },
): Promise<Figure> {
  let n = 0;
  const tag = Math.random().toString(36).slice(2, 8);
  const request = {
    method: opts.method ?? 'GET',
    ...(opts.body ? { body: opts.body, headers: { 'content-type': 'application/json' } } : {}),
    ...(opts.idempotencyKeys
      ? { setupRequest: (req: { headers?: Record<string, string> }) => ({ ...req, headers: { ...req.headers, 'idempotency-key': `bench-${tag}-${n++}` } }) }
      : {}),
  };
  const run = (duration: number) =>
    autocannon({ url, connections: opts.connections, duration, requests: [request] as autocannon.Request[] }) as unknown as Promise<autocannon.Result>;
  await run(2);
  const load = machine().load;
  const r = await run(opts.duration);
  const f: Figure = { build: at.build, name, connections: opts.connections, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts, load };
  log(`${at.variant} ${at.build}: ${name} (${opts.connections} conns): ${f.rps.toFixed(0)} req/s, p50 ${f.p50} ms, p99 ${f.p99} ms, non-2xx ${f.non2xx}, errors ${f.errors}, load ${fmtLoad(load)}`);
  return f;
}

interface Variant {
  label: 'idle' | 'training';
  figures: Figure[];
}

/** One API process on a database, Redis prefix and storage of its own, with a dataset and a job. */
interface Setup {
  build: 'current' | 'baseline';
  url: string;
  job: string;
  dataset: string;
  stop(): Promise<void>;
}

async function startSetup(build: Setup['build'], root: string, training: boolean, profileDir?: string): Promise<Setup> {
  const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`;
  const dbUrl = new URL(process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres');
  dbUrl.pathname = `/graft_bench_api_${run}`;
  const prefix = `graft-bench-api-${run}`;
  const storage = await mkdtemp(join(tmpdir(), 'graft-bench-api-'));
  const port = await freePort();
  const env = { DATABASE_URL: dbUrl.toString(), REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', QUEUE_PREFIX: prefix, STORAGE_DIR: storage };
  await prepareDatabase(env.DATABASE_URL, { migrate: true, dir: join(root, 'prisma/migrations') });
  const api = spawnNode([...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), '--import', 'tsx', join(root, 'apps/api/src/main.ts')], {
    ...env, PORT: String(port), HOST: '127.0.0.1', MIGRATE_ON_START: 'false', DASHBOARD_DIR: '',
    // The quota of active jobs stays on (its check and lock are part of every POST) but high enough
    // for the thousands of jobs a run queues; loopback, so no API keys and no rate limits.
    MAX_ACTIVE_JOBS_PER_TENANT: '10000000',
  }, root);
  let worker: ReturnType<typeof spawnNode> | undefined;
  const url = `http://127.0.0.1:${port}`;
  const stopAll = async () => {
    if (worker) await stop(worker);
    await stop(api);
    await dropDatabase(env.DATABASE_URL).catch((err: Error) => log(`could not drop ${env.DATABASE_URL}: ${err.message}`));
    const redis = new Redis(env.REDIS_URL);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
    await rm(storage, { recursive: true, force: true });
  };
  try {
    await Promise.race([
      waitFor('the API', async () => (await fetch(`${url}/healthz`)).ok, 60_000),
      api.exited.then((code) => { throw new Error(`the API exited with ${code}:\n${api.output()}`); }),
    ]);
    const form = new FormData();
    form.set('task', 'image-classification');
    form.set('file', new Blob([await readFile(SAMPLE)]), 'digits-5-9.zip');
    const ds = await fetch(`${url}/v1/datasets`, { method: 'POST', body: form });
    if (ds.status !== 201) throw new Error(`dataset upload answered ${ds.status}: ${await ds.text()}`);
    const dataset = ((await ds.json()) as { id: string }).id;
    const res = await fetch(`${url}/v1/fine-tunes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // With training, the GET target is the job being trained (a client polling it).
      body: JSON.stringify(training
        ? { baseModel: 'bm_mnist_cnn', dataset, seed: 1, earlyStopping: false, hyperparameters: { epochs: 500, batchSize: 2 } }
        : { baseModel: 'bm_mnist_cnn', dataset, hyperparameters: { epochs: 1 } }),
    });
    if (res.status !== 201) throw new Error(`POST /v1/fine-tunes answered ${res.status}: ${await res.text()}`);
    const job = ((await res.json()) as { id: string }).id;
    if (training) {
      worker = spawnNode(['--import', 'tsx', join(root, 'apps/worker/src/main.ts')], { ...env, LOG_LEVEL: 'warn', WORKER_METRICS_PORT: '0' }, root);
      await waitFor('the job to train its first epoch', async () => {
        const j = (await (await fetch(`${url}/v1/fine-tunes/${job}`)).json()) as { status: string; progress: { epoch: number } };
        if (j.status !== 'queued' && j.status !== 'running') throw new Error(`the training job is ${j.status}`);
        return j.status === 'running' && j.progress.epoch >= 1;
      }, 300_000);
      log(`${build}: a worker trains bm_mnist_cnn (500 head epochs, batch 2) on this machine`);
    }
    return { build, url, job, dataset, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * The runs of one variant. With a baseline (another checkout of graft, set up), its API runs beside
 * this one on its own database and each route is measured on both, one after the other, so the
 * before/after ratio is taken under the same load.
 */
async function runVariant(label: Variant['label'], opts: ApiBenchOptions, profileDir?: string): Promise<Variant> {
  const setups: Setup[] = [];
  try {
    const profiled = (build: Setup['build']) => ((opts.profileBuild ?? 'current') === build ? profileDir : undefined);
    if (opts.baseline) setups.push(await startSetup('baseline', opts.baseline, false, profiled('baseline')));
    setups.push(await startSetup('current', ROOT, label === 'training', profiled('current')));
    const figures: Figure[] = [];
    const d = opts.duration;
    for (const route of opts.routes) {
      for (const s of setups) {
        const body = JSON.stringify({ baseModel: 'bm_mnist_cnn', dataset: s.dataset, hyperparameters: { epochs: 1 } });
        const at = { build: s.build, variant: label };
        if (route === 'healthz') figures.push(await cannon('GET /healthz', `${s.url}/healthz`, { connections: 50, duration: d }, at));
        else if (route === 'get') figures.push(await cannon('GET /v1/fine-tunes/:id', `${s.url}/v1/fine-tunes/${s.job}`, { connections: 50, duration: d }, at));
        else if (/^post\d+$/.test(route)) {
          figures.push(await cannon('POST /v1/fine-tunes', `${s.url}/v1/fine-tunes`, { connections: Number(route.slice(4)), duration: d, method: 'POST', body, idempotencyKeys: true }, at));
        } else throw new Error(`unknown route "${route}" (healthz, get, post<connections>)`);
      }
    }
    if (label === 'training') {
      const current = setups.at(-1)!;
      const j = (await (await fetch(`${current.url}/v1/fine-tunes/${current.job}`)).json()) as { status: string };
      if (j.status !== 'running') throw new Error(`the training job ended (${j.status}) before the measurements did`);
    }
    return { label, figures };
  } finally {
    for (const s of setups) await s.stop();
  }
}

const TARGETS: Record<string, { rps: number; p99: number }> = {
  'GET /v1/fine-tunes/:id@50': { rps: 5_000, p99: 10 },
  'POST /v1/fine-tunes@20': { rps: 1_000, p99: 50 },
  'POST /v1/fine-tunes@50': { rps: 1_000, p99: 50 },
};

export async function runApi(opts: ApiBenchOptions): Promise<{ markdown: string; raw: unknown }> {
  const m = machine();
  const variants: Variant[] = [];
  const profileDir = opts.profile ? await mkdtemp(join(tmpdir(), 'graft-bench-api-prof-')) : undefined;
  variants.push(await runVariant('idle', opts, profileDir));
  if (opts.training) variants.push(await runVariant('training', opts));
  if (profileDir) {
    // The main thread's profile (prediction threads write their own, smaller ones).
    const file = (await readdir(profileDir)).filter((f) => f.endsWith('.cpuprofile')).sort()[0];
    if (!file) throw new Error(`no CPU profile in ${profileDir}`);
    const svg = cpuProfileToSvg(JSON.parse(await readFile(join(profileDir, file), 'utf8')), { title: `API under load (${opts.profile}): ${opts.routes.join(', ')}` });
    const out = join(BENCH_DIR, `${opts.profile}.svg`);
    await writeFile(out, svg);
    log(`flame graph: ${out} (profile ${join(profileDir, file)})`);
  }
  const verdicts: string[] = [];
  const rows: string[] = [];
  const speedups: string[] = [];
  for (const v of variants) {
    for (const f of v.figures) {
      const healthz = v.figures.find((h) => h.name === 'GET /healthz' && h.build === f.build)?.rps ?? Number.NaN;
      const target = f.build === 'current' ? TARGETS[`${f.name}@${f.connections}`] : undefined;
      let verdict = '';
      if (target) {
        const met = f.rps >= target.rps && f.p99 < target.p99 && f.non2xx === 0 && f.errors === 0;
        verdict = `${met ? 'met' : '**missed**'} (≥ ${target.rps.toLocaleString('en')} req/s, p99 < ${target.p99} ms)`;
        verdicts.push(`${f.name} @${f.connections}, ${v.label}: ${met ? 'met' : 'missed'}`);
      }
      const before = f.build === 'current' ? v.figures.find((b) => b.build === 'baseline' && b.name === f.name && b.connections === f.connections) : undefined;
      // A baseline that answered nothing in its run has no ratio (said as such, not as Infinity).
      if (before) speedups.push(`${f.name} @${f.connections} (${v.label}) ${before.rps > 0 ? `${(f.rps / before.rps).toFixed(2)}x` : 'n/a (baseline answered none)'} req/s, p99 ${before.p99} → ${f.p99} ms`);
      rows.push(`| ${v.label} | ${f.build} | \`${f.name}\` | ${f.connections} | ${f.rps.toFixed(0)} | ${f.p50} | ${f.p99} | ${(f.rps / healthz).toFixed(3)} | ${f.non2xx + f.errors} | ${fmtLoad(f.load)} | ${verdict} |`);
    }
  }
  const markdown = [
    `## API hot path (\`npm run bench -- --only api\`)`,
    '',
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Node ${m.node}, autocannon ${packageVersion('autocannon')}, fastify ${packageVersion('fastify')}. ` +
      `Client (autocannon) and API on the same machine over loopback (AUTH none, no rate limits); ${opts.duration} s per run after a 2 s warm-up; POSTs carry a distinct Idempotency-Key each; ` +
      `the active-jobs quota is on but set to 10,000,000 (each POST still checks it: since the striped counters, by locking one of its tenant's 16 counter stripes, far from the limit; with the single counter row before them, by locking that row; before the counters, by taking an advisory lock and counting the tenant's queued jobs, which the run piles up by thousands). ` +
      `"training": a worker process trains bm_mnist_cnn (500 head epochs, batch 2) meanwhile and the current build's GET reads that running job. ` +
      (opts.baseline ? `"baseline": the API of another checkout (\`--baseline <dir>\`) beside this one, each route measured on both back to back. ` : '') +
      'Load average (1/5/15 min) taken just before each run; ÷ /healthz is against the same build in the same variant.',
    '',
    '| machine | build | route | conns | req/s | p50 ms | p99 ms | ÷ /healthz | failed | load | target |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---|---|',
    ...rows,
    '',
    ...(speedups.length ? [`After ÷ before (same run): ${speedups.join('; ')}.`, ''] : []),
    `Verdict: ${verdicts.join('; ')}.`,
  ].join('\n');
  return { markdown, raw: { machine: m, options: opts, variants } };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { markdown } = await runApi(parseApiArgs(process.argv.slice(2)));
  console.log(markdown);
}

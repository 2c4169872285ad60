/**
 * graft as a user runs it, for the end-to-end suites: the API (`apps/api/src/main.ts`) and, when
 * asked, a worker (`apps/worker/src/main.ts`), each in its own process, on a database, Redis prefix
 * and storage directory of their own (all removed by `stop`). The API's pid is exposed so a suite
 * can read its memory from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropDatabase } from '@graft/db';
import { Redis } from 'ioredis';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Service {
  url: string;
  api: ChildProcess;
  worker: ChildProcess | null;
  /** Where the API and worker keep datasets, models and caches. */
  storageDir: string;
  /** Everything both processes logged so far. */
  logs(): string;
  stop(): Promise<void>;
}

function startProcess(entry: string, env: Record<string, string>, sink: (s: string) => void, root = ROOT): ChildProcess {
  const proc = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => sink(d.toString()));
  proc.stderr!.on('data', (d: Buffer) => sink(d.toString()));
  return proc;
}

async function until(what: string, ok: () => boolean | Promise<boolean>, proc: ChildProcess, logs: () => string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (proc.exitCode !== null) throw new Error(`${what}: the process exited with ${proc.exitCode}\n${logs().slice(-4000)}`);
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms\n${logs().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const stopProcess = async (proc: ChildProcess | null) => {
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
};

/** `root`: another checkout of graft (set up) whose API and worker run instead of this one's (a baseline). */
export async function startService(name: string, opts: { worker: boolean; env?: Record<string, string>; root?: string }): Promise<Service> {
  const storageDir = await mkdtemp(join(tmpdir(), `graft-bench-${name}-`));
  const db = new URL(process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres');
  db.pathname = `/graft_bench_${name.replace(/\W/g, '_')}_${Date.now().toString(36)}`;
  const port = 30_000 + Math.floor(Math.random() * 20_000);
  const prefix = `graft-bench-${name}-${port}`;
  const env = {
    DATABASE_URL: db.toString(),
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    QUEUE_PREFIX: prefix,
    STORAGE_DIR: storageDir,
    LOG_LEVEL: 'info',
    ...opts.env,
  };
  let out = '';
  const sink = (s: string) => {
    out += s;
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
  };
  const logs = () => out;
  const url = `http://127.0.0.1:${port}`;
  const api = startProcess('apps/api/src/main.ts', { ...env, PORT: String(port) }, sink, opts.root);
  let worker: ChildProcess | null = null;
  const stop = async () => {
    await stopProcess(worker);
    await stopProcess(api);
    await dropDatabase(db.toString()).catch(() => undefined);
    const redis = new Redis(env.REDIS_URL);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
    await rm(storageDir, { recursive: true, force: true });
  };
  try {
    await until('the API to answer /healthz', () => fetch(`${url}/healthz`).then((r) => r.ok, () => false), api, logs);
    if (opts.worker) {
      worker = startProcess('apps/worker/src/main.ts', { ...env, WORKER_METRICS_PORT: '0' }, sink, opts.root);
      await until('the worker to be ready', () => out.includes('"worker ready"'), worker, logs);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, api, worker, storageDir, logs, stop };
}

/** A process's resident set size now and its peak so far (VmHWM), bytes. */
export async function memoryOf(pid: number): Promise<{ rss: number; hwm: number }> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** CPU seconds (user + system, all threads) the process has used. */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The pids of a process's children (every thread's), from /proc. */
export async function childrenOf(pid: number): Promise<number[]> {
  const { readdir } = await import('node:fs/promises');
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const lists = await Promise.all(tasks.map((t) => readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '')));
  return lists.flatMap((l) => l.split(' ').filter(Boolean).map(Number));
}

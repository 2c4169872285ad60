/** The real API (in this process, on a real port) and real worker processes for end-to-end tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../../apps/api/src/app.ts';
import { loadApiConfig } from '../../apps/api/src/config.ts';
import type { TestEnv } from './env.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export async function startApi(env: TestEnv, extra: Record<string, string> = {}) {
  const config = loadApiConfig({ ...env, PORT: '0', ...extra });
  const app = await buildApp(config, { logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { app, url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface WorkerProcess {
  proc: ChildProcess;
  output: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/** Spawns `apps/worker/src/main.ts` and resolves once it logs that it is ready. */
export async function startWorker(env: TestEnv, extra: Record<string, string> = {}): Promise<WorkerProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'apps/worker/src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env, LOG_LEVEL: 'info', WORKER_SHUTDOWN_GRACE_MS: '2000', WORKER_METRICS_PORT: '0', ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  await Promise.race([
    waitFor('the worker to be ready', async () => out.includes('"worker ready"'), 60_000),
    exited.then((code) => {
      throw new Error(`worker exited with ${code} before it was ready:\n${out}`);
    }),
  ]).catch((err) => {
    proc.kill('SIGKILL'); // never leave a worker behind that no test will stop
    throw err;
  });
  return {
    proc,
    output: () => out,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/**
 * What the fault suites share: a Postgres and a Redis of the suite's own (so they can be stopped,
 * frozen and wiped without touching anything else), migrated; the API in its own process on them,
 * with the suite's bounds; the bundled sample uploaded; worker processes started by name and all
 * killed at the end.
 */
import { ensureDatabase, migrate } from '@graft/db';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestEnv } from '../helpers/env.ts';
import { startApi, startWorker, type WorkerProcess } from '../helpers/processes.ts';
import { TestPostgres, TestRedis } from './services.ts';

const SAMPLE = fileURLToPath(new URL('../../samples/digits-5-9.zip', import.meta.url));
const MIGRATIONS = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

export interface Answer {
  status: number;
  body: Record<string, any>;
  headers: Headers;
  /** How long the answer took. */
  ms: number;
}

export class FaultStack {
  readonly pg = new TestPostgres();
  readonly redis = new TestRedis();
  /** Every worker started and not yet stopped by the suite (killed by `destroy`). */
  readonly workers: WorkerProcess[] = [];
  env!: TestEnv;
  api!: Awaited<ReturnType<typeof startApi>>;
  /** The bundled sample (digits 5-9), uploaded once. */
  datasetId!: string;
  private storageDir = '';

  /** `name`: the queue prefix and temporary directory's; `bounds`: env for the API and every worker. */
  constructor(
    private readonly name: string,
    private readonly bounds: Record<string, string>,
  ) {}

  async start(): Promise<void> {
    await this.pg.init();
    await this.redis.init();
    await ensureDatabase(this.pg.url);
    await migrate(this.pg.url, MIGRATIONS);
    this.storageDir = mkdtempSync(join(tmpdir(), `graft-${this.name}-`));
    this.env = { DATABASE_URL: this.pg.url, REDIS_URL: this.redis.url, QUEUE_PREFIX: `graft-${this.name}`, STORAGE_DIR: this.storageDir, LOG_LEVEL: 'silent' };
    this.api = await startApi(this.env, this.bounds);
    const form = new FormData();
    form.set('task', 'image-classification');
    form.set('file', new Blob([await readFile(SAMPLE)]), 'digits.zip');
    const res = await fetch(`${this.api.url}/v1/datasets`, { method: 'POST', body: form });
    const body = (await res.json()) as { id: string };
    assert.equal(res.status, 201, JSON.stringify(body));
    this.datasetId = body.id;
  }

  async destroy(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop('SIGKILL')));
    await this.api?.close().catch(() => {});
    await this.pg.destroy();
    await this.redis.destroy();
    if (this.storageDir) rmSync(this.storageDir, { recursive: true, force: true });
  }

  /** A JSON call to the API, bounded at 30 s. */
  call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    const started = Date.now();
    const res = await fetch(`${this.api.url}${path}`, {
      method,
      headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
    const json = (await res.json()) as Record<string, any>;
    return { status: res.status, body: json, headers: res.headers, ms: Date.now() - started };
  };

  /** A worker process named `name` on the suite's bounds plus `extra`. */
  newWorker = async (name: string, extra: Record<string, string> = {}): Promise<WorkerProcess> => {
    const w = await startWorker(this.env, { ...this.bounds, WORKER_ID: name, ...extra });
    this.workers.push(w);
    return w;
  };

  /** Stops one worker and forgets it; its exit code. */
  stopWorker = async (w: WorkerProcess, signal: NodeJS.Signals): Promise<number | null> => {
    const code = await w.stop(signal);
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
    return code;
  };
}

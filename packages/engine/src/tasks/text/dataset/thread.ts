/**
 * Runs `checkTextDataset` in worker threads, so that reading, checking and hashing a large file
 * never blocks the caller's event loop (the API's). A small pool: a thread is started on demand,
 * runs one check at a time, and is ended after `idleMs` without work; more checks than threads
 * wait their turn. A GraftError thrown in a thread is thrown again here with its code, message
 * and param.
 *
 * The thread starts from the bundle of `util/bundled-thread.ts` (plain JavaScript, about 16 MB and a
 * quarter of a second, where tsx in the thread cost about 150 MB and seconds: bench/RESULTS.md).
 */
import { GraftError, type ErrorCode } from '@graft/contracts';
import type { Worker } from 'node:worker_threads';
import { startThread, threadScript, type ThreadScript } from '../../../util/bundled-thread.ts';
import type { CheckTextDatasetOptions, TextDatasetReport } from './check.ts';
import type { TokenizerSpec } from './token-counter.ts';

export interface ThreadCheckRequest extends Omit<CheckTextDatasetOptions, 'tokenCounter'> {
  tokenizer: TokenizerSpec | null;
}

export type ThreadAnswer =
  | { ok: true; report: TextDatasetReport }
  | { ok: false; error: { code: ErrorCode; message: string; param?: string | undefined } }
  | { ok: false; unexpected: string };

const ENTRY = new URL(`./thread-entry${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** Heap bounds of a check thread: its working set is a few numbers per row (tens of MB at the row limit). */
const RESOURCE_LIMITS = { maxOldGenerationSizeMb: 512, maxYoungGenerationSizeMb: 8 };

interface Job {
  req: ThreadCheckRequest;
  resolve: (r: TextDatasetReport) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
  idleTimer: NodeJS.Timeout | null;
}

export class TextCheckPool {
  private readonly slots = new Set<Slot>();
  private readonly waiting: Job[] = [];
  private closed = false;
  private script: ThreadScript | null = null;

  constructor(private readonly opts: { maxThreads?: number; idleMs?: number } = {}) {}

  get threads(): number {
    return this.slots.size;
  }

  async check(req: ThreadCheckRequest): Promise<TextDatasetReport> {
    this.script ??= await threadScript(ENTRY);
    if (this.closed) throw new Error('the text check pool is closed');
    return new Promise((resolve, reject) => {
      this.waiting.push({ req, resolve, reject });
      this.dispatch();
    });
  }

  /** Ends every thread; checks still running are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.reject(new Error('the text check pool is closed'));
    await Promise.all([...this.slots].map((s) => this.drop(s, new Error('the text check pool is closed'))));
  }

  private dispatch(): void {
    while (this.waiting.length) {
      let slot = [...this.slots].find((s) => !s.job);
      if (!slot) {
        if (this.slots.size >= (this.opts.maxThreads ?? 2)) return;
        slot = this.spawn();
      }
      const job = this.waiting.shift()!;
      if (slot.idleTimer) clearTimeout(slot.idleTimer);
      slot.idleTimer = null;
      slot.job = job;
      slot.worker.ref();
      slot.worker.postMessage(job.req);
    }
  }

  private spawn(): Slot {
    const slot: Slot = { worker: startThread(this.script!, { resourceLimits: RESOURCE_LIMITS }), job: null, idleTimer: null };
    this.slots.add(slot);
    slot.worker.on('message', (m: ThreadAnswer) => {
      const job = slot.job;
      slot.job = null;
      slot.worker.unref(); // an idle thread never keeps the process alive
      slot.idleTimer = setTimeout(() => void this.drop(slot, null), this.opts.idleMs ?? 60_000).unref();
      if (job) {
        if (m.ok) job.resolve(m.report);
        else if ('error' in m) job.reject(new GraftError(m.error.code, m.error.message, m.error.param));
        else job.reject(new Error(`text dataset check failed: ${m.unexpected}`));
      }
      this.dispatch();
    });
    slot.worker.on('error', (err) => void this.drop(slot, err));
    slot.worker.on('exit', (code) => void this.drop(slot, new Error(`text dataset check thread exited (${code}) during a check`)));
    return slot;
  }

  private async drop(slot: Slot, err: unknown): Promise<void> {
    if (!this.slots.delete(slot)) return;
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    const job = slot.job;
    slot.job = null;
    if (job) job.reject(err ?? new Error('text dataset check thread ended'));
    await slot.worker.terminate();
    if (!this.closed) this.dispatch();
  }
}

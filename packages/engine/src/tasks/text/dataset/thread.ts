/**
 * Runs `checkTextDataset` in worker threads, so that reading, checking and hashing a large file
 * never blocks the caller's event loop (the API's). A small pool: a thread is started on demand,
 * runs one check at a time, and is ended after `idleMs` without work; more checks than threads
 * wait their turn. A GraftError thrown in a thread is thrown again here with its code, message
 * and param.
 *
 * The thread runs plain JavaScript: from TypeScript sources, its code is bundled once per process
 * by esbuild (the compiler tsx itself uses) into one file under the temporary directory. Loading
 * the sources through tsx inside the thread instead costs a second module loader: about 150 MB and
 * seconds per thread, against about 16 MB and a quarter of a second (bench/RESULTS.md). Should
 * esbuild be unavailable, the thread loads the sources through tsx.
 */
import { GraftError, type ErrorCode } from '@graft/contracts';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { CheckTextDatasetOptions, TextDatasetReport } from './check.ts';
import type { TokenizerSpec } from './token-counter.ts';

export interface ThreadCheckRequest extends Omit<CheckTextDatasetOptions, 'tokenCounter'> {
  tokenizer: TokenizerSpec | null;
}

export type ThreadAnswer =
  | { ok: true; report: TextDatasetReport }
  | { ok: false; error: { code: ErrorCode; message: string; param?: string | undefined } }
  | { ok: false; unexpected: string };

const FROM_SOURCES = import.meta.url.endsWith('.ts');
const ENTRY = new URL(`./thread-entry${FROM_SOURCES ? '.ts' : '.js'}`, import.meta.url);

/** Heap bounds of a check thread: its working set is a few numbers per row (tens of MB at the row limit). */
const RESOURCE_LIMITS = { maxOldGenerationSizeMb: 512, maxYoungGenerationSizeMb: 8 };

/** How a thread is started: a plain JavaScript file, or the TypeScript entry through tsx. */
type ThreadScript = { kind: 'js'; url: URL } | { kind: 'tsx'; url: URL };

let script: Promise<ThreadScript> | null = null;

/** The thread's code as one JavaScript file (bundled from the sources once per process), else the tsx way. */
function threadScript(): Promise<ThreadScript> {
  script ??= (async (): Promise<ThreadScript> => {
    if (!FROM_SOURCES) return { kind: 'js', url: ENTRY };
    try {
      const esbuild = await import('esbuild');
      const built = await esbuild.build({
        entryPoints: [fileURLToPath(ENTRY)],
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        write: false,
        outfile: 'text-check.mjs',
        logLevel: 'silent',
        // Bundled CommonJS dependencies (yauzl) call require() for Node's own modules.
        banner: { js: "import { createRequire as __graftCreateRequire } from 'node:module'; const require = __graftCreateRequire(import.meta.url);" },
      });
      const code = built.outputFiles[0]!.contents;
      // Named by content: processes running the same sources share the file; a change makes a new one.
      const path = join(tmpdir(), `graft-text-check-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
      if (!existsSync(path)) {
        const partial = `${path}.${process.pid}.tmp`;
        await writeFile(partial, code);
        await rename(partial, path);
      }
      return { kind: 'js', url: pathToFileURL(path) };
    } catch {
      return { kind: 'tsx', url: ENTRY };
    }
  })();
  return script;
}

function startWorker(s: ThreadScript): Worker {
  // Nothing of the parent's command line (its --import tsx would start a module loader the thread does not need).
  const options = { resourceLimits: RESOURCE_LIMITS, execArgv: [] };
  if (s.kind === 'js') return new Worker(s.url, options);
  const boot = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(s.url.href)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), options);
}

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
    this.script ??= await threadScript();
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
    const slot: Slot = { worker: startWorker(this.script!), job: null, idleTimer: null };
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

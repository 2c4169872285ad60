/**
 * Tasks run in child processes: the dataset checks of the API (inflate and decode every image of an
 * archive, parse and hash every row of a text file). A child process, unlike a worker thread, keeps
 * its memory out of the API's: what a decoder allocates, and what the allocator keeps after it is
 * freed, goes when the child ends. It is also a sandbox: a hostile file that crashes a decoder, runs
 * away with memory or never ends kills the child, never the API.
 *
 * A pool starts children on demand (at most `maxChildren` at once; more tasks wait in arrival order),
 * each running one task at a time and ended after `idleMs` without work (0: after each task, with a
 * spare started ahead for the next one when `spareMs` is set). Each
 * task is bounded: V8's old space (`--max-old-space-size`), the child's resident set (read from /proc
 * on Linux, which also bounds the array buffers V8 does not count), and time; a child past a bound, or
 * whose task's AbortSignal fires, is killed and the task rejected once it has exited (so the files it
 * was writing are closed). A GraftError thrown in the child is thrown again here with its code,
 * message and param.
 *
 * The child runs the entry's bundle (`bundled-thread.ts`: one plain JavaScript file built by esbuild
 * once per process), else the TypeScript entry through tsx. Nothing of the parent's command line is
 * passed on. The entry serves its task with `serveChildTasks`.
 */
import { GraftError, type ErrorCode } from '@graft/contracts';
import { fork, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { threadScript, type ThreadScript } from './bundled-thread.ts';

type Answer<T> =
  | { ok: true; value: T; peakRssBytes: number }
  | { ok: false; error: { code: ErrorCode; message: string; param?: string | undefined }; peakRssBytes: number }
  | { ok: false; unexpected: string; peakRssBytes: number };

/** A child's first message: it is listening. */
type Ready = { ready: true };

export interface ChildTaskLimits {
  /** V8's old-space bound in the child (`--max-old-space-size`). */
  maxOldSpaceMb: number;
  /** The child's resident set bound, all memory counted (Linux; checked every `rssCheckMs`). */
  maxRssMb: number;
  /** Time limit of one task, from the moment a child takes it. */
  timeoutMs: number;
}

export interface ChildTaskPoolOptions extends ChildTaskLimits {
  /** What the tasks are, for messages ("image dataset check"). */
  name: string;
  maxChildren: number;
  /** A child without work ends after this long; 0: after each task. */
  idleMs: number;
  /**
   * With `idleMs` 0: a child is started ahead of need and kept this long for the next task, so a task
   * gets a process that has run nothing before without waiting for its start (0: none).
   */
  spareMs?: number;
  rssCheckMs?: number;
}

/** How one task went, for the caller's log. */
export interface ChildTaskReport {
  ms: number;
  /** The child's peak resident set over its life so far (its own figure; undefined when it did not answer). */
  childPeakRssBytes: number | undefined;
  /** The task waited for its child to start (no warm or spare child was ready). */
  coldStart: boolean;
  outcome: 'answered' | 'failed' | 'timeout' | 'memory' | 'aborted' | 'crashed';
}

/** A task stopped by a bound: the check did not finish (the answer, a 422, says which bound). */
export class ChildTaskStopped extends GraftError {
  constructor(
    readonly reason: 'timeout' | 'memory' | 'crashed',
    message: string,
    readonly detail: string,
  ) {
    super('dataset_check_failed', message);
  }
}

/** The task's AbortSignal fired: the client went away. */
export class ChildTaskAborted extends Error {
  constructor(name: string) {
    super(`${name} aborted: the request was abandoned`);
    this.name = 'AbortError';
  }
}

interface Job<Req, T> {
  req: Req;
  signal: AbortSignal | undefined;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
  onReport: ((r: ChildTaskReport) => void) | undefined;
  cancelWait: () => void;
}

interface Child<Req, T> {
  proc: ChildProcess;
  ready: boolean;
  /** The running task found the child not yet started. */
  cold: boolean;
  job: Job<Req, T> | null;
  started: number;
  stop: ChildTaskReport['outcome'] | null;
  stderr: string;
  idleTimer: NodeJS.Timeout | null;
  taskTimer: NodeJS.Timeout | null;
  rssTimer: NodeJS.Timeout | null;
  onAbort: (() => void) | null;
}

const TSX = (() => {
  try {
    return import.meta.resolve('tsx');
  } catch {
    return null;
  }
})();

/** Resident set of a process from /proc (Linux), bytes; null elsewhere or once it is gone. */
async function rssOf(pid: number): Promise<number | null> {
  try {
    const statm = await readFile(`/proc/${pid}/statm`, 'utf8');
    return Number(statm.split(' ')[1]) * 4096;
  } catch {
    return null;
  }
}

export class ChildTaskPool<Req, T> {
  private readonly children = new Set<Child<Req, T>>();
  private readonly waiting: Job<Req, T>[] = [];
  private closed = false;
  private script: Promise<ThreadScript> | null = null;

  constructor(
    private readonly entry: URL,
    private readonly opts: ChildTaskPoolOptions,
  ) {}

  /** Children alive now (working or idle). */
  get size(): number {
    return this.children.size;
  }

  get stats() {
    return { children: this.children.size, busy: [...this.children].filter((c) => c.job).length, waiting: this.waiting.length };
  }

  async run(req: Req, opts: { signal?: AbortSignal | undefined; onReport?: (r: ChildTaskReport) => void } = {}): Promise<T> {
    this.script ??= threadScript(this.entry);
    const script = await this.script;
    if (this.closed) throw new Error(`the ${this.opts.name} pool is closed`);
    const { signal } = opts;
    if (signal?.aborted) throw new ChildTaskAborted(this.opts.name);
    return new Promise<T>((resolve, reject) => {
      const job: Job<Req, T> = { req, signal, resolve, reject, onReport: opts.onReport, cancelWait: () => {} };
      if (signal) {
        // While waiting for a child, an abandoned request just leaves the queue.
        const leave = () => {
          const i = this.waiting.indexOf(job);
          if (i >= 0) {
            this.waiting.splice(i, 1);
            reject(new ChildTaskAborted(this.opts.name));
          }
        };
        signal.addEventListener('abort', leave, { once: true });
        job.cancelWait = () => signal.removeEventListener('abort', leave);
      }
      this.waiting.push(job);
      this.dispatch(script);
    });
  }

  /** Ends every child; tasks still running or waiting are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.reject(new Error(`the ${this.opts.name} pool is closed`));
    await Promise.all([...this.children].map((c) => this.kill(c, null)));
  }

  private dispatch(script: ThreadScript): void {
    while (this.waiting.length && !this.closed) {
      let child = [...this.children].find((c) => !c.job && c.stop === null);
      if (!child) {
        if (this.children.size >= this.opts.maxChildren) return;
        child = this.spawn(script);
      }
      const job = this.waiting.shift()!;
      job.cancelWait();
      this.assign(child, job);
    }
    this.startSpare(script);
  }

  private spawn(script: ThreadScript): Child<Req, T> {
    const execArgv = [`--max-old-space-size=${this.opts.maxOldSpaceMb}`];
    if (script.kind === 'tsx') {
      if (!TSX) throw new Error('neither esbuild nor tsx is installed: cannot start a check process');
      execArgv.push('--import', TSX);
    }
    const proc = fork(fileURLToPath(script.url), [], { execArgv, serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const child: Child<Req, T> = { proc, ready: false, cold: true, job: null, started: 0, stop: null, stderr: '', idleTimer: null, taskTimer: null, rssTimer: null, onAbort: null };
    this.children.add(child);
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => (child.stderr = (child.stderr + d).slice(-4000)));
    proc.on('message', (m: Answer<T> | Ready) => this.onMessage(child, m));
    proc.on('error', (err) => {
      child.stderr += `\n${err.message}`;
      void this.kill(child, 'crashed');
    });
    proc.on('exit', (code, signal) => this.onExit(child, code, signal));
    return child;
  }

  private assign(child: Child<Req, T>, job: Job<Req, T>): void {
    if (child.idleTimer) clearTimeout(child.idleTimer);
    child.idleTimer = null;
    child.job = job;
    child.cold = !child.ready;
    child.started = performance.now();
    child.proc.ref();
    child.proc.channel?.ref();
    child.taskTimer = setTimeout(() => void this.kill(child, 'timeout'), this.opts.timeoutMs);
    const pid = child.proc.pid;
    if (pid !== undefined) {
      const every = this.opts.rssCheckMs ?? 200;
      const maxBytes = this.opts.maxRssMb * 2 ** 20;
      child.rssTimer = setInterval(() => {
        void rssOf(pid).then((rss) => {
          if (rss !== null && rss > maxBytes && child.job === job) void this.kill(child, 'memory');
        });
      }, every);
    }
    if (job.signal) {
      child.onAbort = () => void this.kill(child, 'aborted');
      job.signal.addEventListener('abort', child.onAbort, { once: true });
    }
    if (child.ready) child.proc.send(job.req as never);
  }

  private onMessage(child: Child<Req, T>, m: Answer<T> | Ready): void {
    if ('ready' in m) {
      child.ready = true;
      if (child.job && child.stop === null) child.proc.send(child.job.req as never);
      return;
    }
    const job = child.job;
    if (!job || child.stop !== null) return;
    this.release(child);
    const report = (outcome: ChildTaskReport['outcome']) =>
      job.onReport?.({ ms: performance.now() - child.started, childPeakRssBytes: m.peakRssBytes, coldStart: child.cold, outcome });
    if (m.ok) {
      report('answered');
      job.resolve(m.value);
    } else {
      report('failed');
      job.reject('error' in m ? new GraftError(m.error.code, m.error.message, m.error.param) : new Error(`${this.opts.name} failed: ${m.unexpected}`));
    }
    if (this.opts.idleMs <= 0 || this.closed) void this.kill(child, null);
    else {
      child.proc.unref(); // an idle child never keeps the process alive
      child.proc.channel?.unref();
      child.idleTimer = setTimeout(() => void this.kill(child, null), this.opts.idleMs);
      child.idleTimer.unref();
    }
    void this.script?.then((s) => this.dispatch(s));
  }

  /** Clears what belongs to the running task. */
  private release(child: Child<Req, T>): void {
    if (child.taskTimer) clearTimeout(child.taskTimer);
    if (child.rssTimer) clearInterval(child.rssTimer);
    child.taskTimer = child.rssTimer = null;
    if (child.onAbort) child.job?.signal?.removeEventListener('abort', child.onAbort);
    child.onAbort = null;
    child.job = null;
  }

  /** Stops a child; a task it was running is rejected once the child has exited (`onExit`). */
  private async kill(child: Child<Req, T>, reason: ChildTaskReport['outcome'] | null): Promise<void> {
    if (child.stop === null) child.stop = reason ?? (child.job ? 'crashed' : 'answered');
    if (child.idleTimer) clearTimeout(child.idleTimer);
    if (child.proc.exitCode === null && child.proc.signalCode === null) {
      const exited = new Promise((r) => child.proc.once('exit', r));
      child.proc.ref(); // an idle or spare child is unref'd: whoever awaits its end must keep the loop alive
      // An idle child is asked to leave; one mid-task is killed outright (it may be stuck in a decoder).
      child.proc.kill(child.job ? 'SIGKILL' : 'SIGTERM');
      await exited;
    }
  }

  private onExit(child: Child<Req, T>, code: number | null, signal: NodeJS.Signals | null): void {
    this.children.delete(child);
    if (child.idleTimer) clearTimeout(child.idleTimer);
    const job = child.job;
    const stop = child.stop ?? 'crashed';
    this.release(child);
    if (job) {
      job.onReport?.({ ms: performance.now() - child.started, childPeakRssBytes: undefined, coldStart: child.cold, outcome: stop });
      const how = signal ? `signal ${signal}` : `code ${code}`;
      const detail = `${this.opts.name} process ended (${how}): ${child.stderr.trim().slice(-1000) || 'no output'}`;
      const o = this.opts;
      if (stop === 'aborted') job.reject(new ChildTaskAborted(o.name));
      else if (stop === 'timeout') job.reject(new ChildTaskStopped('timeout', `The ${o.name} did not finish within its time limit (${Math.round(o.timeoutMs / 1000)} s); nothing was stored.`, detail));
      else if (stop === 'memory' || /heap out of memory|Reached heap limit/i.test(child.stderr)) {
        job.reject(new ChildTaskStopped('memory', `The ${o.name} needed more memory than it may use (${o.maxRssMb} MB); nothing was stored.`, detail));
      } else job.reject(new ChildTaskStopped('crashed', `The ${o.name} stopped unexpectedly; nothing was stored.`, detail));
    }
    if (!this.closed) void this.script?.then((s) => this.dispatch(s));
  }

  /** Starts a spare child when none is idle and there is room (`spareMs`). */
  private startSpare(script: ThreadScript): void {
    const ms = this.opts.spareMs ?? 0;
    if (ms <= 0 || this.closed || this.waiting.length) return;
    if ([...this.children].some((c) => !c.job && c.stop === null) || this.children.size >= this.opts.maxChildren) return;
    const child = this.spawn(script);
    child.proc.unref(); // a spare never keeps the process alive
    child.proc.channel?.unref();
    child.idleTimer = setTimeout(() => void this.kill(child, null), ms);
    child.idleTimer.unref();
  }
}

/** In a child's entry module: runs `task` on each request the parent sends, one at a time, and answers it. */
export function serveChildTasks<Req, T>(task: (req: Req) => Promise<T>): void {
  const peak = () => process.resourceUsage().maxRSS * 1024;
  const answer = (a: Answer<T>) => process.send!(a);
  process.on('message', (req: Req) => {
    task(req).then(
      (value) => answer({ ok: true, value, peakRssBytes: peak() }),
      (err: unknown) =>
        answer(
          err instanceof GraftError
            ? { ok: false, error: { code: err.code, message: err.message, param: err.param }, peakRssBytes: peak() }
            : { ok: false, unexpected: (err as Error)?.stack ?? String(err), peakRssBytes: peak() },
        ),
    );
  });
  // The parent gone (the API stopped or crashed): nothing is left to answer.
  process.on('disconnect', () => process.exit(0));
  process.send!({ ready: true } satisfies Ready);
}

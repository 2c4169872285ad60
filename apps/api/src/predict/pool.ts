/**
 * The API's prediction threads. Requests for one model always go to the same thread (by a hash of
 * its storage key), so each model is loaded once and stays warm there; a thread answers one request
 * at a time, the others wait in its queue. Every request has a time limit covering the wait, the
 * load and the inference: a waiting request that runs out is dropped, and a thread still busy with
 * one is ended (its loaded models with it) and started again for the next request, since
 * TensorFlow.js cannot be interrupted mid-inference.
 *
 * Threads start on first use, from the engine's bundle of the thread's sources (`threadScript`: plain
 * JavaScript, no tsx in the thread), and are kept: the models they hold are the point.
 */
import { GraftError } from '@graft/contracts';
import { startThread, threadScript, type ThreadScript } from '@graft/engine/threads';
import { createHash } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import type { ThreadData, ThreadReady, ThreadReply, ThreadRequest } from './messages.ts';

/** A thread that has not loaded its code and backend by then is ended; the requests waiting for it fail. */
export const THREAD_START_MS = 120_000;

const ENTRY = new URL(`./thread${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

export interface PredictPoolOptions {
  threads: number;
  /** Over all threads; each gets its share. */
  maxCacheBytes: number;
  timeoutMs: number;
  /** false: threads load the TypeScript sources through tsx, the slow way (kept to measure against). */
  bundle?: boolean;
}

export type PredictOutcome = Extract<ThreadReply, { ok: true }> & { queuedMs: number };

interface Job {
  req: ThreadRequest;
  enqueued: number;
  started: number | null;
  /** Runs from the moment the job's thread is ready (or from enqueueing, when it already is). */
  timer: NodeJS.Timeout | null;
  resolve: (r: PredictOutcome) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker | null;
  /** The thread has loaded its code and backend. */
  ready: boolean;
  startTimer: NodeJS.Timeout | null;
  queue: Job[];
  running: Job | null;
}

export class PredictPool {
  private readonly slots: Slot[];
  private nextId = 1;
  private closed = false;
  private script: Promise<ThreadScript> | null = null;
  private loadedScript: ThreadScript | null = null;

  constructor(private readonly opts: PredictPoolOptions) {
    this.slots = Array.from({ length: opts.threads }, () => ({ worker: null, ready: false, startTimer: null, queue: [], running: null }));
  }

  /** Threads running now (they start on first use). */
  get threads(): number {
    return this.slots.filter((s) => s.worker).length;
  }

  predict(req: Omit<ThreadRequest, 'id'>): Promise<PredictOutcome> {
    if (this.closed) return Promise.reject(new Error('the prediction pool is closed'));
    if (!this.loadedScript) {
      // Bundled once (a fraction of a second), before the first request joins a queue.
      this.script ??= this.opts.bundle === false ? Promise.resolve({ kind: 'tsx', url: ENTRY }) : threadScript(ENTRY);
      return this.script.then((s) => {
        this.loadedScript = s;
        return this.predict(req);
      });
    }
    const slot = this.slots[createHash('sha1').update(req.key).digest().readUInt32BE(0) % this.slots.length]!;
    return new Promise((resolve, reject) => {
      const job: Job = { req: { ...req, id: this.nextId++ }, enqueued: performance.now(), started: null, resolve, reject, timer: null };
      if (slot.ready) this.startClock(slot, job);
      slot.queue.push(job);
      this.dispatch(slot);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      this.slots.map(async (slot) => {
        for (const job of [...slot.queue.splice(0), ...(slot.running ? [slot.running] : [])]) this.settle(job, new Error('the prediction pool is closed'));
        slot.running = null;
        if (slot.startTimer) clearTimeout(slot.startTimer);
        const w = slot.worker;
        slot.worker = null;
        await w?.terminate();
      }),
    );
  }

  private startClock(slot: Slot, job: Job): void {
    job.timer ??= setTimeout(() => this.timedOut(slot, job), this.opts.timeoutMs);
  }

  private dispatch(slot: Slot): void {
    if (slot.running || this.closed) return;
    if (!slot.queue.length) {
      slot.worker?.unref(); // an idle thread never keeps the process alive
      return;
    }
    slot.worker ??= this.spawn(slot);
    slot.worker.ref();
    if (!slot.ready) return; // dispatched again once the thread says it is ready
    const job = slot.queue.shift()!;
    slot.running = job;
    job.started = performance.now();
    slot.worker.postMessage(job.req);
  }

  private spawn(slot: Slot): Worker {
    const data: ThreadData = { maxCacheBytes: Math.floor(this.opts.maxCacheBytes / this.slots.length) };
    const worker = startThread(this.loadedScript!, { workerData: data });
    slot.ready = false;
    slot.startTimer = setTimeout(() => {
      slot.startTimer = null;
      if (slot.worker !== worker) return;
      slot.worker = null;
      void worker.terminate();
      for (const job of slot.queue.splice(0)) this.settle(job, new Error(`the prediction thread did not start within ${THREAD_START_MS} ms`));
    }, THREAD_START_MS);
    worker.on('message', (reply: ThreadReply | ThreadReady) => {
      if ('ready' in reply) {
        if (slot.worker !== worker) return;
        if (slot.startTimer) clearTimeout(slot.startTimer);
        slot.startTimer = null;
        slot.ready = true;
        for (const job of slot.queue) this.startClock(slot, job);
        this.dispatch(slot);
        return;
      }
      const job = slot.running;
      if (!job || job.req.id !== reply.id) return;
      slot.running = null;
      if (reply.ok) this.settle(job, null, { ...reply, queuedMs: Math.max(0, performance.now() - job.enqueued - reply.loadMs - reply.inferenceMs) });
      else this.settle(job, reply.error.code === 'invalid_input' ? new GraftError('invalid_input', reply.error.message, reply.error.param) : new Error(`prediction failed: ${reply.error.message}`));
      this.dispatch(slot);
    });
    const lost = (why: string) => {
      if (slot.worker !== worker) return;
      const wasReady = slot.ready;
      slot.worker = null;
      slot.ready = false;
      if (slot.startTimer) clearTimeout(slot.startTimer);
      slot.startTimer = null;
      const job = slot.running;
      slot.running = null;
      if (job) this.settle(job, new Error(`the prediction thread ${why}`));
      // A thread that dies while starting would die again: fail those waiting rather than start it over and over.
      if (!wasReady) for (const waiting of slot.queue.splice(0)) this.settle(waiting, new Error(`the prediction thread ${why} while starting`));
      this.dispatch(slot);
    };
    worker.on('error', (err) => lost(`failed: ${err.message}`));
    worker.on('exit', (code) => lost(`exited (${code})`));
    return worker;
  }

  private timedOut(slot: Slot, job: Job): void {
    const error = new GraftError('prediction_timeout', `The prediction did not finish within ${this.opts.timeoutMs} ms${job.started === null ? ' (it was still waiting for its prediction thread)' : ''}; send fewer inputs or try again.`);
    if (slot.running === job) {
      // Busy past the limit: end the thread so that the requests behind it are not held up too.
      const w = slot.worker;
      slot.worker = null;
      slot.ready = false;
      slot.running = null;
      void w?.terminate();
      this.settle(job, error);
      this.dispatch(slot);
      return;
    }
    const i = slot.queue.indexOf(job);
    if (i >= 0) slot.queue.splice(i, 1);
    this.settle(job, error);
  }

  private settle(job: Job, err: unknown, value?: PredictOutcome): void {
    if (job.timer) clearTimeout(job.timer);
    if (err) job.reject(err);
    else job.resolve(value!);
  }
}

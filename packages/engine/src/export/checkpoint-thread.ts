/**
 * A thread for the files of head checkpoints, so that zipping (yazl computes each entry's CRC-32 in
 * JavaScript), hashing the template and encoding the resume state do not take turns with training
 * on the main thread: the head trains on while the other core writes. The main thread only copies
 * the bytes into a message. Started with the job's checkpoint writer (the bundle is built once per
 * process, util/bundled-thread.ts); should it fail to start or die, the jobs run in this thread as
 * before. Held (ref) only while a job is out, so an idle thread never keeps a process alive.
 */
import type { Worker } from 'node:worker_threads';
import { startThread, threadScript } from '../util/bundled-thread.ts';
import { writeCheckpointFile, type CheckpointFileDone, type CheckpointFileJob } from './checkpoint-io.ts';

type Reply = { id: number; ok: true; done: CheckpointFileDone } | { id: number; ok: false; message: string };

export class CheckpointThread {
  private worker: Promise<Worker | null>;
  private readonly waiting = new Map<number, { resolve(d: CheckpointFileDone): void; reject(e: Error): void }>();
  private nextId = 1;
  private closed = false;

  constructor() {
    this.worker = threadScript(new URL('./checkpoint-thread-entry.ts', import.meta.url))
      .then((script) => {
        if (this.closed) return null;
        const w = startThread(script);
        w.unref();
        w.on('message', (r: Reply) => this.answer(r));
        // A thread that dies fails the jobs it had; later ones run here.
        w.on('error', (err) => this.lost(w, err));
        w.on('exit', (code) => this.lost(w, new Error(`the checkpoint thread ended (exit ${code})`)));
        return w;
      })
      .catch(() => null);
  }

  async run(job: CheckpointFileJob): Promise<CheckpointFileDone> {
    const w = this.closed ? null : await this.worker;
    if (!w) return writeCheckpointFile(job);
    const id = this.nextId++;
    const done = new Promise<CheckpointFileDone>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    if (this.waiting.size === 1) w.ref();
    w.postMessage({ id, job });
    return done;
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = await this.worker;
    this.worker = Promise.resolve(null);
    if (w) await w.terminate();
  }

  private answer(r: Reply): void {
    const waiter = this.waiting.get(r.id);
    if (!waiter) return;
    this.waiting.delete(r.id);
    void this.worker.then((w) => this.waiting.size === 0 && w?.unref());
    if (r.ok) waiter.resolve(r.done);
    else waiter.reject(new Error(r.message));
  }

  private lost(w: Worker, err: Error): void {
    void this.worker.then((current) => {
      if (current !== w) return;
      this.worker = Promise.resolve(null);
      for (const waiter of this.waiting.values()) waiter.reject(err);
      this.waiting.clear();
    });
  }
}

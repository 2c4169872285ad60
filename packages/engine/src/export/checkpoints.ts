/**
 * Checkpoints: the model bundle (the final model's zip format) written to
 * `<outDir>/checkpoints/<phase>-e<epoch>[-b<batch>].zip` every epoch or every N batches, then
 * reported through `hooks.onCheckpoint`. `isBest`: its validation loss is the lowest of the job's
 * checkpoints so far (so the last checkpoint reported best is the best one).
 *
 * While the base is frozen (`FrozenHead.frozen(phase)`: the head phase of a tfjs layers encoder) a
 * checkpoint is the head alone plus a reference to the base (export/head-checkpoint.ts). The
 * training path only copies what the checkpoint holds (the head's weights, a few hundred KB, and
 * the resume state's tensors); the zip (stored, not deflated), the resume file and the report (the
 * worker's acknowledgement that the row is recorded) follow off the training path, in order, and
 * `flush()` waits for them (before phase 2 and the export). The complete bundle is copied into
 * memory at the first head checkpoint and written, once, off the path too: the template every head
 * checkpoint of the job is assembled from.
 */
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { CheckpointRequest } from '../train/callbacks.ts';
import { encodeResumeState, writeResumeState, type ResumeState } from '../train/resume-state.ts';
import { bundleEntries, writeModelZip, type ModelFiles } from './bundle.ts';
import { CheckpointThread } from './checkpoint-thread.ts';
import { HEAD_CHECKPOINT_KIND, headCheckpointFiles, weightRanges, type HeadCheckpointManifest } from './head-checkpoint.ts';

export interface CheckpointInfo {
  epoch: number;
  phase: string;
  batch: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
  isBest: boolean;
  zipPath: string;
  bytes: number;
  /** A head checkpoint: the complete bundle it is assembled from (the same file for every head checkpoint of the job). */
  templatePath: string | null;
  /** What a job needs to resume from this checkpoint (train/resume-state.ts), beside the zip; null for none. */
  resumePath: string | null;
}

/**
 * Where one checkpoint's time went, in ms. `onPath`: training waited for it — `waited` for the
 * previous checkpoint to be written and reported, `resume` capturing the resume state, `copy`
 * copying or writing the checkpoint (a complete one: all of its work), `template` copying the
 * template (the first head checkpoint). `offPath`: written and reported while training went on
 * (head checkpoints) — `template` writing the template, `zip`, `resume` the resume file, `report`
 * the caller's hook (the worker's acknowledgement).
 */
export interface CheckpointTiming {
  zipPath: string;
  head: boolean;
  onPath: { waited: number; resume: number; copy: number; template: number };
  offPath: { template: number; zip: number; resume: number; report: number };
}

/** What a head checkpoint needs of the model while its base is frozen. */
export interface FrozenHead {
  /** Whether the base's weights are still those of the template (true in the head phase). */
  frozen(phase: string): boolean;
  /** Whether a weight (model.json name) belongs to the head. */
  isHead(name: string): boolean;
  /** The current bytes of these weights (model.json names), in order. */
  read(names: readonly string[]): ArrayBufferView[];
  /** The base's id and the cut model's checksum (computed once). */
  base(): { id: string; checksum: string };
}

export function checkpointFileName(phase: string, epoch: number, batch: number | null): string {
  return `${phase}-e${epoch}${batch === null ? '' : `-b${batch}`}.zip`;
}

/** The template once written: its path and what a head checkpoint's manifest says of it. */
interface Template {
  path: string;
  ref: HeadCheckpointManifest['template'];
}

const since = (t: number) => performance.now() - t;

export class CheckpointWriter {
  /** The lowest validation loss of the job's checkpoints so far (a resumed job restores it). */
  bestValLoss = Infinity;
  readonly written: CheckpointInfo[] = [];
  readonly timings: CheckpointTiming[] = [];
  /** The head's byte ranges in the template's weights.bin; set at the first head checkpoint. */
  private headWeights: HeadCheckpointManifest['weights'] | null = null;
  private template: Template | null = null;
  private pending: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  /** Where head checkpoints' files are written; started as the head phase begins (`prepare`). */
  private thread: CheckpointThread | null = null;

  constructor(
    private readonly dir: string,
    private readonly files: (c: CheckpointRequest) => Promise<ModelFiles>,
    private readonly onCheckpoint?: (c: CheckpointInfo) => void | Promise<void>,
    private readonly frozenHead: FrozenHead | null = null,
  ) {}

  static forOutDir(outDir: string, files: (c: CheckpointRequest) => Promise<ModelFiles>, onCheckpoint?: (c: CheckpointInfo) => void | Promise<void>, frozenHead: FrozenHead | null = null): CheckpointWriter {
    return new CheckpointWriter(join(outDir, 'checkpoints'), files, onCheckpoint, frozenHead);
  }

  /** `resume`: captures the state to resume from (read at once: training goes on after). */
  async write(c: CheckpointRequest, resume: () => Promise<ResumeState | null> = async () => null): Promise<void> {
    // A head checkpoint that could not be written or recorded stops the job at the next one.
    if (this.failure) throw this.failure;
    const zipPath = join(this.dir, checkpointFileName(c.phase, c.epoch, c.batch));
    const timing: CheckpointTiming = { zipPath, head: false, onPath: { waited: 0, resume: 0, copy: 0, template: 0 }, offPath: { template: 0, zip: 0, resume: 0, report: 0 } };
    this.timings.push(timing);
    let t = performance.now();
    const state = await resume();
    timing.onPath.resume = since(t);
    await mkdir(this.dir, { recursive: true });
    const isBest = c.valLoss !== null && c.valLoss < this.bestValLoss;
    if (isBest) this.bestValLoss = c.valLoss!;
    const resumePath = state ? zipPath.replace(/\.zip$/, '.resume') : null;
    if (this.frozenHead?.frozen(c.phase)) {
      timing.head = true;
      const thread = this.startThread();
      // At most one in flight: the previous one is recorded before this one is taken (it normally
      // is long since), so a lost worker loses at most the checkpoint being recorded.
      t = performance.now();
      await this.pending;
      timing.onPath.waited = since(t);
      if (this.failure) throw this.failure;
      const files = await this.files(c);
      t = performance.now();
      if (!this.headWeights) await this.startTemplate(files, timing, thread);
      timing.onPath.template = since(t);
      t = performance.now();
      // Copied now (the head trains on); written and reported after, in order, off the training path.
      const weights = this.headWeights!;
      const parts = this.frozenHead.read(weights.map((w) => w.name));
      const head = Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
      const training = Buffer.from(JSON.stringify(files.training, null, 2));
      const base = this.frozenHead.base();
      timing.onPath.copy = since(t);
      this.enqueue(async () => {
        const template = this.template!;
        let t = performance.now();
        const entries = headCheckpointFiles({ kind: HEAD_CHECKPOINT_KIND, version: 1, base, template: template.ref, weights }, head, training);
        const zip = thread.run({ kind: 'zip', path: zipPath, entries });
        // The state's tensors are copies (ResumeTracker.capture): encoded in the thread too.
        const resumed = state ? thread.run({ kind: 'resume', path: resumePath!, state }) : Promise.resolve(null);
        resumed.catch(() => {}); // awaited below; a failed zip must not leave this rejection unhandled
        const { bytes } = await zip;
        timing.offPath.zip = since(t);
        t = performance.now();
        await resumed;
        timing.offPath.resume = since(t);
        t = performance.now();
        await this.report({ ...c, isBest, zipPath, bytes, templatePath: template.path, resumePath });
        timing.offPath.report = since(t);
      });
      return;
    }
    t = performance.now();
    await this.flush();
    timing.onPath.waited = since(t);
    t = performance.now();
    const { bytes } = await writeModelZip({ ...(await this.files(c)), zipPath });
    if (state) await writeResumeState(resumePath!, encodeResumeState(state));
    await this.report({ ...c, isBest, zipPath, bytes, templatePath: null, resumePath });
    timing.onPath.copy = since(t);
  }

  /** A phase that will write checkpoints begins: head checkpoints' thread starts now (it is ready by the first). */
  prepare(phase: string): void {
    if (this.frozenHead?.frozen(phase)) this.startThread();
  }

  private startThread(): CheckpointThread {
    return (this.thread ??= new CheckpointThread());
  }

  /** Waits for the head checkpoints still being written; rethrows the first failure. */
  async flush(): Promise<void> {
    await this.pending;
    if (this.failure) throw this.failure;
  }

  /** Waits for what is being written, then ends the thread (the job is over). */
  async close(): Promise<void> {
    await this.pending;
    await this.thread?.close();
  }

  private enqueue(job: () => Promise<void>): void {
    this.pending = this.pending.then(() => (this.failure ? undefined : job())).catch((err: unknown) => {
      this.failure ??= err;
    });
  }

  private async report(info: CheckpointInfo): Promise<void> {
    this.written.push(info);
    await this.onCheckpoint?.(info);
  }

  /**
   * The complete bundle, copied into memory at the first head checkpoint (the base's weights never
   * change while it is frozen; the head's bytes are replaced on assembly), then written off the
   * path, stored, named by its sha256.
   */
  private async startTemplate(files: ModelFiles, timing: CheckpointTiming, thread: CheckpointThread): Promise<void> {
    const { entries, modelJson } = await bundleEntries(files);
    this.headWeights = [...weightRanges(modelJson)].filter(([name]) => this.frozenHead!.isHead(name)).map(([name, r]) => ({ name, ...r }));
    this.enqueue(async () => {
      const t = performance.now();
      const { path, sha256 } = await thread.run({ kind: 'zip', path: this.dir, entries, namedBySha256: true });
      this.template = { path, ref: { file: basename(path), sha256: sha256! } };
      timing.offPath.template = since(t);
    });
  }
}

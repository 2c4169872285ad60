/**
 * Checkpoints: the model bundle (the final model's zip format) written to
 * `<outDir>/checkpoints/<phase>-e<epoch>[-b<batch>].zip` every epoch or every N batches, then
 * reported through `hooks.onCheckpoint`. `isBest`: its validation loss is the lowest of the job's
 * checkpoints so far (so the last checkpoint reported best is the best one).
 *
 * While the base is frozen (`FrozenHead.frozen(phase)`: the head phase of a tfjs layers encoder) a
 * checkpoint is the head alone plus a reference to the base (export/head-checkpoint.ts): the head's
 * weights are copied at once (a few KB), the zip is written and reported off the training path, in
 * order, and `flush()` waits for them (before phase 2 and the export). The complete bundle is
 * written once, as the template every head checkpoint of the job is assembled from.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckpointRequest } from '../train/callbacks.ts';
import { encodeResumeState, writeResumeState, type ResumeState } from '../train/resume-state.ts';
import { openZip, readZipEntry, writeZip, zipEntries } from '../util/zip.ts';
import { writeModelZip, type ModelFiles } from './bundle.ts';
import { HEAD_CHECKPOINT_KIND, headCheckpointFiles, sha256OfFile, templateFileName, weightRanges, type HeadCheckpointManifest } from './head-checkpoint.ts';

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

interface Template {
  path: string;
  manifest: Omit<HeadCheckpointManifest, 'weights'>;
  weights: HeadCheckpointManifest['weights'];
}

export class CheckpointWriter {
  /** The lowest validation loss of the job's checkpoints so far (a resumed job restores it). */
  bestValLoss = Infinity;
  readonly written: CheckpointInfo[] = [];
  private template: Template | null = null;
  private pending: Promise<void> = Promise.resolve();
  private failure: unknown = null;

  constructor(
    private readonly dir: string,
    private readonly files: (c: CheckpointRequest) => Promise<ModelFiles>,
    private readonly onCheckpoint?: (c: CheckpointInfo) => void | Promise<void>,
    private readonly frozenHead: FrozenHead | null = null,
  ) {}

  static forOutDir(outDir: string, files: (c: CheckpointRequest) => Promise<ModelFiles>, onCheckpoint?: (c: CheckpointInfo) => void | Promise<void>, frozenHead: FrozenHead | null = null): CheckpointWriter {
    return new CheckpointWriter(join(outDir, 'checkpoints'), files, onCheckpoint, frozenHead);
  }

  async write(c: CheckpointRequest, resume: ResumeState | null = null): Promise<void> {
    // A head checkpoint that could not be written or recorded stops the job at the next one.
    if (this.failure) throw this.failure;
    await mkdir(this.dir, { recursive: true });
    const isBest = c.valLoss !== null && c.valLoss < this.bestValLoss;
    if (isBest) this.bestValLoss = c.valLoss!;
    const zipPath = join(this.dir, checkpointFileName(c.phase, c.epoch, c.batch));
    const state = resume && encodeResumeState(resume);
    const resumePath = state ? zipPath.replace(/\.zip$/, '.resume') : null;
    if (this.frozenHead?.frozen(c.phase)) {
      // At most one in flight: the previous one is recorded before this one is taken (it normally
      // is long since), so a lost worker loses at most the checkpoint being recorded.
      await this.pending;
      if (this.failure) throw this.failure;
      const files = await this.files(c);
      if (!this.template) this.template = await this.writeTemplate(files);
      const t = this.template;
      // Copied now (the head trains on); written and reported after, in order, off the training path.
      const parts = this.frozenHead.read(t.weights.map((w) => w.name));
      const head = Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
      const zip = headCheckpointFiles({ ...t.manifest, weights: t.weights }, head, files.training);
      this.enqueue(async () => {
        const tmp = `${zipPath}.${randomUUID()}.tmp`;
        const bytes = await writeZip(tmp, zip).catch(async (err) => { await rm(tmp, { force: true }); throw err; });
        await rename(tmp, zipPath);
        if (state) await writeResumeState(resumePath!, state);
        await this.report({ ...c, isBest, zipPath, bytes, templatePath: t.path, resumePath });
      });
      return;
    }
    await this.flush();
    const { bytes } = await writeModelZip({ ...(await this.files(c)), zipPath });
    if (state) await writeResumeState(resumePath!, state);
    await this.report({ ...c, isBest, zipPath, bytes, templatePath: null, resumePath });
  }

  /** Waits for the head checkpoints still being written; rethrows the first failure. */
  async flush(): Promise<void> {
    await this.pending;
    if (this.failure) throw this.failure;
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

  /** The complete bundle at the first head checkpoint, named by its sha256; the head's byte ranges in its weights.bin. */
  private async writeTemplate(files: ModelFiles): Promise<Template> {
    const staged = join(this.dir, `frozen-base.${randomUUID()}.zip`);
    await writeModelZip({ ...files, zipPath: staged });
    const sha256 = await sha256OfFile(staged);
    const file = templateFileName(sha256);
    const path = join(this.dir, file);
    await rename(staged, path);
    const modelJson = JSON.parse((await readEntry(path, 'model.json')).toString('utf8')) as Parameters<typeof weightRanges>[0];
    const weights = [...weightRanges(modelJson)].filter(([name]) => this.frozenHead!.isHead(name)).map(([name, r]) => ({ name, ...r }));
    return { path, manifest: { kind: HEAD_CHECKPOINT_KIND, version: 1, base: this.frozenHead!.base(), template: { file, sha256 } }, weights };
  }
}

async function readEntry(zipPath: string, name: string): Promise<Buffer> {
  const zip = await openZip(zipPath);
  try {
    for await (const entry of zipEntries(zip)) if (entry.fileName === name) return await readZipEntry(zip, entry);
  } finally {
    zip.close();
  }
  throw new Error(`${zipPath} has no ${name}`);
}

/**
 * Checkpoints: the model bundle (the final model's zip format) written to
 * `<outDir>/checkpoints/<phase>-e<epoch>[-b<batch>].zip` every epoch or every N batches, then
 * reported through `hooks.onCheckpoint`. `isBest`: its validation loss is the lowest of the job's
 * checkpoints so far (so the last checkpoint reported best is the best one).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckpointRequest } from '../train/callbacks.ts';
import { writeModelZip, type ModelFiles } from './bundle.ts';

export interface CheckpointInfo {
  epoch: number;
  phase: string;
  batch: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
  isBest: boolean;
  zipPath: string;
  bytes: number;
}

export function checkpointFileName(phase: string, epoch: number, batch: number | null): string {
  return `${phase}-e${epoch}${batch === null ? '' : `-b${batch}`}.zip`;
}

export class CheckpointWriter {
  private bestValLoss = Infinity;
  readonly written: CheckpointInfo[] = [];

  constructor(
    private readonly dir: string,
    private readonly files: (c: CheckpointRequest) => Promise<ModelFiles>,
    private readonly onCheckpoint?: (c: CheckpointInfo) => void | Promise<void>,
  ) {}

  static forOutDir(outDir: string, files: (c: CheckpointRequest) => Promise<ModelFiles>, onCheckpoint?: (c: CheckpointInfo) => void | Promise<void>): CheckpointWriter {
    return new CheckpointWriter(join(outDir, 'checkpoints'), files, onCheckpoint);
  }

  async write(c: CheckpointRequest): Promise<CheckpointInfo> {
    await mkdir(this.dir, { recursive: true });
    const isBest = c.valLoss !== null && c.valLoss < this.bestValLoss;
    if (isBest) this.bestValLoss = c.valLoss!;
    const { zipPath, bytes } = await writeModelZip({ ...(await this.files(c)), zipPath: join(this.dir, checkpointFileName(c.phase, c.epoch, c.batch)) });
    const info: CheckpointInfo = { ...c, isBest, zipPath, bytes };
    this.written.push(info);
    await this.onCheckpoint?.(info);
    return info;
  }
}

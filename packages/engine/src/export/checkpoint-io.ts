/**
 * The file work of a head checkpoint, as one job a thread can run: a stored zip (written to a
 * temporary name and renamed into place, so a reader never sees half of one; the template also
 * hashed and named by its sha256), or a resume state encoded and written. Only node builtins, the
 * zip writer and the resume state's encoding: the checkpoint thread's bundle stays small.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { encodeResumeState, writeResumeState, type ResumeState } from '../train/resume-state.ts';
import { writeZip, type ZipInput } from '../util/zip.ts';
import { templateFileName } from './head-checkpoint.ts';

export type CheckpointFileJob =
  /** `namedBySha256`: `path` is a directory; the zip lands there as `frozen-base-<sha256 prefix>.zip` (export/head-checkpoint.ts). */
  | { kind: 'zip'; path: string; entries: ZipInput[]; namedBySha256?: boolean }
  | { kind: 'resume'; path: string; state: ResumeState };

export interface CheckpointFileDone {
  path: string;
  bytes: number;
  sha256: string | null;
}

export async function writeCheckpointFile(job: CheckpointFileJob): Promise<CheckpointFileDone> {
  if (job.kind === 'resume') return { path: job.path, bytes: await writeResumeState(job.path, encodeResumeState(job.state)), sha256: null };
  const dir = job.namedBySha256 ? job.path : dirname(job.path);
  const tmp = job.namedBySha256 ? join(dir, `frozen-base.${randomUUID()}.tmp`) : `${job.path}.${randomUUID()}.tmp`;
  try {
    const bytes = await writeZip(tmp, job.entries, { store: true });
    const sha256 = job.namedBySha256 ? createHash('sha256').update(await readFile(tmp)).digest('hex') : null;
    const path = sha256 ? join(dir, templateFileName(sha256)) : job.path;
    await rename(tmp, path);
    return { path, bytes, sha256 };
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

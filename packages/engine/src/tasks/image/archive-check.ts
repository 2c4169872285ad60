/**
 * `inspectArchive` in a worker thread: it inflates and decodes every image of an upload, seconds of
 * CPU the API's event loop must not spend. The thread's heap is bounded; decoded pixels live in
 * array buffers freed image by image.
 */
import { ARCHIVE_LIMITS, DATASET_LIMITS, type ArchiveLimits } from '@graft/contracts';
import { runInThread } from '../../util/bundled-thread.ts';
import type { ArchiveInspection } from './dataset-archive.ts';

/** DATASET_LIMITS, with its numbers open to configuration. */
export type DatasetLimits = { [K in keyof typeof DATASET_LIMITS]: number };

export interface ArchiveCheckRequest {
  path: string;
  limits: DatasetLimits;
  archiveLimits: ArchiveLimits;
}

const ENTRY = new URL(`./archive-check-entry${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

export function inspectArchiveInThread(path: string, archiveLimits: ArchiveLimits = ARCHIVE_LIMITS, limits: DatasetLimits = DATASET_LIMITS): Promise<ArchiveInspection> {
  return runInThread<ArchiveInspection>(ENTRY, { path, limits, archiveLimits } satisfies ArchiveCheckRequest, { maxOldGenerationSizeMb: 512, maxYoungGenerationSizeMb: 16 });
}

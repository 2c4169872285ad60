/**
 * `inspectArchive` in child processes (`util/child-tasks.ts`): it inflates and decodes every image of
 * an upload, seconds of CPU the API's event loop must not spend, and memory (the decoders' buffers and
 * what the allocator keeps of them) that must not stay in the API's process. A hostile archive that
 * crashes or exhausts a decoder ends its child, never the API.
 */
import { ARCHIVE_LIMITS, DATASET_LIMITS, type ArchiveLimits } from '@graft/contracts';
import { ChildTaskPool, type ChildTaskLimits, type ChildTaskReport } from '../../util/child-tasks.ts';
import type { ArchiveInspection } from './dataset-archive.ts';

/** DATASET_LIMITS, with its numbers open to configuration. */
export type DatasetLimits = { [K in keyof typeof DATASET_LIMITS]: number };

export interface ArchiveCheckRequest {
  path: string;
  limits: DatasetLimits;
  archiveLimits: ArchiveLimits;
}

const ENTRY = new URL(`./archive-check-entry${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** Bounds of a check process: one decoded image at a time is tens of MB (a 40 Mpx PNG, the decode limit, is 160 MB of RGBA). */
export const ARCHIVE_CHECK_LIMITS: ChildTaskLimits = { maxOldSpaceMb: 512, maxRssMb: 1024, timeoutMs: 600_000 };

export class ArchiveCheckPool {
  private readonly pool: ChildTaskPool<ArchiveCheckRequest, ArchiveInspection>;

  /** `idleMs`: how long a child without work stays for the next check (0: a fresh child per check). */
  constructor(opts: { maxChildren?: number; idleMs?: number; spareMs?: number; limits?: Partial<ChildTaskLimits> } = {}) {
    this.pool = new ChildTaskPool(ENTRY, { name: 'image dataset check', maxChildren: opts.maxChildren ?? 2, spareMs: opts.spareMs ?? 0, idleMs: opts.idleMs ?? 0, ...ARCHIVE_CHECK_LIMITS, ...opts.limits });
  }

  get stats() {
    return this.pool.stats;
  }

  inspect(
    path: string,
    archiveLimits: ArchiveLimits = ARCHIVE_LIMITS,
    limits: DatasetLimits = DATASET_LIMITS,
    opts: { signal?: AbortSignal | undefined; onReport?: (r: ChildTaskReport) => void } = {},
  ): Promise<ArchiveInspection> {
    return this.pool.run({ path, limits, archiveLimits }, opts);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * Runs `checkTextDataset` in child processes (`util/child-tasks.ts`), so that reading, checking and
 * hashing a large file never blocks the caller's event loop (the API's), its memory is not the
 * caller's, and a file that crashes or exhausts the parser ends its child only. A small pool: a child
 * is started on demand, runs one check at a time, and is ended after `idleMs` without work; more
 * checks than children wait their turn. A GraftError thrown in a child is thrown again here with its
 * code, message and param.
 */
import { ChildTaskPool, type ChildTaskLimits, type ChildTaskReport } from '../../../util/child-tasks.ts';
import type { CheckTextDatasetOptions, TextDatasetReport } from './check.ts';
import type { TokenizerSpec } from './token-counter.ts';

export interface TextCheckRequest extends Omit<CheckTextDatasetOptions, 'tokenCounter'> {
  tokenizer: TokenizerSpec | null;
}

const ENTRY = new URL(`./check-child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** Bounds of a check process: its working set is a few numbers per row (tens of MB at the row limit) and a tokenizer. */
export const TEXT_CHECK_LIMITS: ChildTaskLimits = { maxOldSpaceMb: 512, maxRssMb: 1024, timeoutMs: 600_000 };

export class TextCheckPool {
  private readonly pool: ChildTaskPool<TextCheckRequest, TextDatasetReport>;

  constructor(opts: { maxChildren?: number; idleMs?: number; spareMs?: number; limits?: Partial<ChildTaskLimits> } = {}) {
    this.pool = new ChildTaskPool(ENTRY, { name: 'text dataset check', maxChildren: opts.maxChildren ?? 2, spareMs: opts.spareMs ?? 0, idleMs: opts.idleMs ?? 60_000, ...TEXT_CHECK_LIMITS, ...opts.limits });
  }

  /** Check processes alive now (working or idle). */
  get children(): number {
    return this.pool.size;
  }

  check(req: TextCheckRequest, opts: { signal?: AbortSignal | undefined; onReport?: (r: ChildTaskReport) => void } = {}): Promise<TextDatasetReport> {
    return this.pool.run(req, opts);
  }

  /** Ends every child; checks still running are rejected. */
  close(): Promise<void> {
    return this.pool.close();
  }
}

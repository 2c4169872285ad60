/**
 * Reads of rows by id that arrive together travel together: one statement (`id = ANY($1)`) per
 * round trip instead of one per request. Under 50 concurrent polls of a job, the API spent its time
 * on Postgres round trips (a query, a wake-up of a server process and a socket write each); one
 * statement for tens of ids costs about what one costs.
 *
 * Not a cache: an answer comes from a statement sent after its request arrived, so it is never
 * older than the request (a client that cancels and then reads sees its cancel). At most
 * `maxInFlight` statements are out at once; requests that arrive meanwhile wait for the next one,
 * so an idle server answers a lone request at once and a busy one batches by itself.
 */
import type pg from 'pg';

interface Waiter<R> {
  id: string;
  resolve: (row: R | undefined) => void;
  reject: (err: unknown) => void;
}

export interface BatchedReadOptions {
  /** Statements out at once (each holds a pooled connection while it runs). */
  maxInFlight: number;
  /** Ids in one statement at most (the rest wait for the next). */
  maxBatch: number;
  /** The statement's parameters for a batch's distinct ids (default: the ids as `$1`). */
  params?: (ids: string[]) => unknown[];
}

export class BatchedReader<R> {
  private waiting: Waiter<R>[] = [];
  private inFlight = 0;

  constructor(
    private readonly pool: pg.Pool,
    /** A named prepared statement taking the ids as `$1::text[]` (or as `opts.params` makes them); rows it returns that no waiter asked for are ignored. */
    private readonly statement: { name: string; text: string },
    private readonly keyOf: (row: Record<string, unknown>) => string,
    private readonly toRow: (row: Record<string, unknown>) => R,
    private readonly opts: BatchedReadOptions,
  ) {}

  /** The row with this id (undefined: none). */
  get(id: string): Promise<R | undefined> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ id, resolve, reject });
      this.send();
    });
  }

  private send(): void {
    while (this.inFlight < this.opts.maxInFlight && this.waiting.length) {
      const batch = this.waiting.splice(0, this.opts.maxBatch);
      this.inFlight++;
      void this.run(batch).finally(() => {
        this.inFlight--;
        this.send();
      });
    }
  }

  private async run(batch: Waiter<R>[]): Promise<void> {
    try {
      const ids = [...new Set(batch.map((w) => w.id))];
      const values = this.opts.params ? this.opts.params(ids) : [ids];
      const { rows } = await this.pool.query<Record<string, unknown>>({ ...this.statement, values });
      const byId = new Map(rows.map((r) => [this.keyOf(r), r]));
      // Each waiter gets its own object: callers may change what they are handed.
      for (const w of batch) {
        const raw = byId.get(w.id);
        w.resolve(raw ? this.toRow(raw) : undefined);
      }
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }
}

const readers = new WeakMap<pg.Pool, Map<string, BatchedReader<unknown>>>();

/**
 * The pool's reader for one statement (made on first use): every caller of one kind of read shares
 * it, so their requests batch together. A quarter of the pool's connections at most are out for
 * it at once; the rest stay free for writes and other reads.
 */
export function sharedReader<R>(
  pool: pg.Pool,
  statement: { name: string; text: string },
  keyOf: (row: Record<string, unknown>) => string,
  toRow: (row: Record<string, unknown>) => R,
  params?: (ids: string[]) => unknown[],
): BatchedReader<R> {
  let byName = readers.get(pool);
  if (!byName) readers.set(pool, (byName = new Map()));
  let reader = byName.get(statement.name) as BatchedReader<R> | undefined;
  if (!reader) {
    reader = new BatchedReader(pool, statement, keyOf, toRow, {
      maxInFlight: Math.max(1, Math.floor((pool.options.max ?? 10) / 4)),
      maxBatch: 500,
      ...(params ? { params } : {}),
    });
    byName.set(statement.name, reader as BatchedReader<unknown>);
  }
  return reader;
}

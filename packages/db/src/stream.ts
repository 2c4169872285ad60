/**
 * A job's live feed: its events, progress updates and metrics in one order (their `seq`, drawn from
 * one sequence). Read by the API's Server-Sent Events route to replay what a watcher missed.
 *
 * The order is only gap-free because one writer at a time writes a job's feed (the worker holding
 * it, awaiting each write; the API's guarded transitions before and after): a seq is committed
 * before the next one is drawn, so "seq > cursor" never skips a row that commits later.
 */
import type { Db } from './client.ts';
import type { Event, Metric, Progress } from './generated/prisma/client.ts';

export type FeedEntry =
  | { seq: bigint; kind: 'event'; row: Event }
  | { seq: bigint; kind: 'progress'; row: Progress }
  | { seq: bigint; kind: 'metric'; row: Metric };

/** At most `limit` entries with `seq > afterSeq`, oldest first. */
export async function listFeed(db: Db, fineTuneId: string, afterSeq: bigint, limit: number): Promise<FeedEntry[]> {
  const where = { fineTuneId, seq: { gt: afterSeq } };
  const order = { seq: 'asc' as const };
  // One snapshot for the three reads: read apart, a row committed between them could show up
  // (say a metric) while an earlier one (an event) did not, and a resuming watcher would skip it.
  // The first `limit` of the merge are among the first `limit` of each table.
  const [events, progress, metrics] = await db.$transaction(
    [
      db.event.findMany({ where, orderBy: order, take: limit }),
      db.progress.findMany({ where, orderBy: order, take: limit }),
      db.metric.findMany({ where, orderBy: order, take: limit }),
    ],
    { isolationLevel: 'RepeatableRead' },
  );
  const all: FeedEntry[] = [
    ...events.map((row) => ({ seq: row.seq, kind: 'event' as const, row })),
    ...progress.map((row) => ({ seq: row.seq, kind: 'progress' as const, row })),
    ...metrics.map((row) => ({ seq: row.seq, kind: 'metric' as const, row })),
  ];
  all.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  return all.slice(0, limit);
}

/** The position of the job's latest entry (0 when it has none). */
export async function lastFeedSeq(db: Db, fineTuneId: string): Promise<bigint> {
  const rows = await db.$queryRaw<{ seq: bigint | null }[]>`
    SELECT GREATEST(
      (SELECT max(seq) FROM events WHERE fine_tune_id = ${fineTuneId}),
      (SELECT max(seq) FROM fine_tune_progress WHERE fine_tune_id = ${fineTuneId}),
      (SELECT max(seq) FROM metrics WHERE fine_tune_id = ${fineTuneId})
    ) AS seq`;
  return rows[0]?.seq ?? 0n;
}

/** The feed position of one of the job's events (null when the job has no such event). */
export async function eventSeq(db: Db, fineTuneId: string, eventId: string): Promise<bigint | null> {
  const row = await db.event.findUnique({ where: { id: eventId }, select: { seq: true, fineTuneId: true } });
  return row && row.fineTuneId === fineTuneId ? row.seq : null;
}

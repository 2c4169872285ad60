import { newId } from '@graft/contracts';
import type { Db } from './client.ts';
import type { Prisma } from './generated/prisma/client.ts';
import { recordDeliveries } from './webhooks.ts';

export interface NewEvent {
  fineTuneId: string;
  level: 'info' | 'warning' | 'error';
  type: string;
  message: string;
  data?: Record<string, unknown> | null;
  /**
   * A deterministic id makes the insert idempotent: an event with this id already recorded (by an
   * earlier attempt of a resumed job) is not recorded again.
   */
  id?: string;
}

/**
 * Inserts an event with its webhook deliveries (inside the caller's transaction): every event
 * insert goes through here, so no event that webhooks want is ever committed without them.
 */
export async function insertEvent(tx: Db | Prisma.TransactionClient, e: NewEvent) {
  if (e.id) {
    const existing = await tx.event.findUnique({ where: { id: e.id } });
    if (existing) return existing;
  }
  const row = await tx.event.create({
    data: {
      id: e.id ?? newId('event'),
      fineTuneId: e.fineTuneId,
      level: e.level,
      type: e.type,
      message: e.message,
      data: (e.data ?? null) as Prisma.InputJsonValue,
    },
  });
  await recordDeliveries(tx, row);
  return row;
}

export function appendEvent(db: Db, e: NewEvent) {
  return db.$transaction((tx) => insertEvent(tx, e));
}

/** Oldest first (the order they happened in); `after` is the id of the last event already seen. */
export async function listEvents(db: Db, fineTuneId: string, opts: { limit: number; after?: string | undefined }) {
  let afterSeq: bigint | undefined;
  if (opts.after) {
    const cursor = await db.event.findUnique({ where: { id: opts.after }, select: { seq: true, fineTuneId: true } });
    if (!cursor || cursor.fineTuneId !== fineTuneId) return null;
    afterSeq = cursor.seq;
  }
  const rows = await db.event.findMany({
    where: { fineTuneId, ...(afterSeq !== undefined ? { seq: { gt: afterSeq } } : {}) },
    orderBy: { seq: 'asc' },
    take: opts.limit + 1,
  });
  const hasMore = rows.length > opts.limit;
  const data = hasMore ? rows.slice(0, opts.limit) : rows;
  return { data, hasMore, nextCursor: hasMore ? (data.at(-1)?.id ?? null) : null };
}

import { newId } from '@graft/contracts';
import type { Db } from './client.ts';
import type { Prisma } from './generated/prisma/client.ts';

export interface NewDataset {
  id?: string;
  name: string;
  task: string;
  storageKey: string;
  bytes: number;
  sha256: string;
  imageCount: number;
  classes: { name: string; images: number }[];
  skipped: { path: string; reason: string }[];
}

export function createDataset(db: Db, d: NewDataset) {
  return db.dataset.create({
    data: {
      id: d.id ?? newId('dataset'),
      name: d.name,
      task: d.task,
      storageKey: d.storageKey,
      bytes: BigInt(d.bytes),
      sha256: d.sha256,
      imageCount: d.imageCount,
      classes: d.classes as unknown as Prisma.InputJsonValue,
      skipped: d.skipped as unknown as Prisma.InputJsonValue,
    },
  });
}

export function getDataset(db: Db, id: string) {
  return db.dataset.findUnique({ where: { id } });
}

/** Newest first; `after` is the id of the last item of the previous page. */
export async function listDatasets(db: Db, opts: { limit: number; after?: string | undefined }) {
  const rows = await db.dataset.findMany({
    take: opts.limit + 1,
    ...(opts.after ? { cursor: { id: opts.after }, skip: 1 } : {}),
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
  });
  return page(rows, opts.limit);
}

export function page<T extends { id: string }>(rows: T[], limit: number) {
  const hasMore = rows.length > limit;
  const data = hasMore ? rows.slice(0, limit) : rows;
  return { data, hasMore, nextCursor: hasMore ? (data.at(-1)?.id ?? null) : null };
}

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
  /** Images: `{ name, images }`; text: `{ name, rows }`. Sorted by name (the output order). */
  classes: { name: string; images: number }[] | { name: string; rows: number }[];
  skipped: { path: string; reason: string }[];
  /** Task-specific statistics (text datasets). */
  stats?: Record<string, unknown> | null;
  /** Text: the normalised rows file and the fingerprint file, in storage. */
  rowsKey?: string | null;
  fingerprintsKey?: string | null;
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
      ...(d.stats ? { stats: d.stats as Prisma.InputJsonValue } : {}),
      rowsKey: d.rowsKey ?? null,
      fingerprintsKey: d.fingerprintsKey ?? null,
    },
  });
}

/** Every storage key a dataset owns (its upload and, for text, its derived files). */
export function datasetFiles(row: { storageKey: string; rowsKey: string | null; fingerprintsKey: string | null }): string[] {
  return [row.storageKey, row.rowsKey, row.fingerprintsKey].filter((k): k is string => !!k);
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

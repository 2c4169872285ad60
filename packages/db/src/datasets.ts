import { newId } from '@graft/contracts';
import { poolOf, type Db } from './client.ts';
import { sharedReader } from './batched-reads.ts';
import type { Dataset as DatasetRow, Prisma } from './generated/prisma/client.ts';

/** Scopes a read to one tenant; null: any tenant (the worker, which works by job id). */
export type TenantScope = string | null;
export const scoped = (tenantId: TenantScope) => (tenantId === null ? {} : { tenantId });

export interface NewDataset {
  id?: string;
  /** The owner (default: the `default` tenant). */
  tenantId?: string;
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
      ...(d.tenantId ? { tenantId: d.tenantId } : {}),
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

/**
 * A dataset that exists (a deleted one is a tombstone: its row stays for the jobs that used it).
 * Read by every job create: batched reads of one prepared statement on the pool when there is one.
 */
export async function getDataset(db: Db, id: string, tenantId: TenantScope): Promise<DatasetRow | null> {
  const pool = poolOf(db);
  if (!pool) return db.dataset.findFirst({ where: { id, deletedAt: null, ...scoped(tenantId) } });
  const row = await sharedReader(pool, DATASETS_BY_ID, (r) => r.id as string, datasetRowOf).get(id);
  // Another tenant's dataset is "not found", exactly as a missing one.
  return row && (tenantId === null || row.tenantId === tenantId) ? row : null;
}

/** Concurrent reads share one statement per round trip (see `BatchedReader`). */
const DATASETS_BY_ID = { name: 'graft_get_datasets', text: 'SELECT * FROM datasets WHERE id = ANY($1::text[]) AND deleted_at IS NULL' };

/** A `datasets` row read by node-postgres → the row Prisma would return. */
function datasetRowOf(r: Record<string, unknown>): DatasetRow {
  return {
    id: r.id as string,
    tenantId: r.tenant_id as string,
    name: r.name as string,
    task: r.task as string,
    storageKey: r.storage_key as string,
    bytes: BigInt(r.bytes as string | number),
    sha256: r.sha256 as string,
    imageCount: r.image_count as number,
    classes: r.classes as Prisma.JsonValue,
    skipped: r.skipped as Prisma.JsonValue,
    createdAt: new Date(r.created_at as string | Date),
    deletedAt: r.deleted_at === null || r.deleted_at === undefined ? null : new Date(r.deleted_at as string | Date),
    stats: (r.stats ?? null) as Prisma.JsonValue,
    rowsKey: (r.rows_key as string | null) ?? null,
    fingerprintsKey: (r.fingerprints_key as string | null) ?? null,
  };
}

/**
 * Newest first; `after` is the id of the last item of the previous page (it may have been deleted
 * since: its tombstone still places the cursor). Null when `after` names no dataset at all.
 */
export async function listDatasets(db: Db, opts: { tenantId: string; limit: number; after?: string | undefined }) {
  let before: Prisma.DatasetWhereInput = {};
  if (opts.after) {
    const cursor = await db.dataset.findFirst({ where: { id: opts.after, tenantId: opts.tenantId }, select: { id: true, createdAt: true } });
    if (!cursor) return null;
    before = { OR: [{ createdAt: { lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { lt: cursor.id } }] };
  }
  const rows = await db.dataset.findMany({
    where: { tenantId: opts.tenantId, deletedAt: null, ...before },
    take: opts.limit + 1,
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
  });
  return page(rows, opts.limit);
}

/** Jobs that have not ended: while one uses an object, the object cannot be deleted. */
export const ACTIVE_STATUSES = ['queued', 'running'] as const;

export type DeleteOutcome<T> = { ok: true; value: T } | { ok: false; reason: 'not_found' } | { ok: false; reason: 'in_use' | 'not_finished'; jobId: string };

/**
 * Marks a dataset deleted unless a queued or running job uses it (as its dataset or test dataset).
 * The row is locked first, and `createFineTune` locks the datasets it references, so a job created
 * at the same moment either sees the tombstone or is seen here. Returns the storage keys of its
 * files (the upload; for text, also its rows and fingerprints): the caller removes them once this
 * has committed.
 */
export async function deleteDataset(db: Db, id: string, tenantId: string): Promise<DeleteOutcome<{ storageKey: string; files: string[] }>> {
  return db.$transaction(async (tx) => {
    const locked = await tx.$queryRaw<{ storage_key: string; rows_key: string | null; fingerprints_key: string | null }[]>`SELECT storage_key, rows_key, fingerprints_key FROM datasets WHERE id = ${id} AND tenant_id = ${tenantId} AND deleted_at IS NULL FOR UPDATE`;
    const row = locked[0];
    if (!row) return { ok: false, reason: 'not_found' } as const;
    const user = await tx.fineTune.findFirst({
      where: { status: { in: [...ACTIVE_STATUSES] }, OR: [{ datasetId: id }, { testDatasetId: id }] },
      select: { id: true },
    });
    if (user) return { ok: false, reason: 'in_use', jobId: user.id } as const;
    await tx.dataset.update({ where: { id }, data: { deletedAt: new Date() } });
    const files = datasetFiles({ storageKey: row.storage_key, rowsKey: row.rows_key, fingerprintsKey: row.fingerprints_key });
    return { ok: true, value: { storageKey: row.storage_key, files } } as const;
  });
}

export function page<T extends { id: string }>(rows: T[], limit: number) {
  const hasMore = rows.length > limit;
  const data = hasMore ? rows.slice(0, limit) : rows;
  return { data, hasMore, nextCursor: hasMore ? (data.at(-1)?.id ?? null) : null };
}

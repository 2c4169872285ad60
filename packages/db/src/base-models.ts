import type { BaseModel } from '@graft/contracts';
import type { Db } from './client.ts';
import type { Prisma } from './generated/prisma/client.ts';
import { ACTIVE_STATUSES, page, type DeleteOutcome } from './datasets.ts';

export interface NewUserBase {
  model: BaseModel;
  storageKey: string;
  sha256: string;
  bytes: number;
}

const json = (v: unknown) => v as Prisma.InputJsonValue;

export function createUserBase(db: Db, b: NewUserBase) {
  const m = b.model;
  return db.userBaseModel.create({
    data: {
      id: m.id,
      name: m.name,
      task: m.task,
      description: m.description,
      format: m.format,
      inputShape: json(m.inputShape),
      featureLayer: m.featureLayer,
      featureShape: json(m.featureShape),
      preprocessing: json(m.preprocessing),
      source: m.source,
      license: m.license,
      pretrainedOn: m.pretrainedOn,
      storageKey: b.storageKey,
      sha256: b.sha256,
      bytes: BigInt(b.bytes),
    },
  });
}

/** A registered base that exists (a deleted one keeps a tombstone row, as datasets do). */
export function getUserBase(db: Db, id: string) {
  return db.userBaseModel.findFirst({ where: { id, deletedAt: null } });
}

/** Whether `id` ever named a registered base (deleted or not): a valid list cursor. */
export async function isUserBaseCursor(db: Db, id: string): Promise<boolean> {
  return (await db.userBaseModel.count({ where: { id } })) > 0;
}

export async function listUserBases(db: Db, opts: { limit: number; after?: string | undefined }) {
  let before: Prisma.UserBaseModelWhereInput = {};
  if (opts.after) {
    const cursor = await db.userBaseModel.findUnique({ where: { id: opts.after }, select: { id: true, createdAt: true } });
    if (cursor) before = { OR: [{ createdAt: { lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { lt: cursor.id } }] };
  }
  const rows = await db.userBaseModel.findMany({
    where: { deletedAt: null, ...before },
    take: opts.limit + 1,
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
  });
  return page(rows, opts.limit);
}

/**
 * Marks a registered base deleted unless a queued or running job uses it (see `deleteDataset` for
 * the locking). Returns its storage directory: the caller removes the files after the commit.
 */
export async function deleteUserBase(db: Db, id: string): Promise<DeleteOutcome<{ storageKey: string }>> {
  return db.$transaction(async (tx) => {
    const locked = await tx.$queryRaw<{ storage_key: string }[]>`SELECT storage_key FROM base_models WHERE id = ${id} AND deleted_at IS NULL FOR UPDATE`;
    const row = locked[0];
    if (!row) return { ok: false, reason: 'not_found' } as const;
    const user = await tx.fineTune.findFirst({ where: { status: { in: [...ACTIVE_STATUSES] }, baseModelId: id }, select: { id: true } });
    if (user) return { ok: false, reason: 'in_use', jobId: user.id } as const;
    await tx.userBaseModel.update({ where: { id }, data: { deletedAt: new Date() } });
    return { ok: true, value: { storageKey: row.storage_key } } as const;
  });
}

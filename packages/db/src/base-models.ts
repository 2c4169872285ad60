import type { BaseModel } from '@graft/contracts';
import type { Db } from './client.ts';
import type { Prisma } from './generated/prisma/client.ts';
import { ACTIVE_STATUSES, page, scoped, type DeleteOutcome, type TenantScope } from './datasets.ts';

export interface NewUserBase {
  /** The owner (default: the `default` tenant); a registered base is its tenant's only. */
  tenantId?: string;
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
      ...(b.tenantId ? { tenantId: b.tenantId } : {}),
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
export function getUserBase(db: Db, id: string, tenantId: TenantScope) {
  return db.userBaseModel.findFirst({ where: { id, deletedAt: null, ...scoped(tenantId) } });
}

/** Whether `id` ever named one of the tenant's registered bases (deleted or not): a valid list cursor. */
export async function isUserBaseCursor(db: Db, id: string, tenantId: string): Promise<boolean> {
  return (await db.userBaseModel.count({ where: { id, tenantId } })) > 0;
}

export async function listUserBases(db: Db, opts: { tenantId: string; limit: number; after?: string | undefined }) {
  let before: Prisma.UserBaseModelWhereInput = {};
  if (opts.after) {
    const cursor = await db.userBaseModel.findFirst({ where: { id: opts.after, tenantId: opts.tenantId }, select: { id: true, createdAt: true } });
    if (cursor) before = { OR: [{ createdAt: { lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { lt: cursor.id } }] };
  }
  const rows = await db.userBaseModel.findMany({
    where: { tenantId: opts.tenantId, deletedAt: null, ...before },
    take: opts.limit + 1,
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
  });
  return page(rows, opts.limit);
}

/**
 * Marks a registered base deleted unless a queued or running job uses it (see `deleteDataset` for
 * the locking). Returns its storage directory: the caller removes the files after the commit.
 */
export async function deleteUserBase(db: Db, id: string, tenantId: string): Promise<DeleteOutcome<{ storageKey: string }>> {
  return db.$transaction(async (tx) => {
    const locked = await tx.$queryRaw<{ storage_key: string }[]>`SELECT storage_key FROM base_models WHERE id = ${id} AND tenant_id = ${tenantId} AND deleted_at IS NULL FOR UPDATE`;
    const row = locked[0];
    if (!row) return { ok: false, reason: 'not_found' } as const;
    const user = await tx.fineTune.findFirst({ where: { status: { in: [...ACTIVE_STATUSES] }, baseModelId: id }, select: { id: true } });
    if (user) return { ok: false, reason: 'in_use', jobId: user.id } as const;
    await tx.userBaseModel.update({ where: { id }, data: { deletedAt: new Date() } });
    return { ok: true, value: { storageKey: row.storage_key } } as const;
  });
}

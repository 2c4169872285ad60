import type { BaseModel } from '@graft/contracts';
import type { Db } from './client.ts';
import type { Prisma } from './generated/prisma/client.ts';
import { page } from './datasets.ts';

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

export function getUserBase(db: Db, id: string) {
  return db.userBaseModel.findUnique({ where: { id } });
}

export async function listUserBases(db: Db, opts: { limit: number; after?: string | undefined }) {
  const rows = await db.userBaseModel.findMany({
    take: opts.limit + 1,
    ...(opts.after ? { cursor: { id: opts.after }, skip: 1 } : {}),
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
  });
  return page(rows, opts.limit);
}

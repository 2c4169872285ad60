/** The database side of base resolution (see @graft/engine/resolve-base): user bases and fine-tunes. */
import type { BaseModel, FineTuneResult, FineTuneSpec, ImageBaseModel, TextBaseModel } from '@graft/contracts';
import type { BaseLookups } from '@graft/engine/resolve-base';
import type { Db } from './client.ts';
import { scoped, type TenantScope } from './datasets.ts';
import { getFineTune } from './fine-tunes.ts';
import type { UserBaseModel } from './generated/prisma/client.ts';

/** Registered bases and fine-tunes of `tenantId` only (catalog bases are everyone's). */
export function baseLookups(db: Db, pathOf: (storageKey: string) => string, tenantId: TenantScope): BaseLookups {
  return {
    async userBase(id) {
      const row = await db.userBaseModel.findFirst({ where: { id, deletedAt: null, ...scoped(tenantId) } });
      if (!row) return null;
      const model = userBaseToModel(row);
      return { model, dir: pathOf(row.storageKey) };
    },
    async fineTune(id) {
      const row = await getFineTune(db, id, tenantId);
      if (!row) return null;
      const spec = row.request as FineTuneSpec;
      const result = row.result as FineTuneResult | null;
      return {
        id: row.id,
        status: row.status,
        baseModelId: row.baseModelId,
        cutLayer: spec.cutLayer,
        classes: result?.classes ?? null,
        modelZip: row.modelKey ? pathOf(row.modelKey) : null,
        createdAt: row.createdAt.toISOString(),
      };
    },
  };
}

/** A registered base's row as the public `BaseModel` (image or text, by its task). */
export function userBaseToModel(row: UserBaseModel): BaseModel {
  const common = {
    id: row.id,
    object: 'base_model' as const,
    name: row.name,
    description: row.description,
    inputShape: row.inputShape as number[],
    featureLayer: row.featureLayer,
    featureShape: row.featureShape as number[],
    source: row.source,
    license: row.license,
    pretrainedOn: row.pretrainedOn,
  };
  // The `preprocessing` column holds the task's own preprocessing (pixels or tokenizer).
  if (row.task === 'text-classification') {
    return { ...common, task: 'text-classification', format: row.format as TextBaseModel['format'], preprocessing: row.preprocessing as TextBaseModel['preprocessing'] };
  }
  return { ...common, task: 'image-classification', format: row.format as ImageBaseModel['format'], preprocessing: row.preprocessing as ImageBaseModel['preprocessing'] };
}

import { BaseModel, BaseModelList, ErrorResponse, GraftError, IdParams } from '@graft/contracts';
import { getBaseModel, listBaseModels } from '@graft/engine/catalog';
import type { FastifyInstance } from 'fastify';

export default async function baseModelRoutes(app: FastifyInstance) {
  app.get(
    '',
    { schema: { tags: ['base-models'], summary: 'The pretrained bases a worker can load', response: { 200: BaseModelList } } },
    async () => ({ data: listBaseModels(), hasMore: false, nextCursor: null }),
  );

  app.get(
    '/:id',
    { schema: { tags: ['base-models'], summary: 'One base model', params: IdParams, response: { 200: BaseModel, '4xx': ErrorResponse } } },
    async (request) => {
      const { id } = request.params as { id: string };
      const base = getBaseModel(id);
      if (!base) throw new GraftError('base_model_not_found', `No base model ${id}; see GET /v1/base-models.`);
      return base;
    },
  );
}

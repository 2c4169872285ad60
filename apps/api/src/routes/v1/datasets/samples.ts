/**
 * `GET /v1/datasets/:id/samples`: the first few examples of each class, as a person would want to
 * see them before training (the dashboard's thumbnails and rows). Images are read from the zip's
 * directory and the few entries chosen; texts from the start of the normalised rows file.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DatasetSampleList, DatasetSamplesQuery, GraftError, IdParams, type DatasetSample } from '@graft/contracts';
import { datasets } from '@graft/db';
import { sampleArchiveImages } from '@graft/engine/dataset-archive';
import { described, errorResponses } from '../../../route-schemas.ts';

/** Rows read at most while looking for every class's examples (a rare class may have none early on). */
const MAX_ROWS_SCANNED = 50_000;
const TEXT_CHARS = 500;

const mime = (data: Buffer) => (data[0] === 0x89 && data[1] === 0x50 ? 'image/png' : 'image/jpeg');

const sampleRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/:id/samples',
    {
      schema: {
        operationId: 'getDatasetSamples',
        tags: ['datasets'],
        summary: 'A few examples of each class: images as data URIs, or text rows',
        params: IdParams,
        querystring: DatasetSamplesQuery,
        response: { 200: described(DatasetSampleList, 'Examples, class by class.'), ...errorResponses('invalid_request', 'dataset_not_found') },
      },
    },
    async (request) => {
      const { id } = request.params;
      const perClass = request.query.perClass ?? 8;
      const row = await datasets.getDataset(app.db, id, request.tenantId);
      if (!row || row.deletedAt) throw new GraftError('dataset_not_found', `No dataset ${id}.`);
      const key = row.task === 'text-classification' ? row.rowsKey : row.storageKey;
      if (!key) return { data: [] };
      const held = await app.storage.pull(key);
      try {
        if (row.task !== 'text-classification') {
          const images = await sampleArchiveImages(held.path, perClass);
          return { data: images.map((s): DatasetSample => ({ class: s.className, source: s.path, image: `data:${mime(s.data)};base64,${s.data.toString('base64')}`, text: null })) };
        }
        const byClass = new Map<string, DatasetSample[]>();
        const classes = ((row.classes as { name: string }[] | null) ?? []).map((c) => c.name);
        const lines = createInterface({ input: createReadStream(held.path), crlfDelay: Infinity });
        let scanned = 0;
        for await (const line of lines) {
          if (!line || ++scanned > MAX_ROWS_SCANNED) break;
          const r = JSON.parse(line) as { line: number; text: string; label: string };
          const list = byClass.get(r.label) ?? [];
          if (list.length >= perClass) continue;
          list.push({ class: r.label, source: `line ${r.line}`, image: null, text: r.text.length > TEXT_CHARS ? `${r.text.slice(0, TEXT_CHARS)}…` : r.text });
          byClass.set(r.label, list);
          if (byClass.size === classes.length && [...byClass.values()].every((l) => l.length >= perClass)) break;
        }
        lines.close();
        return { data: classes.flatMap((c) => byClass.get(c) ?? []) };
      } finally {
        held.release();
      }
    },
  );
};

export default sampleRoutes;

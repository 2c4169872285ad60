import { Dataset, DatasetList, DATASET_LIMITS, ErrorResponse, GraftError, IdParams, PageQuery, TASKS, newId } from '@graft/contracts';
import { datasets } from '@graft/db';
import { inspectArchive } from '@graft/engine/dataset-archive';
import type { FastifyInstance } from 'fastify';
import { datasetOut } from '../../../serializers.ts';

const errors = { '4xx': ErrorResponse };

export default async function datasetRoutes(app: FastifyInstance) {
  app.post(
    '',
    {
      schema: {
        tags: ['datasets'],
        summary: 'Upload a dataset (.zip of <class>/<image> folders)',
        description:
          'multipart/form-data with `file` (a .zip whose top-level folders are class names holding JPEG/PNG images; one wrapping folder is allowed), ' +
          '`task` (`image-classification`) and optional `name`. The archive is streamed to storage and checked entry by entry before it is accepted.',
        consumes: ['multipart/form-data'],
        response: { 201: Dataset, ...errors },
      },
    },
    async (request, reply) => {
      if (!request.isMultipart()) throw new GraftError('unsupported_media_type', 'Send the dataset as multipart/form-data with a `file` part.');
      const { storage } = app;
      const fields: Record<string, string> = {};
      let upload: { key: string; bytes: number; sha256: string; filename: string } | undefined;
      try {
        for await (const part of request.parts({ limits: { fileSize: app.config.MAX_UPLOAD_BYTES, files: 1, fields: 10, fieldSize: 1024 } })) {
          if (part.type === 'file') {
            if (part.fieldname !== 'file') {
              part.file.resume();
              throw new GraftError('invalid_request', `Unexpected file part "${part.fieldname}"; send the archive as \`file\`.`, part.fieldname);
            }
            const stored = await storage.writeStream(storage.tempKey('.zip'), part.file);
            upload = { ...stored, filename: part.filename };
            if (part.file.truncated) {
              throw new GraftError('payload_too_large', `The archive is larger than the limit of ${app.config.MAX_UPLOAD_BYTES} bytes.`, 'file');
            }
          } else {
            fields[part.fieldname] = String(part.value);
          }
        }
        if (!upload) throw new GraftError('invalid_request', 'The `file` part (a .zip archive) is required.', 'file');
        const task = fields.task;
        if (task === undefined) throw new GraftError('invalid_request', 'The `task` field is required (image-classification).', 'task');
        if (!(TASKS as readonly string[]).includes(task)) {
          throw new GraftError('invalid_request', `task must be one of: ${TASKS.join(', ')}.`, 'task');
        }
        // Text bases are in the contract before text datasets are: refuse rather than read a text upload as images.
        if (task !== 'image-classification') throw new GraftError('invalid_request', `${task} datasets are not accepted yet.`, 'task');
        const name = (fields.name ?? upload.filename ?? 'dataset').slice(0, DATASET_LIMITS.maxNameLength);

        const inspection = await inspectArchive(storage.path(upload.key));
        const id = newId('dataset');
        const key = `datasets/${id}.zip`;
        const { bytes, sha256 } = upload;
        await storage.commit(upload.key, key);
        upload = undefined; // committed: no longer ours to clean up
        try {
          const row = await datasets.createDataset(app.db, {
            id,
            name,
            task,
            storageKey: key,
            bytes,
            sha256,
            imageCount: inspection.images.length,
            classes: inspection.classes,
            skipped: inspection.skipped,
          });
          return reply.status(201).send(datasetOut(row));
        } catch (err) {
          await storage.remove(key);
          throw err;
        }
      } finally {
        if (upload) await storage.remove(upload.key);
      }
    },
  );

  app.get(
    '',
    { schema: { tags: ['datasets'], summary: 'List datasets, newest first', querystring: PageQuery, response: { 200: DatasetList, ...errors } } },
    async (request) => {
      const { limit, after } = request.query as { limit: number; after?: string };
      if (after && !(await datasets.getDataset(app.db, after))) throw new GraftError('invalid_request', 'Unknown cursor.', 'after');
      const page = await datasets.listDatasets(app.db, { limit, after });
      return { ...page, data: page.data.map(datasetOut) };
    },
  );

  app.get(
    '/:id',
    { schema: { tags: ['datasets'], summary: 'Get a dataset with its class balance', params: IdParams, response: { 200: Dataset, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: string };
      const row = await datasets.getDataset(app.db, id);
      if (!row) throw new GraftError('dataset_not_found', `No dataset ${id}.`);
      return datasetOut(row);
    },
  );
}

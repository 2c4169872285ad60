import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  CreateDatasetForm,
  Dataset,
  DatasetDeleted,
  DatasetList,
  DATASET_LIMITS,
  GraftError,
  IdParams,
  PAGE_LIMIT_DEFAULT,
  PageQuery,
  TASKS,
  newId,
} from '@graft/contracts';
import { datasets } from '@graft/db';
import { inspectArchive } from '@graft/engine/dataset-archive';
import { bodyByContentType, described, errorResponses } from '../../../route-schemas.ts';
import { datasetOut } from '../../../serializers.ts';

const datasetRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '',
    {
      schema: {
        operationId: 'createDataset',
        tags: ['datasets'],
        summary: 'Upload a dataset (.zip of <class>/<image> folders)',
        description:
          'multipart/form-data with `file` (a .zip whose top-level folders are class names holding JPEG/PNG images; one wrapping folder is allowed), ' +
          '`task` (`image-classification`) and optional `name`. The archive is streamed to storage and checked entry by entry before it is accepted. ' +
          `Limits: \`MAX_UPLOAD_BYTES\` (server configuration), ${DATASET_LIMITS.maxEntries} entries, ${DATASET_LIMITS.maxClasses} classes, ` +
          `${DATASET_LIMITS.maxImageSide} px per image side, class names of at most ${DATASET_LIMITS.maxClassNameLength} characters.`,
        body: bodyByContentType({ 'multipart/form-data': CreateDatasetForm }),
        response: {
          201: described(Dataset, 'The dataset, with its classes and balance.'),
          ...errorResponses('invalid_request', 'invalid_archive', 'payload_too_large', 'unsupported_media_type', 'no_images', 'too_few_classes', 'unreadable_entry', 'too_many_entries'),
        },
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
    {
      schema: {
        operationId: 'listDatasets',
        tags: ['datasets'],
        summary: 'List datasets, newest first',
        querystring: PageQuery,
        response: { 200: described(DatasetList, 'A page of datasets.'), ...errorResponses('invalid_request') },
      },
    },
    async (request) => {
      const { limit = PAGE_LIMIT_DEFAULT, after } = request.query;
      const page = await datasets.listDatasets(app.db, { limit, after });
      if (!page) throw new GraftError('invalid_request', 'Unknown cursor.', 'after');
      return { ...page, data: page.data.map(datasetOut) };
    },
  );

  app.get(
    '/:id',
    {
      schema: {
        operationId: 'getDataset',
        tags: ['datasets'],
        summary: 'Get a dataset with its class balance',
        params: IdParams,
        response: { 200: described(Dataset, 'The dataset.'), ...errorResponses('invalid_request', 'dataset_not_found') },
      },
    },
    async (request) => {
      const { id } = request.params;
      const row = await datasets.getDataset(app.db, id);
      if (!row) throw new GraftError('dataset_not_found', `No dataset ${id}.`);
      return datasetOut(row);
    },
  );

  app.delete(
    '/:id',
    {
      schema: {
        operationId: 'deleteDataset',
        tags: ['datasets'],
        summary: 'Delete a dataset and its archive',
        description:
          'Refused with 409 `resource_in_use` while a queued or running job uses it (as its dataset or test dataset). Jobs that used it keep their results; ' +
          'its id then answers 404.',
        params: IdParams,
        response: { 200: described(DatasetDeleted, 'The dataset is deleted.'), ...errorResponses('invalid_request', 'dataset_not_found', 'resource_in_use') },
      },
    },
    async (request) => {
      const { id } = request.params;
      const outcome = await datasets.deleteDataset(app.db, id);
      if (!outcome.ok) {
        if (outcome.reason === 'not_found') throw new GraftError('dataset_not_found', `No dataset ${id}.`);
        throw new GraftError('resource_in_use', `Job ${outcome.jobId} uses dataset ${id}; delete it once that job has ended (or cancel the job).`);
      }
      await app.storage.remove(outcome.value.storageKey);
      request.log.info({ datasetId: id }, 'dataset deleted');
      return { id, object: 'dataset' as const, deleted: true as const };
    },
  );
};

export default datasetRoutes;

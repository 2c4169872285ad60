import {
  Dataset,
  DatasetList,
  DATASET_LIMITS,
  ErrorResponse,
  GraftError,
  IdParams,
  PageQuery,
  TASKS,
  UploadDatasetFields,
  newId,
  parseWith,
  type Task,
} from '@graft/contracts';
import { datasets } from '@graft/db';
import { inspectArchive } from '@graft/engine/dataset-archive';
import { detectTextFormat, TextCheckPool } from '@graft/engine/text-dataset';
import type { FastifyInstance } from 'fastify';
import { datasetOut } from '../../../serializers.ts';
import { storeTextDataset } from './text.ts';

const errors = { '4xx': ErrorResponse };

/** Multipart fields arrive as text: the numeric one is converted before the schema checks it. */
function readFields(fields: Record<string, string>): UploadDatasetFields {
  const task = fields.task;
  if (task === undefined) throw new GraftError('invalid_request', `The \`task\` field is required (${TASKS.join(' or ')}).`, 'task');
  if (!(TASKS as readonly string[]).includes(task)) throw new GraftError('invalid_request', `task must be one of: ${TASKS.join(', ')}.`, 'task');
  const value: Record<string, unknown> = { ...fields };
  if (fields.maxInvalidShare !== undefined) {
    const n = Number(fields.maxInvalidShare);
    if (fields.maxInvalidShare.trim() === '' || !Number.isFinite(n)) {
      throw new GraftError('invalid_request', `maxInvalidShare must be a number from 0 to 1; got "${fields.maxInvalidShare.slice(0, 40)}".`, 'maxInvalidShare');
    }
    value.maxInvalidShare = n;
  }
  const form = parseWith(UploadDatasetFields, value, 'form');
  if (form.task !== 'text-classification') {
    for (const f of ['maxInvalidShare', 'baseModel'] as const) {
      if (form[f] !== undefined) throw new GraftError('invalid_request', `${f} applies to text-classification datasets only.`, f);
    }
  }
  return form;
}

/** A pointer to the right task when an upload is of the other kind. */
async function textHint(path: string, filename: string): Promise<string> {
  const text = await detectTextFormat(path, filename);
  if (!text) return '';
  const how = text.compression === 'none' ? '' : text.compression === 'gzip' ? ', gzipped' : ', in a zip';
  return ` It looks like a text dataset (${text.type.toUpperCase()}${how}): upload it with task=text-classification.`;
}

export default async function datasetRoutes(app: FastifyInstance) {
  // Text uploads are checked in worker threads (at most two at once; an idle one ends after a minute).
  const textChecks = new TextCheckPool({ maxThreads: 2, idleMs: 60_000 });
  app.addHook('onClose', () => textChecks.close());

  app.post(
    '',
    {
      schema: {
        tags: ['datasets'],
        summary: 'Upload a dataset: a zip of image class folders, or a CSV/JSONL text file',
        description:
          'multipart/form-data with `file`, `task` and optional `name`. ' +
          '`image-classification`: a .zip whose top-level folders are class names holding JPEG/PNG images (one wrapping folder is allowed); every entry is checked. ' +
          '`text-classification`: CSV (header with `text` and `label` columns) or JSON Lines (`{"text": …, "label": …}`), plain, gzipped or the single file of a zip; ' +
          'every row is checked (invalid rows are listed with their line; more than `maxInvalidShare` of them refuses the upload with 422 `too_many_invalid_rows`), ' +
          'and the answer gives rows per class, length percentiles in characters and in tokens of `baseModel`, and duplicates. The file is streamed to storage, never held in memory.',
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
              throw new GraftError('invalid_request', `Unexpected file part "${part.fieldname}"; send the dataset as \`file\`.`, part.fieldname);
            }
            const stored = await storage.writeStream(storage.tempKey('.upload'), part.file);
            upload = { ...stored, filename: part.filename ?? '' };
            if (part.file.truncated) {
              throw new GraftError('payload_too_large', `The file is larger than the limit of ${app.config.MAX_UPLOAD_BYTES} bytes.`, 'file');
            }
          } else {
            fields[part.fieldname] = String(part.value);
          }
        }
        if (!upload) throw new GraftError('invalid_request', 'The `file` part (a .zip archive, or a CSV/JSONL file for text) is required.', 'file');
        const form = readFields(fields);
        const name = (form.name ?? (upload.filename || 'dataset')).slice(0, DATASET_LIMITS.maxNameLength);
        const task: Task = form.task;

        if (task === 'text-classification') {
          const taken = upload;
          upload = undefined; // storeTextDataset owns the upload from here (it moves or removes it)
          const row = await storeTextDataset(app, { upload: taken, name, maxInvalidShare: form.maxInvalidShare ?? 0, baseModel: form.baseModel, log: request.log, pool: textChecks });
          return reply.status(201).send(datasetOut(row));
        }

        let inspection;
        try {
          inspection = await inspectArchive(storage.path(upload.key));
        } catch (err) {
          if (err instanceof GraftError && (err.code === 'invalid_archive' || err.code === 'no_images')) {
            const hint = await textHint(storage.path(upload.key), upload.filename);
            if (hint) throw new GraftError(err.code, err.message + hint, err.param);
          }
          throw err;
        }
        const id = newId('dataset');
        const archiveKey = `datasets/${id}.zip`;
        const { bytes, sha256 } = upload;
        await storage.commit(upload.key, archiveKey);
        upload = undefined; // committed: no longer ours to clean up
        try {
          const row = await datasets.createDataset(app.db, {
            id,
            name,
            task,
            storageKey: archiveKey,
            bytes,
            sha256,
            imageCount: inspection.images.length,
            classes: inspection.classes,
            skipped: inspection.skipped,
          });
          return reply.status(201).send(datasetOut(row));
        } catch (err) {
          await storage.remove(archiveKey);
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
    { schema: { tags: ['datasets'], summary: 'Get a dataset with its statistics', params: IdParams, response: { 200: Dataset, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: string };
      const row = await datasets.getDataset(app.db, id);
      if (!row) throw new GraftError('dataset_not_found', `No dataset ${id}.`);
      return datasetOut(row);
    },
  );
}

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
  TEXT_DATASET_LIMITS,
  UploadDatasetFields,
  newId,
  parseWith,
} from '@graft/contracts';
import { datasets } from '@graft/db';
import { ArchiveCheckPool } from '@graft/engine/dataset-archive';
import { ChildTaskAborted, ChildTaskStopped, type ChildTaskReport } from '@graft/engine/child-tasks';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import { archiveLimitsOf, datasetCheckLimitsOf } from '../../../config.ts';
import { assertStorableText } from '../../../plugins/input-guard.ts';
import { detectTextFormat, TextCheckPool } from '@graft/engine/text-dataset';
import { bodyByContentType, described, errorResponses } from '../../../route-schemas.ts';
import { datasetOut } from '../../../serializers.ts';
import { storeTextDataset } from './text.ts';
import { assertStorageQuota } from '../../../quotas.ts';

/** Multipart fields arrive as text: the numeric one is converted before the schema checks it. */
function readFields(fields: Record<string, string>): UploadDatasetFields {
  assertStorableText(fields, 'form');
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

const T = TEXT_DATASET_LIMITS;

/** Aborted when the client goes away before its answer (the check it waits for is then killed). */
function abandonedSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  return ac.signal;
}

/** Logs how a check process did (its own peak resident set: memory that is not the API's). */
const logCheck = (log: FastifyBaseLogger, kind: 'image' | 'text') => (r: ChildTaskReport) =>
  log.info({ check: kind, ms: Math.round(r.ms), childPeakRssBytes: r.childPeakRssBytes, coldStart: r.coldStart, outcome: r.outcome }, 'dataset check process');

const datasetRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Uploads are checked in child processes, two at once per kind (the rest wait), bounded in memory and time:
  // the decoders' memory is never the API's, and a file that crashes or exhausts one ends its child only.
  const limits = datasetCheckLimitsOf(app.config);
  // By default a fresh child per check: all its memory goes back when it answers, and no upload is
  // checked in a process that held another's. A spare is started ahead so that a small upload does not
  // wait for a process to start (half a second under load: bench/RESULTS.md, upload).
  // DATASET_CHECK_IDLE_MS keeps used children warm instead.
  const pools = { maxChildren: 2, idleMs: app.config.DATASET_CHECK_IDLE_MS, spareMs: app.config.DATASET_CHECK_SPARE_MS, limits };
  const textChecks = new TextCheckPool(pools);
  const imageChecks = new ArchiveCheckPool(pools);
  app.addHook('onClose', () => Promise.all([textChecks.close(), imageChecks.close()]));
  const archiveLimits = archiveLimitsOf(app.config);

  app.post(
    '',
    {
      schema: {
        operationId: 'createDataset',
        tags: ['datasets'],
        summary: 'Upload a dataset: a zip of image class folders, or a CSV/JSONL text file',
        description:
          'multipart/form-data with `file`, `task` and optional `name`. The file is streamed to storage and checked in full before it is accepted. ' +
          '`image-classification`: a .zip whose top-level folders are class names holding JPEG/PNG images (one wrapping folder is allowed); ' +
          `limits: \`MAX_UPLOAD_BYTES\` (server configuration), ${DATASET_LIMITS.maxEntries} entries, ${DATASET_LIMITS.maxClasses} classes, ` +
          `${DATASET_LIMITS.maxImageSide} px per image side, class names of at most ${DATASET_LIMITS.maxClassNameLength} characters. ` +
          '`text-classification`: CSV (header with `text` and `label` columns, RFC 4180 quoting, UTF-8 with or without BOM) or JSON Lines ' +
          '(`{"text": …, "label": …}`), plain, gzipped or the single file of a zip. Every row is checked; invalid ones are listed with their line and reason, ' +
          'and more than `maxInvalidShare` of them (default 0) refuses the upload with 422 `too_many_invalid_rows`. The answer gives rows per class, ' +
          'length percentiles in characters and in tokens of `baseModel`, and duplicates. ' +
          `Limits: ${T.maxRows} rows, ${T.maxClasses} labels, texts of at most ${T.maxTextLength} characters, labels of at most ${T.maxLabelLength}, ` +
          `a CSV record or JSONL line of at most ${T.maxRecordBytes} bytes, ${T.maxDecompressedBytes} bytes decompressed.`,
        body: bodyByContentType({ 'multipart/form-data': CreateDatasetForm }),
        response: {
          201: described(Dataset, 'The dataset with its statistics (images: classes and balance; text: format, rows per class, lengths, duplicates, invalid rows).'),
          ...errorResponses(
            'invalid_request', 'invalid_archive', 'unsafe_archive', 'payload_too_large', 'unsupported_media_type', 'no_images', 'too_few_classes', 'unreadable_entry', 'too_many_entries',
            'invalid_text_dataset', 'too_many_invalid_rows', 'dataset_check_failed', 'base_model_not_found', 'base_model_unusable', 'task_mismatch', 'quota_exceeded',
          ),
        },
      },
    },
    async (request, reply) => {
      if (!request.isMultipart()) throw new GraftError('unsupported_media_type', 'Send the dataset as multipart/form-data with a `file` part.');
      const { storage } = app;
      const signal = abandonedSignal(reply);
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
        // Checked once the size is known (before the checks that cost CPU): refusing before the body is read
        // would cut clients off mid-upload (EPIPE) instead of answering them.
        await assertStorageQuota(app, request.tenantId, upload.bytes);
        const form = readFields(fields);
        assertStorableText({ file: upload.filename }, 'form'); // the file's name becomes the dataset's name
        const name = (form.name ?? (upload.filename || 'dataset')).slice(0, DATASET_LIMITS.maxNameLength);

        if (form.task === 'text-classification') {
          const taken = upload;
          upload = undefined; // storeTextDataset owns the upload from here (it moves or removes it)
          const row = await storeTextDataset(app, { upload: taken, tenantId: request.tenantId, name, maxInvalidShare: form.maxInvalidShare ?? 0, baseModel: form.baseModel, log: request.log, pool: textChecks, signal, onReport: logCheck(request.log, 'text') });
          return reply.status(201).send(datasetOut(row));
        }

        let inspection;
        try {
          const path = storage.path(upload.key);
          inspection = await imageChecks.inspect(path, archiveLimits, { ...DATASET_LIMITS, maxEntries: archiveLimits.maxEntries }, { signal, onReport: logCheck(request.log, 'image') });
        } catch (err) {
          if (err instanceof GraftError && (err.code === 'invalid_archive' || err.code === 'no_images')) {
            const hint = await textHint(storage.path(upload.key), upload.filename);
            if (hint) throw new GraftError(err.code, err.message + hint, err.param);
          }
          throw err;
        }
        const id = newId('dataset');
        const key = `datasets/${id}.zip`;
        const { bytes, sha256 } = upload;
        await storage.commit(upload.key, key);
        upload = undefined; // committed: no longer ours to clean up
        try {
          const row = await datasets.createDataset(app.db, {
            id,
            tenantId: request.tenantId,
            name,
            task: form.task,
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
      } catch (err) {
        if (err instanceof ChildTaskStopped) request.log.warn({ reason: err.reason, detail: err.detail }, 'dataset check stopped');
        if (err instanceof ChildTaskAborted) {
          request.log.info('the client went away during the dataset check: check stopped, nothing stored');
          return reply.hijack(); // the connection is gone: nothing to answer
        }
        throw err;
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
      const page = await datasets.listDatasets(app.db, { tenantId: request.tenantId, limit, after });
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
        summary: 'Get a dataset with its statistics',
        params: IdParams,
        response: { 200: described(Dataset, 'The dataset.'), ...errorResponses('invalid_request', 'dataset_not_found') },
      },
    },
    async (request) => {
      const { id } = request.params;
      const row = await datasets.getDataset(app.db, id, request.tenantId);
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
        summary: 'Delete a dataset and its files',
        description:
          'Refused with 409 `resource_in_use` while a queued or running job uses it (as its dataset or test dataset). Jobs that used it keep their results; ' +
          'its id then answers 404. A text dataset\'s normalised rows and fingerprints go with its upload.',
        params: IdParams,
        response: { 200: described(DatasetDeleted, 'The dataset is deleted.'), ...errorResponses('invalid_request', 'dataset_not_found', 'resource_in_use') },
      },
    },
    async (request) => {
      const { id } = request.params;
      const outcome = await datasets.deleteDataset(app.db, id, request.tenantId);
      if (!outcome.ok) {
        if (outcome.reason === 'not_found') throw new GraftError('dataset_not_found', `No dataset ${id}.`);
        throw new GraftError('resource_in_use', `Job ${outcome.jobId} uses dataset ${id}; delete it once that job has ended (or cancel the job).`);
      }
      await Promise.all(outcome.value.files.map((key) => app.storage.remove(key)));
      request.log.info({ datasetId: id }, 'dataset deleted');
      return { id, object: 'dataset' as const, deleted: true as const };
    },
  );
};

export default datasetRoutes;

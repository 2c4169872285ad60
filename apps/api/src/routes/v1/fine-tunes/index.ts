import {
  CreateFineTuneBody,
  CheckpointList,
  ErrorResponse,
  FineTune,
  FineTuneEventList,
  FineTuneListQuery,
  FineTuneMetricList,
  GraftError,
  IdParams,
  PageQuery,
  normalizeFineTune,
  type FineTuneStatus,
  type RequestWarning,
} from '@graft/contracts';
import { baseLookups, checkpoints, datasets, events, fineTunes, metrics, type FineTuneRow } from '@graft/db';
import { resolveBase } from '@graft/engine/resolve-base';
import { publishCancel } from '@graft/queue';
import { createHash, randomInt } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { checkpointOut, eventOut, fineTuneOut, metricOut } from '../../../serializers.ts';
import { testSetLeakage } from '../datasets/leakage.ts';

const errors = { '4xx': ErrorResponse, '5xx': ErrorResponse };
const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Repeat a request safely: the same key returns the same job.' })),
});

/** Stable JSON (sorted keys) so that the same request always hashes the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value as object).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Event types that validation records at creation (answered again by an idempotent replay). */
const REQUEST_WARNING_TYPES = new Set(['leakage']);

export default async function fineTuneRoutes(app: FastifyInstance) {
  const requestWarnings = async (id: string): Promise<RequestWarning[]> => {
    const first = await events.listEvents(app.db, id, { limit: 10 });
    return (first?.data ?? [])
      .filter((e) => e.level === 'warning' && REQUEST_WARNING_TYPES.has(e.type))
      .map((e) => ({ type: e.type, message: e.message, data: (e.data as Record<string, unknown> | null) ?? {} }));
  };

  const load = async (id: string): Promise<FineTuneRow> => {
    const row = await fineTunes.getFineTune(app.db, id);
    if (!row) throw new GraftError('fine_tune_not_found', `No fine-tune job ${id}.`);
    return row;
  };

  app.post(
    '',
    {
      schema: {
        tags: ['fine-tunes'],
        summary: 'Start a fine-tune job',
        description: 'Freezes the base at its feature layer, adds a new classification head and trains it on the dataset. Answers 201 with the queued job.',
        headers: IdempotencyHeaders,
        body: CreateFineTuneBody,
        response: { 200: FineTune, 201: FineTune, ...errors },
      },
    },
    async (request, reply) => {
      const body = request.body as CreateFineTuneBody;
      const key = (request.headers['idempotency-key'] as string | undefined) ?? undefined;
      const requestHash = createHash('sha256').update(canonical(body)).digest('hex');
      if (key) {
        const previous = await fineTunes.findByIdempotencyKey(app.db, key);
        if (previous) return replay(previous);
      }
      const resolved = await resolveBase(body.baseModel, baseLookups(app.db, (k) => app.storage.path(k)));
      if (!resolved.ok) throw new GraftError(resolved.code, resolved.message, 'baseModel');
      const base = resolved.base.descriptor;
      const dataset = await datasets.getDataset(app.db, body.dataset);
      if (!dataset) throw new GraftError('dataset_not_found', `No dataset ${body.dataset}.`, 'dataset');
      if (dataset.task !== base.task) {
        throw new GraftError('task_mismatch', `Dataset ${dataset.id} is for ${dataset.task}; base ${base.id} is for ${base.task}.`, 'dataset');
      }
      const classNames = (dataset.classes as { name: string }[]).map((c) => c.name);
      const warnings: RequestWarning[] = [];
      if (body.testDataset) {
        const test = await datasets.getDataset(app.db, body.testDataset);
        if (!test) throw new GraftError('dataset_not_found', `No dataset ${body.testDataset}.`, 'testDataset');
        if (test.task !== dataset.task) {
          throw new GraftError('task_mismatch', `Test dataset ${test.id} is for ${test.task}; dataset ${dataset.id} is for ${dataset.task}.`, 'testDataset');
        }
        const unknown = (test.classes as { name: string }[]).map((c) => c.name).filter((c) => !classNames.includes(c));
        if (unknown.length) {
          throw new GraftError('class_mismatch', `Test dataset ${test.id} has classes the training dataset lacks: ${unknown.slice(0, 10).join(', ')}.`, 'testDataset');
        }
        const leakage = await testSetLeakage(app, dataset, test);
        if (leakage) warnings.push(leakage);
      }
      if (body.classWeights && typeof body.classWeights === 'object') {
        const unknown = Object.keys(body.classWeights).filter((c) => !classNames.includes(c));
        if (unknown.length) throw new GraftError('class_mismatch', `classWeights names classes the dataset lacks: ${unknown.slice(0, 10).join(', ')}.`, `classWeights.${unknown[0]}`);
      }
      if (base.format === 'tfjs-graph') {
        // A graph model has no layers to unfreeze or re-initialise: it can only extract features.
        if (body.trainableLayers !== undefined && body.trainableLayers !== 'none') {
          throw new GraftError('base_model_unusable', `${base.id} is a graph model: it can only be a frozen feature extractor (trainableLayers must be "none").`, 'trainableLayers');
        }
        if (body.baseline === 'scratch') {
          throw new GraftError('base_model_unusable', `${base.id} is a graph model: its architecture cannot be re-initialised for a scratch baseline.`, 'baseline');
        }
      }
      const spec = normalizeFineTune(body, base, body.seed ?? randomInt(0, 2 ** 31 - 1));
      let row: FineTuneRow;
      try {
        row = await fineTunes.createFineTune(app.db, {
          spec,
          idempotencyKey: key,
          requestHash,
          events: warnings.map((w) => ({ level: 'warning' as const, type: w.type, message: w.message, data: w.data })),
        });
      } catch (err) {
        // Two requests with one key at once: the unique index lets one through; replay it.
        if (key && (err as { code?: string }).code === 'P2002') {
          const winner = await fineTunes.findByIdempotencyKey(app.db, key);
          if (winner) return replay(winner);
        }
        throw err;
      }
      try {
        await app.queue.add('fine-tune', { fineTuneId: row.id }, { jobId: row.id });
      } catch (err) {
        request.log.error({ err, jobId: row.id }, 'enqueue failed');
        await fineTunes.transition(app.db, row.id, ['queued'], 'failed', { finishedAt: new Date(), error: { code: 'queue_unavailable', message: 'The job could not be queued (Redis unavailable); submit it again.' } }, {
          level: 'error', type: 'status', message: 'Job failed: could not be queued', data: { status: 'failed' },
        });
        throw err;
      }
      request.log.info({ jobId: row.id }, 'fine-tune queued');
      return reply.status(201).send({ ...fineTuneOut(row), ...(warnings.length ? { warnings } : {}) });

      async function replay(previous: FineTuneRow) {
        if (previous.requestHash !== requestHash) {
          throw new GraftError('idempotency_key_reused', 'This Idempotency-Key was used with a different request body.', 'Idempotency-Key');
        }
        const warnings = await requestWarnings(previous.id);
        return reply.status(200).header('idempotent-replayed', 'true').send({ ...fineTuneOut(previous), ...(warnings.length ? { warnings } : {}) });
      }
    },
  );

  app.get(
    '',
    { schema: { tags: ['fine-tunes'], summary: 'List jobs, newest first', querystring: FineTuneListQuery, response: { 200: Type.Object({ data: Type.Array(FineTune), hasMore: Type.Boolean(), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errors } } },
    async (request) => {
      const q = request.query as { limit: number; after?: string; status?: FineTuneStatus };
      if (q.after && !(await fineTunes.getFineTune(app.db, q.after))) throw new GraftError('invalid_request', 'Unknown cursor.', 'after');
      const page = await fineTunes.listFineTunes(app.db, q);
      return { ...page, data: page.data.map(fineTuneOut) };
    },
  );

  app.get(
    '/:id',
    { schema: { tags: ['fine-tunes'], summary: 'Status, progress, latest metrics and result of a job', params: IdParams, response: { 200: FineTune, ...errors } } },
    async (request) => fineTuneOut(await load((request.params as { id: string }).id)),
  );

  app.get(
    '/:id/events',
    { schema: { tags: ['fine-tunes'], summary: 'What happened, oldest first', params: IdParams, querystring: PageQuery, response: { 200: FineTuneEventList, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: string };
      const { limit, after } = request.query as { limit: number; after?: string };
      await load(id);
      const page = await events.listEvents(app.db, id, { limit, after });
      if (!page) throw new GraftError('invalid_request', 'Unknown cursor.', 'after');
      return { ...page, data: page.data.map(eventOut) };
    },
  );

  app.get(
    '/:id/metrics',
    { schema: { tags: ['fine-tunes'], summary: 'One row per epoch', params: IdParams, response: { 200: FineTuneMetricList, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: string };
      await load(id);
      return { data: (await metrics.listMetrics(app.db, id)).map(metricOut) };
    },
  );

  app.post(
    '/:id/cancel',
    {
      schema: {
        tags: ['fine-tunes'],
        summary: 'Cancel a job',
        description: 'A queued job is cancelled at once (200). A running job is asked to stop (202): it stops within one batch, keeping its events and metrics.',
        params: IdParams,
        response: { 200: FineTune, 202: FineTune, ...errors },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      let row = await load(id);
      if (row.status === 'cancelled') return reply.status(200).send(fineTuneOut(row));
      if (row.status === 'succeeded' || row.status === 'failed') {
        throw new GraftError('job_not_cancellable', `Job ${id} has already ${row.status}.`);
      }
      if (row.status === 'queued') {
        const job = await app.queue.getJob(id);
        // remove() fails when a worker holds the job's lock: it is starting, so cancel it as running.
        const removed = job ? await job.remove().then(() => true, () => false) : true;
        if (removed) {
          const now = new Date();
          const ok = await fineTunes.transition(app.db, id, ['queued'], 'cancelled', { finishedAt: now, cancelRequestedAt: now }, {
            level: 'info', type: 'status', message: 'Job cancelled before it started', data: { status: 'cancelled' },
          });
          if (ok) return reply.status(200).send(fineTuneOut(await load(id)));
        }
      }
      await fineTunes.requestCancel(app.db, id);
      await publishCancel(app.redis, app.config.QUEUE_PREFIX, id);
      row = await load(id);
      return reply.status(row.status === 'cancelled' ? 200 : 202).send(fineTuneOut(row));
    },
  );

  app.get(
    '/:id/model',
    {
      schema: {
        tags: ['fine-tunes'],
        summary: 'Download the fine-tuned model (.zip)',
        description: 'A zip holding `model.json` and weight shards (tfjs layers format), `labels.json` (class names in output order), `preprocessing.json` and `training.json` (split, metrics, seed).',
        params: IdParams,
        produces: ['application/zip'],
        response: { 200: Type.String({ format: 'binary' }), ...errors },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const row = await load(id);
      if (row.status !== 'succeeded' || !row.modelKey) throw new GraftError('model_not_ready', `Job ${id} is ${row.status}; a model exists once it has succeeded.`);
      return sendZip(reply, row.modelKey, `${id}.zip`);
    },
  );

  app.get(
    '/:id/checkpoints',
    { schema: { tags: ['fine-tunes'], summary: 'Checkpoints of a job, oldest first; the best by validation loss is marked', params: IdParams, response: { 200: CheckpointList, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: string };
      await load(id);
      return { data: (await checkpoints.listCheckpoints(app.db, id)).map(checkpointOut) };
    },
  );

  app.get(
    '/:id/checkpoints/:checkpoint/model',
    {
      schema: {
        tags: ['fine-tunes'],
        summary: 'Download a checkpoint as a model (.zip)',
        params: Type.Object({ id: Type.String({ maxLength: 80 }), checkpoint: Type.String({ maxLength: 80 }) }),
        produces: ['application/zip'],
        response: { 200: Type.String({ format: 'binary' }), ...errors },
      },
    },
    async (request, reply) => {
      const { id, checkpoint } = request.params as { id: string; checkpoint: string };
      await load(id);
      const row = await checkpoints.getCheckpoint(app.db, id, checkpoint);
      if (!row) throw new GraftError('checkpoint_not_found', `No checkpoint ${checkpoint} in job ${id}.`);
      return sendZip(reply, row.storageKey, `${id}-${row.id}.zip`);
    },
  );

  async function sendZip(reply: FastifyReply, key: string, filename: string) {
    // With S3_PRESIGNED_DOWNLOADS the client fetches the object from the bucket directly.
    const presigned = await app.storage.downloadUrl(key, { filename, contentType: 'application/zip' });
    if (presigned) return reply.redirect(presigned, 302);
    const size = await app.storage.size(key);
    if (size === null) throw new Error(`artifact missing from storage: ${key}`);
    return reply
      .header('content-type', 'application/zip')
      .header('content-length', size)
      .header('content-disposition', `attachment; filename="${filename}"`)
      .send(await app.storage.read(key));
  }
}

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  CreateFineTuneBody,
  CheckpointList,
  FineTune,
  FineTuneDeleted,
  FineTuneEventList,
  FineTuneList,
  FineTuneListQuery,
  FineTuneMetricList,
  GraftError,
  IdParams,
  PAGE_LIMIT_DEFAULT,
  PageQuery,
  STREAM_DESCRIPTION,
  WebhookDeliveryList,
  newWebhookSecret,
  normalizeFineTune,
  resolveResources,
  type RequestWarning,
} from '@graft/contracts';
import { baseLookups, checkpoints, datasets, events, fineTunes, metrics, transitions, webhooks, type FineTuneRow } from '@graft/db';
import { resolveBase } from '@graft/engine/resolve-base';
import { publishCancel, publishFeedUpdate } from '@graft/queue';
import { createHash, randomInt } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { binaryResponse, described, errorResponses } from '../../../route-schemas.ts';
import { checkpointOut, deliveryOut, eventOut, fineTuneOut, metricOut } from '../../../serializers.ts';
import { assertStorageQuota } from '../../../quotas.ts';
import { checkWebhookUrl } from '../../../webhook-url.ts';
import { testSetLeakage } from '../datasets/leakage.ts';
import { checkpointModelKey } from './checkpoint-model.ts';
import { streamEvents, wantsEventStream } from './event-stream.ts';

const StreamHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ minLength: 1, maxLength: 80, description: 'Server-Sent Events: resume after this message (the `id:` of the last message seen; the id of an event, `ev_…`, is taken too).' })),
});
const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Repeat a request safely: the same key with the same body returns the same job.' })),
});
const CheckpointParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 80, description: 'The fine-tune id.' }),
  checkpoint: Type.String({ minLength: 1, maxLength: 80, description: 'The checkpoint id.' }),
});
const MODEL_ZIP =
  'A zip holding `model.json` and weight shards (tfjs layers format), `labels.json` (class names in output order), `preprocessing.json` and `training.json` (split, metrics, seed).';

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

const fineTuneRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const requestWarnings = async (id: string): Promise<RequestWarning[]> => {
    const first = await events.listEvents(app.db, id, { limit: 10 });
    return (first?.data ?? [])
      .filter((e) => e.level === 'warning' && REQUEST_WARNING_TYPES.has(e.type))
      .map((e) => ({ type: e.type, message: e.message, data: (e.data as Record<string, unknown> | null) ?? {} }));
  };
  /** Wakes the job's watchers (every API process) after a write to its feed; a lost nudge only delays them. */
  const nudge = (id: string) => publishFeedUpdate(app.redis, app.config.QUEUE_PREFIX, id).catch((err: Error) => app.log.warn({ err: err.message, jobId: id }, 'feed nudge failed'));
  /** The creation answer (and its replays) is the one place the job's webhook secret is shown. */
  const withSecret = (row: FineTuneRow) => {
    const out = fineTuneOut(row);
    return out.webhook && row.webhookSecret ? { ...out, webhook: { ...out.webhook, secret: row.webhookSecret } } : out;
  };
  /** The caller's job; another tenant's answers 404 like one that does not exist. */
  const load = async (tenantId: string, id: string): Promise<FineTuneRow> => {
    const row = await fineTunes.getFineTune(app.db, id, tenantId);
    if (!row) throw new GraftError('fine_tune_not_found', `No fine-tune job ${id}.`);
    return row;
  };

  app.post(
    '',
    {
      schema: {
        operationId: 'createFineTune',
        tags: ['fine-tunes'],
        summary: 'Start a fine-tune job',
        description:
          'Freezes the base at its feature layer, adds a new classification head and trains it on the dataset. Answers 201 with the queued job; ' +
          'with an `Idempotency-Key` already used for the same body, 200 with that job. A text `testDataset` sharing texts with the training ' +
          'dataset is not refused: the answer carries a `leakage` warning (also the job\'s first warning event).',
        headers: IdempotencyHeaders,
        body: CreateFineTuneBody,
        response: {
          200: described(FineTune, 'The job created earlier with this Idempotency-Key and body (nothing new is queued).', {
            'idempotent-replayed': { description: 'Always `true`: this answer replays an earlier request.', type: 'string', enum: ['true'] },
          }),
          201: described(FineTune, 'The queued job, every option explicit.'),
          ...errorResponses(
            'invalid_request', 'unsupported_media_type', 'payload_too_large', 'base_model_not_found', 'dataset_not_found', 'idempotency_key_reused',
            'class_mismatch', 'base_model_unusable', 'task_mismatch', 'invalid_webhook_url', 'quota_exceeded',
          ),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const key = request.headers['idempotency-key'];
      const requestHash = createHash('sha256').update(canonical(body)).digest('hex');
      // The look-ups a request needs are independent: one round trip's wait for all of them, not four.
      // The storage quota's answer is only used (thrown) where it was checked before, after validation.
      const storageQuota = assertStorageQuota(app, request.tenantId).then(() => null, (err: unknown) => err);
      const [previous, resolved, dataset] = await Promise.all([
        key ? fineTunes.findByIdempotencyKey(app.db, request.tenantId, key) : null,
        resolveBase(body.baseModel, baseLookups(app.db, (k) => app.storage.path(k), request.tenantId)),
        datasets.getDataset(app.db, body.dataset, request.tenantId),
      ]);
      if (previous) return replay(previous);
      if (!resolved.ok) throw new GraftError(resolved.code, resolved.message, 'baseModel');
      const base = resolved.base.descriptor;
      if (!dataset) throw new GraftError('dataset_not_found', `No dataset ${body.dataset}.`, 'dataset');
      if (dataset.task !== base.task) {
        throw new GraftError('task_mismatch', `Dataset ${dataset.id} is for ${dataset.task}; base ${base.id} is for ${base.task}.`, 'dataset');
      }
      const classNames = (dataset.classes as { name: string }[]).map((c) => c.name);
      const warnings: RequestWarning[] = [];
      if (body.testDataset) {
        const test = await datasets.getDataset(app.db, body.testDataset, request.tenantId);
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
      if (base.format === 'tfjs-graph' || base.format === 'onnx') {
        // A graph model or an ONNX encoder has no tfjs layers to unfreeze or re-initialise: it can only extract features.
        const kind = base.format === 'onnx' ? 'an ONNX encoder' : 'a graph model';
        if (body.trainableLayers !== undefined && body.trainableLayers !== 'none') {
          throw new GraftError('base_model_unusable', `${base.id} is ${kind}: it can only be a frozen feature extractor (trainableLayers must be "none").`, 'trainableLayers');
        }
        if (body.baseline === 'scratch') {
          throw new GraftError('base_model_unusable', `${base.id} is ${kind}: its architecture cannot be re-initialised for a scratch baseline.`, 'baseline');
        }
      }
      const examples = (dataset.classes as { images?: number; rows?: number }[]).reduce((n, c) => n + (c.images ?? c.rows ?? 0), 0);
      const spec = normalizeFineTune(body, base, body.seed ?? randomInt(0, 2 ** 31 - 1));
      const webhook = body.webhookUrl
        ? { url: await checkWebhookUrl(body.webhookUrl, app.config.OUTBOUND_ALLOWLIST, 'webhookUrl'), events: body.webhookEvents, secret: newWebhookSecret() }
        : undefined;
      const resources = resolveResources(body.resources, base, spec.hyperparameters.batchSize, examples);
      if (base.task === 'text-classification' && spec.augmentation) {
        throw new GraftError('invalid_request', 'Augmentation applies to images only: leave it out for a text fine-tune.', 'augmentation');
      }
      // A job adds a model and checkpoints: refused while the tenant is at its storage limit.
      const refused = await storageQuota;
      if (refused) throw refused;
      let row: FineTuneRow;
      let mayHaveDeliveries: boolean;
      try {
        ({ row, mayHaveDeliveries } = await fineTunes.createQueuedFineTune(app.db, {
          tenantId: request.tenantId,
          maxActiveJobs: app.config.MAX_ACTIVE_JOBS_PER_TENANT,
          spec,
          resources,
          idempotencyKey: key,
          requestHash,
          webhook,
          events: warnings.map((w) => ({ level: 'warning' as const, type: w.type, message: w.message, data: w.data })),
        }));
      } catch (err) {
        // Two requests with one key at once: the unique index lets one through; replay it.
        if (key && fineTunes.isUniqueViolation(err)) {
          const winner = await fineTunes.findByIdempotencyKey(app.db, request.tenantId, key);
          if (winner) return replay(winner);
        }
        throw err;
      }
      try {
        await app.queue.add('fine-tune', { fineTuneId: row.id, resources }, { jobId: row.id });
      } catch (err) {
        // The job was never accepted: remove its row so the answer (503) is the whole truth and the
        // Idempotency-Key stays free. If Postgres fails too, the row stays queued and the reconciler
        // enqueues it; a retry with the same key then finds that one job.
        request.log.error({ err, jobId: row.id }, 'enqueue failed');
        await fineTunes.discardUnqueued(app.db, row.id).catch((e: Error) => request.log.warn({ err: e.message, jobId: row.id }, 'could not discard the unqueued job'));
        throw err;
      }
      if (mayHaveDeliveries) await nudge(row.id); // its first events have webhook deliveries to dispatch
      request.log.info({ jobId: row.id }, 'fine-tune queued');
      return reply.status(201).send({ ...withSecret(row), ...(warnings.length ? { warnings } : {}) });

      async function replay(previous: FineTuneRow) {
        if (previous.requestHash !== requestHash) {
          throw new GraftError('idempotency_key_reused', 'This Idempotency-Key was used with a different request body.', 'Idempotency-Key');
        }
        const warnings = await requestWarnings(previous.id);
        return reply.status(200).header('idempotent-replayed', 'true').send({ ...withSecret(previous), ...(warnings.length ? { warnings } : {}) });
      }
    },
  );

  app.get(
    '',
    {
      schema: {
        operationId: 'listFineTunes',
        tags: ['fine-tunes'],
        summary: 'List jobs, newest first',
        querystring: FineTuneListQuery,
        response: { 200: described(FineTuneList, 'A page of jobs.'), ...errorResponses('invalid_request') },
      },
    },
    async (request) => {
      const { limit = PAGE_LIMIT_DEFAULT, after, status } = request.query;
      if (after && !(await fineTunes.getFineTune(app.db, after, request.tenantId))) throw new GraftError('invalid_request', 'Unknown cursor.', 'after');
      const page = await fineTunes.listFineTunes(app.db, { tenantId: request.tenantId, limit, after, status });
      return { ...page, data: page.data.map(fineTuneOut) };
    },
  );

  app.get(
    '/:id',
    {
      schema: {
        operationId: 'getFineTune',
        tags: ['fine-tunes'],
        summary: 'Status, progress, latest metrics and result of a job',
        params: IdParams,
        response: { 200: described(FineTune, 'The job.'), ...errorResponses('invalid_request', 'fine_tune_not_found') },
      },
    },
    async (request) => fineTuneOut(await load(request.tenantId, request.params.id)),
  );

  app.get(
    '/:id/events',
    {
      schema: {
        operationId: 'listFineTuneEvents',
        tags: ['fine-tunes'],
        summary: 'What happened, oldest first (a page, or live as Server-Sent Events)',
        description: `A page of the job's events as JSON. ${STREAM_DESCRIPTION}`,
        params: IdParams,
        querystring: PageQuery,
        headers: StreamHeaders,
        response: {
          200: {
            description: 'A page of events (JSON), or the live feed (`text/event-stream`, when the request accepts it).',
            content: {
              'application/json': { schema: FineTuneEventList },
              'text/event-stream': { schema: Type.String({ description: 'Server-Sent Events: `event` (FineTuneEvent), `progress` (FineTuneProgress), `metric` (EpochMetrics), then `end` (FineTune).' }) },
            },
          },
          ...errorResponses('invalid_request', 'fine_tune_not_found'),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (wantsEventStream(request)) {
        await streamEvents(app, request, reply, id);
        return reply;
      }
      const { limit = PAGE_LIMIT_DEFAULT, after } = request.query;
      await load(request.tenantId, id);
      const page = await events.listEvents(app.db, id, { limit, after });
      if (!page) throw new GraftError('invalid_request', 'Unknown cursor.', 'after');
      return { ...page, data: page.data.map(eventOut) };
    },
  );

  app.get(
    '/:id/webhook-deliveries',
    {
      schema: {
        operationId: 'listFineTuneWebhookDeliveries',
        tags: ['fine-tunes', 'webhooks'],
        summary: "Webhook deliveries of a job's events, oldest first, with every attempt",
        description:
          'One delivery per event and target (the job\'s `webhookUrl`, each registered endpoint that wants its type). A delivery keeps its id ' +
          '(`webhook-id`) across attempts; a failed attempt (no 2xx answer) is retried with exponential backoff for a bounded time.',
        params: IdParams,
        querystring: PageQuery,
        response: { 200: described(WebhookDeliveryList, 'A page of deliveries.'), ...errorResponses('invalid_request', 'fine_tune_not_found') },
      },
    },
    async (request) => {
      const { id } = request.params;
      const { limit = PAGE_LIMIT_DEFAULT, after } = request.query;
      await load(request.tenantId, id);
      const page = await webhooks.listDeliveries(app.db, id, { limit, after });
      if (!page) throw new GraftError('invalid_request', 'Unknown cursor.', 'after');
      return { ...page, data: page.data.map(deliveryOut) };
    },
  );

  app.get(
    '/:id/metrics',
    {
      schema: {
        operationId: 'listFineTuneMetrics',
        tags: ['fine-tunes'],
        summary: 'One row per epoch',
        params: IdParams,
        response: { 200: described(FineTuneMetricList, 'Every epoch so far.'), ...errorResponses('invalid_request', 'fine_tune_not_found') },
      },
    },
    async (request) => {
      const { id } = request.params;
      await load(request.tenantId, id);
      return { data: (await metrics.listMetrics(app.db, id)).map(metricOut) };
    },
  );

  app.post(
    '/:id/cancel',
    {
      schema: {
        operationId: 'cancelFineTune',
        tags: ['fine-tunes'],
        summary: 'Cancel a job',
        description: 'A queued job is cancelled at once (200). A running job is asked to stop (202): it stops within one batch, keeping its events and metrics.',
        params: IdParams,
        response: {
          200: described(FineTune, 'The job is cancelled.'),
          202: described(FineTune, 'The running job was asked to stop; it ends `cancelled` within one batch.'),
          ...errorResponses('invalid_request', 'fine_tune_not_found', 'job_not_cancellable'),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      let row = await load(request.tenantId, id);
      if (row.status === 'cancelled') return reply.status(200).send(fineTuneOut(row));
      if (row.status === 'succeeded' || row.status === 'failed') {
        throw new GraftError('job_not_cancellable', `Job ${id} has already ${row.status}.`);
      }
      if (row.status === 'queued') {
        // remove() fails when a worker holds the job's lock: it is starting, so cancel it as running.
        // With Redis away the request is only recorded (below): the worker or the reconciler ends the job.
        const removed = await app.queue.getJob(id).then((job) => (job ? job.remove().then(() => true) : true)).catch(() => false);
        if (removed) {
          const ok = await transitions.cancelQueued(app.db, id);
          if (ok) {
            await nudge(id);
            return reply.status(200).send(fineTuneOut(await load(request.tenantId, id)));
          }
        }
      }
      await fineTunes.requestCancel(app.db, id);
      // The request is recorded in Postgres: the worker also polls it, and the reconciler ends a job
      // whose worker is gone, so a lost message only slows the cancel down.
      await publishCancel(app.redis, app.config.QUEUE_PREFIX, id).catch((err: Error) => request.log.warn({ err: err.message, jobId: id }, 'cancel message not sent'));
      row = await load(request.tenantId, id);
      return reply.status(row.status === 'cancelled' ? 200 : 202).send(fineTuneOut(row));
    },
  );

  app.get(
    '/:id/model',
    {
      schema: {
        operationId: 'downloadFineTuneModel',
        tags: ['fine-tunes'],
        summary: 'Download the fine-tuned model (.zip)',
        description: MODEL_ZIP,
        params: IdParams,
        response: { 200: binaryResponse('application/zip', 'The model zip.'), ...errorResponses('invalid_request', 'fine_tune_not_found', 'model_not_ready') },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const row = await load(request.tenantId, id);
      if (row.status !== 'succeeded' || !row.modelKey) throw new GraftError('model_not_ready', `Job ${id} is ${row.status}; a model exists once it has succeeded.`);
      return sendZip(reply, row.modelKey, `${id}.zip`);
    },
  );

  app.get(
    '/:id/checkpoints',
    {
      schema: {
        operationId: 'listFineTuneCheckpoints',
        tags: ['fine-tunes'],
        summary: 'Checkpoints of a job, oldest first; the best by validation loss is marked',
        params: IdParams,
        response: { 200: described(CheckpointList, 'Every checkpoint of the job.'), ...errorResponses('invalid_request', 'fine_tune_not_found') },
      },
    },
    async (request) => {
      const { id } = request.params;
      await load(request.tenantId, id);
      return { data: (await checkpoints.listCheckpoints(app.db, id)).map(checkpointOut) };
    },
  );

  app.get(
    '/:id/checkpoints/:checkpoint/model',
    {
      schema: {
        operationId: 'downloadCheckpointModel',
        tags: ['fine-tunes'],
        summary: 'Download a checkpoint as a model (.zip)',
        description: `The same format as the final model. ${MODEL_ZIP}`,
        params: CheckpointParams,
        response: {
          200: binaryResponse('application/zip', 'The checkpoint as a model zip.'),
          ...errorResponses('invalid_request', 'fine_tune_not_found', 'checkpoint_not_found'),
        },
      },
    },
    async (request, reply) => {
      const { id, checkpoint } = request.params;
      await load(request.tenantId, id);
      const row = await checkpoints.getCheckpoint(app.db, id, checkpoint);
      if (!row) throw new GraftError('checkpoint_not_found', `No checkpoint ${checkpoint} in job ${id}.`);
      return sendZip(reply, await checkpointModelKey(app.storage, row.storageKey), `${id}-${row.id}.zip`);
    },
  );

  app.delete(
    '/:id',
    {
      schema: {
        operationId: 'deleteFineTune',
        tags: ['fine-tunes'],
        summary: 'Delete an ended job with its events, metrics, checkpoints and model files',
        description:
          'Refused with 409 `job_not_finished` while the job is queued or running (cancel it first), and with 409 `resource_in_use` while a queued or ' +
          'running job uses it as its base. Its `Idempotency-Key`, if any, can be used again afterwards.',
        params: IdParams,
        response: {
          200: described(FineTuneDeleted, 'The job and its files are deleted.'),
          ...errorResponses('invalid_request', 'fine_tune_not_found', 'job_not_finished', 'resource_in_use'),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const outcome = await fineTunes.deleteFineTune(app.db, id, request.tenantId);
      if (!outcome.ok) {
        if (outcome.reason === 'not_found') throw new GraftError('fine_tune_not_found', `No fine-tune job ${id}.`);
        if (outcome.reason === 'not_finished') throw new GraftError('job_not_finished', `Job ${id} has not ended; cancel it (POST /v1/fine-tunes/${id}/cancel) and delete it once it has.`);
        throw new GraftError('resource_in_use', `Job ${outcome.jobId} uses fine-tune ${id} as its base; delete it once that job has ended.`);
      }
      // Every file the job left: its recorded keys, then whatever else lives under its directories.
      for (const key of [...outcome.value.keys, `models/${id}`, `jobs/${id}`]) {
        await app.storage.remove(key).catch((err: Error) => request.log.warn({ err: err.message, key }, 'could not remove a file of a deleted job'));
      }
      request.log.info({ jobId: id }, 'fine-tune deleted');
      return { id, object: 'fine_tune' as const, deleted: true as const };
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
};

export default fineTuneRoutes;

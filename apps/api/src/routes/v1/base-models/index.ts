import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  BaseModel,
  BaseModelDeleted,
  BaseModelList,
  CreateBaseModelForm,
  CreateBaseModelFromUrl,
  GraftError,
  ID_PREFIX,
  IdParams,
  PAGE_LIMIT_DEFAULT,
  PageQuery,
  newId,
  parseCreateBaseModelSpec,
  type CreateBaseModelSpec,
  type CreateImageBaseModelSpec,
  type CreateTextBaseModelSpec,
  type Preprocessing,
} from '@graft/contracts';
import { baseLookups, baseModels } from '@graft/db';
import { getBaseModel, listBaseModels } from '@graft/engine/catalog';
import { checkModelZip } from '@graft/engine/model-zip';
import { resolveBase } from '@graft/engine/resolve-base';
import { inspectBaseInChild, inspectGraphTextBaseInChild, inspectTextBaseInChild, type Answer } from '../../../inspector/inspect-base.ts';
import { Pool, PoolFullError } from '../../../inspector/pool.ts';
import { assertStorableText } from '../../../plugins/input-guard.ts';
import { bodyByContentType, described, errorResponses } from '../../../route-schemas.ts';
import { userBaseOut } from '../../../serializers.ts';
import { assertStorageQuota } from '../../../quotas.ts';

/** Seconds a client is asked to wait when every inspection slot is taken and the queue is full. */
const INSPECT_RETRY_AFTER_S = 10;

const baseModelRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Each inspection is a child process loading TensorFlow.js or ONNX Runtime (~200 MB): a bounded number at once.
  const pool = new Pool(app.config.INSPECT_CONCURRENCY, app.config.INSPECT_QUEUE);
  app.get(
    '',
    {
      schema: {
        operationId: 'listBaseModels',
        tags: ['base-models'],
        summary: "The bases a worker can load: graft's catalog first, then bases users registered (newest first)",
        querystring: PageQuery,
        response: { 200: described(BaseModelList, 'A page of base models.'), ...errorResponses('invalid_request') },
      },
    },
    async (request) => {
      const { limit = PAGE_LIMIT_DEFAULT, after } = request.query;
      const catalog = listBaseModels();
      const inCatalog = after ? catalog.findIndex((b) => b.id === after) : -1;
      if (after && inCatalog < 0 && !(await baseModels.isUserBaseCursor(app.db, after, request.tenantId))) throw new GraftError('invalid_request', 'Unknown cursor.', 'after');
      const fromCatalog = after && inCatalog < 0 ? [] : catalog.slice(inCatalog + 1, inCatalog + 1 + limit);
      const room = limit - fromCatalog.length;
      const users = room > 0 ? await baseModels.listUserBases(app.db, { tenantId: request.tenantId, limit: room, after: inCatalog < 0 ? after : undefined }) : null;
      const data = [...fromCatalog, ...(users?.data.map(userBaseOut) ?? [])];
      const hasMore = users ? users.hasMore : inCatalog + 1 + limit < catalog.length || (await baseModels.listUserBases(app.db, { tenantId: request.tenantId, limit: 1 })).data.length > 0;
      return { data, hasMore, nextCursor: hasMore ? (data.at(-1)?.id ?? null) : null };
    },
  );

  app.get(
    '/:id',
    {
      schema: {
        operationId: 'getBaseModel',
        tags: ['base-models'],
        summary: 'One base model (a catalog or registered `bm_` id, or a succeeded fine-tune `ft_` as a base)',
        params: IdParams,
        response: { 200: described(BaseModel, 'The base model.'), ...errorResponses('invalid_request', 'base_model_not_found', 'base_model_unusable') },
      },
    },
    async (request) => {
      const { id } = request.params;
      const resolved = await resolveBase(id, baseLookups(app.db, (k) => app.storage.path(k), request.tenantId));
      if (!resolved.ok) throw new GraftError(resolved.code, resolved.message);
      return resolved.base.descriptor;
    },
  );

  app.post(
    '',
    {
      schema: {
        operationId: 'createBaseModel',
        tags: ['base-models'],
        summary: 'Register a base: a tfjs image model (.zip or URL), an ONNX text encoder (.zip of its folder, or its URL) or a tfjs graph sentence encoder (URL)',
        description:
          'Either multipart/form-data with `file` (a .zip holding model.json and its weight shards) and `spec` (JSON: name, featureLayer, preprocessing, ...), ' +
          'or a JSON body with `url` and the same fields. The model is loaded and checked (input shape matches the preprocessing, the feature layer exists ' +
          'and yields rank-1 or rank-3 features, one forward pass works) before it is listed; a hosted model is fetched once and stored. ' +
          'With `task: "text-classification"`: an ONNX encoder folder as Hugging Face publishes it (`onnx/model.onnx` or `model.onnx`, `tokenizer.json`, ' +
          '`config.json`), zipped or by URL (a .zip, or the folder whose files are fetched relative to it); it is opened with ONNX Runtime and two texts are ' +
          'embedded (the hidden size must match config.json, the values be finite) before it is listed. Only the chosen ONNX file, config.json and the ' +
          'tokenizer files are kept. With `task: "text-classification", format: "tfjs-graph"`: a Universal-Sentence-Encoder-style TensorFlow.js graph by URL ' +
          '(`url` its model.json, `vocabUrl` its SentencePiece vocab.json; inputs `indices` and `values`), fetched once and run on two texts before it is listed; frozen in jobs.',
        body: bodyByContentType({ 'multipart/form-data': CreateBaseModelForm, 'application/json': CreateBaseModelFromUrl }),
        response: {
          201: described(BaseModel, 'The base, loaded and checked.'),
          ...errorResponses('invalid_request', 'payload_too_large', 'unsupported_media_type', 'invalid_base_model', 'inspector_busy', 'quota_exceeded'),
        },
      },
      // The body schemas document both forms; the handler checks them (a union's errors would not name the field).
      validatorCompiler: () => () => true,
    },
    async (request, reply) => {
      const { storage } = app;
      const id = newId('baseModel');
      const dirKey = `base-models/${id}`;
      const stageKey = storage.tempKey(); // unpacked and checked here, then committed to dirKey
      let zipKey: string | undefined;
      let sha256 = '';
      let spec: CreateBaseModelSpec;
      // A tenant at its limit registers no URL (nothing fetched); an upload is checked once its size is known.
      if (!request.isMultipart()) await assertStorageQuota(app, request.tenantId);
      try {
        if (request.isMultipart()) {
          let rawSpec: string | undefined;
          for await (const part of request.parts({ limits: { fileSize: app.config.MAX_UPLOAD_BYTES, files: 1, fields: 4, fieldSize: 64 * 1024 } })) {
            if (part.type === 'file') {
              if (part.fieldname !== 'file') {
                part.file.resume();
                throw new GraftError('invalid_request', `Unexpected file part "${part.fieldname}"; send the model zip as \`file\`.`, part.fieldname);
              }
              zipKey = storage.tempKey('.zip');
              sha256 = (await storage.writeStream(zipKey, part.file)).sha256;
            } else if (part.fieldname === 'spec') rawSpec = String(part.value);
          }
          if (!zipKey) throw new GraftError('invalid_request', 'The `file` part (a .zip of the model) is required.', 'file');
          // The dataset uploads' archive guard, before the inspector inflates anything.
          await checkModelZip(storage.path(zipKey));
          if (!rawSpec) throw new GraftError('invalid_request', 'The `spec` field (JSON: name and, for images, featureLayer and preprocessing) is required.', 'spec');
          let parsed: unknown;
          try {
            parsed = JSON.parse(rawSpec);
          } catch {
            throw new GraftError('invalid_request', 'The `spec` field is not valid JSON.', 'spec');
          }
          assertStorableText(parsed, 'spec');
          spec = parseCreateBaseModelSpec(parsed, 'spec');
          if (spec.url) throw new GraftError('invalid_request', 'Send either a `file` or a `url`, not both.', 'spec.url');
        } else {
          // The route does not validate bodies (validatorCompiler below): this names the field at fault in the branch `task` picks.
          spec = parseCreateBaseModelSpec(request.body, 'body');
          if (!spec.url) throw new GraftError('invalid_request', 'A JSON body must give `url`; to upload a model, send multipart/form-data with `file` and `spec`.', 'url');
        }
        const upload: Upload = {
          dir: storage.path(stageKey),
          ...(zipKey ? { zip: storage.path(zipKey) } : {}),
          maxBytes: app.config.MAX_UPLOAD_BYTES,
          allow: app.config.OUTBOUND_ALLOWLIST,
          timeoutMs: app.config.OUTBOUND_TIMEOUT_MS,
        };
        // Through the pool; a full pool answers 503 with Retry-After; a fetch's real cause is logged, not answered.
        const inspect: Inspect = async (run) => {
          try {
            const outcome = await pool.run(run);
            if (!outcome.ok && outcome.detail) request.log.info({ url: spec.url, detail: outcome.detail }, 'hosted base not fetched');
            return outcome;
          } catch (err) {
            if (!(err instanceof PoolFullError)) throw err;
            reply.header('retry-after', String(INSPECT_RETRY_AFTER_S));
            throw new GraftError('inspector_busy', `Every base-model inspection slot is busy (${err.size} running, ${err.queue} waiting); retry in ${INSPECT_RETRY_AFTER_S} s.`);
          }
        };
        const { base, bytes } = spec.task === 'text-classification' ? await registerTextBase(id, spec, upload, inspect) : await registerImageBase(id, spec, upload, inspect);
        await assertStorageQuota(app, request.tenantId, bytes);
        await storage.commit(stageKey, dirKey);
        await baseModels.createUserBase(app.db, { tenantId: request.tenantId, model: base, storageKey: dirKey, sha256, bytes });
        return reply.status(201).send(base);
      } catch (err) {
        await storage.remove(dirKey);
        throw err;
      } finally {
        await storage.remove(stageKey);
        if (zipKey) await storage.remove(zipKey);
      }
    },
  );

  app.delete(
    '/:id',
    {
      schema: {
        operationId: 'deleteBaseModel',
        tags: ['base-models'],
        summary: 'Delete a base you registered, with its files',
        description:
          'Refused with 409 `resource_in_use` while a queued or running job uses it, and with 409 `base_model_not_deletable` for catalog bases ' +
          '(they ship with graft) and fine-tunes (delete those with `DELETE /v1/fine-tunes/{id}`). Models fine-tuned from it keep working: their zips hold the whole network.',
        params: IdParams,
        response: {
          200: described(BaseModelDeleted, 'The base model is deleted.'),
          ...errorResponses('invalid_request', 'base_model_not_found', 'base_model_not_deletable', 'resource_in_use'),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (getBaseModel(id)) throw new GraftError('base_model_not_deletable', `${id} is part of graft's catalog; only bases you registered can be deleted.`);
      if (id.startsWith(`${ID_PREFIX.fineTune}_`)) throw new GraftError('base_model_not_deletable', `${id} is a fine-tune; delete it with DELETE /v1/fine-tunes/${id}.`);
      const outcome = await baseModels.deleteUserBase(app.db, id, request.tenantId);
      if (!outcome.ok) {
        if (outcome.reason === 'not_found') throw new GraftError('base_model_not_found', `No base model ${id}.`);
        throw new GraftError('resource_in_use', `Job ${outcome.jobId} uses base model ${id}; delete it once that job has ended (or cancel the job).`);
      }
      await app.storage.remove(outcome.value.storageKey);
      request.log.info({ baseModelId: id }, 'base model deleted');
      return { id, object: 'base_model' as const, deleted: true as const };
    },
  );
};

export default baseModelRoutes;

interface Upload {
  /** Where the base's files are unpacked and checked (staging; committed to its storage key afterwards). */
  dir: string;
  /** The uploaded zip, when the model was sent as a file (else `spec.url` says where it is). */
  zip?: string;
  maxBytes: number;
  /** OUTBOUND_ALLOWLIST and OUTBOUND_TIMEOUT_MS, for hosted models. */
  allow: string;
  timeoutMs: number;
}

/** Runs one inspection through the route's bounded pool. */
type Inspect = <T>(run: () => Promise<Answer<T>>) => Promise<Answer<T>>;

const sourceOf = (url: string | undefined) => (url ? `hosted: ${url} (fetched ${new Date().toISOString()})` : 'upload');

/** Per task (BaseModel is a union: the omission distributes over it). */
type Measured = BaseModel extends infer B ? (B extends unknown ? Omit<B, 'id' | 'object' | 'name' | 'description' | 'license' | 'pretrainedOn' | 'source'> : never) : never;

/** A registered base: what the inspector measured, and what the spec says of it (as given, else 'unspecified'). */
function registeredBase(id: string, spec: CreateImageBaseModelSpec | CreateTextBaseModelSpec, measured: Measured, source = sourceOf(spec.url)): BaseModel {
  return {
    id,
    object: 'base_model',
    name: spec.name,
    description: spec.description ?? '',
    ...measured,
    source,
    license: spec.license ?? 'unspecified',
    pretrainedOn: spec.pretrainedOn ?? 'unspecified',
  };
}

/** A tfjs image model: loaded and checked in a child process against the claimed preprocessing and feature layer. */
async function registerImageBase(id: string, spec: CreateImageBaseModelSpec, upload: Upload, inspect: Inspect): Promise<{ base: BaseModel; bytes: number }> {
  const preprocessing: Preprocessing = { resize: 'bilinear', ...spec.preprocessing };
  const inspected = await inspect(() => inspectBaseInChild({ ...upload, ...(spec.url ? { url: spec.url } : {}), featureLayer: spec.featureLayer, preprocessing }));
  if (!inspected.ok) throw new GraftError('invalid_base_model', inspected.message);
  const r = inspected.result;
  const base = registeredBase(id, spec, { task: 'image-classification', format: r.format, inputShape: r.inputShape, featureLayer: r.featureLayer, featureShape: r.featureShape, preprocessing });
  return { base, bytes: r.bytes };
}

/**
 * An ONNX text encoder's folder (uploaded zip, or a URL: a .zip or the folder itself): unpacked,
 * reduced to the chosen model + config.json + tokenizer files, opened and run on two texts in a
 * child process; what that measures (hidden size, length limit, inputs, tokenizer) is the descriptor.
 */
async function registerTextBase(id: string, spec: CreateTextBaseModelSpec, upload: Upload, inspect: Inspect): Promise<{ base: BaseModel; bytes: number }> {
  if (spec.format === 'tfjs-graph') return registerGraphTextBase(id, spec, upload, inspect);
  if (spec.vocabUrl !== undefined) throw new GraftError('invalid_request', '`vocabUrl` goes with `format: "tfjs-graph"`; an ONNX folder carries its tokenizer.', 'vocabUrl');
  const claim = {
    ...(spec.pooling !== undefined ? { pooling: spec.pooling } : {}),
    ...(spec.maxLength !== undefined ? { maxLength: spec.maxLength } : {}),
    ...(spec.outputName !== undefined ? { outputName: spec.outputName } : {}),
    ...(spec.modelFile !== undefined ? { modelFile: spec.modelFile } : {}),
  };
  const inspected = await inspect(() => inspectTextBaseInChild({ ...upload, ...(spec.url ? { url: spec.url } : {}), ...claim }));
  // The field at fault: the one the inspector names, else what carried the model.
  if (!inspected.ok) throw new GraftError('invalid_base_model', inspected.message, inspected.param ?? (spec.url ? 'url' : 'file'));
  const r = inspected.result;
  const base = registeredBase(id, spec, {
    task: 'text-classification',
    format: 'onnx',
    inputShape: [r.maxLength],
    featureLayer: r.outputName,
    featureShape: [r.dim],
    preprocessing: { tokenizer: r.tokenizer, maxLength: r.maxLength, pooling: r.pooling },
  });
  return { base, bytes: r.bytes };
}

/**
 * A Universal-Sentence-Encoder-style tfjs graph by URL (`url` its model.json, `vocabUrl` its
 * vocab.json): fetched through the outbound guard into the base's folder, opened and run on two
 * texts in the child; frozen in jobs (a graph has no trainable layers in tfjs).
 */
async function registerGraphTextBase(id: string, spec: CreateTextBaseModelSpec, upload: Upload, inspect: Inspect): Promise<{ base: BaseModel; bytes: number }> {
  if (upload.zip || !spec.url) throw new GraftError('invalid_request', 'A `tfjs-graph` text base is registered by URL: a JSON body with `url` (its model.json) and `vocabUrl`.', 'format');
  if (!spec.vocabUrl) throw new GraftError('invalid_request', 'A `tfjs-graph` text base needs `vocabUrl`: the URL of its vocab.json.', 'vocabUrl');
  if (spec.pooling !== undefined || spec.modelFile !== undefined) {
    throw new GraftError('invalid_request', 'A graph gives one vector per text: `pooling` and `modelFile` are for ONNX encoders.', spec.pooling !== undefined ? 'pooling' : 'modelFile');
  }
  const { url, vocabUrl } = spec;
  const inspected = await inspect(() =>
    inspectGraphTextBaseInChild({
      dir: upload.dir,
      maxBytes: upload.maxBytes,
      allow: upload.allow,
      timeoutMs: upload.timeoutMs,
      url,
      vocabUrl,
      ...(spec.maxLength !== undefined ? { maxLength: spec.maxLength } : {}),
      ...(spec.outputName !== undefined ? { outputNode: spec.outputName } : {}),
    }),
  );
  if (!inspected.ok) throw new GraftError('invalid_base_model', inspected.message, inspected.param ?? 'url');
  const r = inspected.result;
  const base = registeredBase(
    id,
    spec,
    {
      task: 'text-classification',
      format: 'tfjs-graph',
      inputShape: [r.maxLength],
      featureLayer: r.outputNode,
      featureShape: [r.dim],
      preprocessing: { tokenizer: { kind: 'unigram', files: ['vocab.json'], vocabSize: r.vocabSize, lowercase: false }, maxLength: r.maxLength, pooling: 'none' },
    },
    `${sourceOf(url)}; vocabulary ${vocabUrl}`,
  );
  return { base, bytes: r.bytes };
}

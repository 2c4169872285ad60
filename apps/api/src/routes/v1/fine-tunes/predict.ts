/**
 * Predictions from a job's model (or one of its checkpoints): images as multipart parts or base64
 * JSON, texts as a JSON array; answered in input order with labels, probabilities and top-k. The
 * model is loaded once into a prediction thread and kept warm there (`app.predictions`); the
 * request only parses and checks inputs on the event loop.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { GraftError, IdParams, PREDICT_LIMITS, PredictForm, PredictionList, PredictRequest, type PredictionList as PredictionListBody } from '@graft/contracts';
import { checkpoints, fineTunes } from '@graft/db';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { bodyByContentType, described, errorResponses } from '../../../route-schemas.ts';
import { checkpointModelKey } from './checkpoint-model.ts';

const CheckpointParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 80, description: 'The fine-tune id.' }),
  checkpoint: Type.String({ minLength: 1, maxLength: 80, description: 'The checkpoint id.' }),
});

const DESCRIPTION =
  `Images as \`multipart/form-data\` (one \`image\` part per file) or JSON \`{ "inputs": [{ "image": "<base64>" }, …] }\`; texts (text models) as ` +
  `JSON \`{ "inputs": ["…", …] }\` or multipart \`text\` fields. At most ${PREDICT_LIMITS.maxInputs} inputs (413 \`too_many_inputs\`), ` +
  `${PREDICT_LIMITS.maxImageBytes} bytes per image and ${PREDICT_LIMITS.maxBodyBytes} per JSON body (413 \`payload_too_large\`); ` +
  'the whole request within `PREDICT_TIMEOUT_MS` (504 `prediction_timeout`). An input the model cannot use is 422 `invalid_input` with `param` `inputs.<i>`. ' +
  'The model is loaded on first use and kept warm; inference runs in a worker thread, off the API\'s event loop.';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** An image sent as base64 (a `data:` URL's prefix is allowed). */
function decodeImage(value: string, i: number): Buffer {
  const b64 = value.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
  if (b64.length % 4 === 1 || !BASE64.test(b64)) throw new GraftError('invalid_input', `Input ${i}: \`image\` is not base64.`, `inputs.${i}`);
  const data = Buffer.from(b64, 'base64');
  if (data.length > PREDICT_LIMITS.maxImageBytes) throw new GraftError('payload_too_large', `Input ${i}: the image is larger than ${PREDICT_LIMITS.maxImageBytes} bytes.`, `inputs.${i}`);
  return data;
}

function tooMany(n: number): GraftError {
  return new GraftError('too_many_inputs', `${n} inputs; at most ${PREDICT_LIMITS.maxInputs} per request: split them.`, 'inputs');
}

interface Inputs {
  inputs: (string | Buffer)[];
  topK: number | undefined;
}

async function readMultipart(request: FastifyRequest): Promise<Inputs> {
  const inputs: (string | Buffer)[] = [];
  let topK: number | undefined;
  const limits = { files: PREDICT_LIMITS.maxInputs + 1, fileSize: PREDICT_LIMITS.maxImageBytes, fields: PREDICT_LIMITS.maxInputs + 2, fieldSize: PREDICT_LIMITS.maxTextLength * 4 };
  for await (const part of request.parts({ limits })) {
    const i = inputs.length;
    if (part.type === 'file') {
      if (part.fieldname !== 'image') {
        part.file.resume();
        throw new GraftError('invalid_request', `Unexpected file part "${part.fieldname}"; send images as \`image\` parts.`, part.fieldname);
      }
      const data = await part.toBuffer().catch((err: { code?: string }) => {
        if (err.code === 'FST_REQ_FILE_TOO_LARGE') throw new GraftError('payload_too_large', `Input ${i}: the image is larger than ${PREDICT_LIMITS.maxImageBytes} bytes.`, `inputs.${i}`);
        throw err;
      });
      inputs.push(data);
    } else if (part.fieldname === 'text') {
      inputs.push(String(part.value));
    } else if (part.fieldname === 'topK') {
      topK = Number(part.value);
      if (!Number.isInteger(topK) || topK < 1 || topK > PREDICT_LIMITS.maxTopK) throw new GraftError('invalid_request', `topK must be an integer from 1 to ${PREDICT_LIMITS.maxTopK}.`, 'topK');
    } else {
      throw new GraftError('invalid_request', `Unknown field "${part.fieldname}": send \`image\` parts, \`text\` fields and \`topK\`.`, part.fieldname);
    }
    if (inputs.length > PREDICT_LIMITS.maxInputs) throw tooMany(inputs.length);
  }
  if (!inputs.length) throw new GraftError('invalid_request', 'No input: send one or more `image` parts (or `text` fields).', 'inputs');
  return { inputs, topK };
}

function readJson(body: PredictRequest): Inputs {
  if (body.inputs.length > PREDICT_LIMITS.maxInputs) throw tooMany(body.inputs.length);
  return { inputs: body.inputs.map((input, i) => (typeof input === 'string' ? input : decodeImage(input.image, i))), topK: body.topK };
}

const predictRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const schema = <P extends typeof IdParams | typeof CheckpointParams>(operationId: string, summary: string, params: P) => ({
    operationId,
    tags: ['fine-tunes'],
    summary,
    description: DESCRIPTION,
    params,
    body: bodyByContentType({ 'application/json': PredictRequest, 'multipart/form-data': PredictForm }),
    response: {
      200: described(PredictionList, 'One prediction per input, in input order.'),
      ...errorResponses(
        'invalid_request', 'unsupported_media_type', 'payload_too_large', 'too_many_inputs', 'fine_tune_not_found', 'checkpoint_not_found',
        'model_not_ready', 'invalid_input', 'prediction_timeout',
      ),
    },
  });

  async function predict(request: FastifyRequest, id: string, checkpoint: string | null): Promise<PredictionListBody> {
    const job = await fineTunes.getFineTune(app.db, id, request.tenantId);
    if (!job) throw new GraftError('fine_tune_not_found', `No fine-tune job ${id}.`);
    let key: string;
    if (checkpoint) {
      const row = await checkpoints.getCheckpoint(app.db, id, checkpoint);
      if (!row) throw new GraftError('checkpoint_not_found', `No checkpoint ${checkpoint} in job ${id}.`);
      key = await checkpointModelKey(app.storage, row.storageKey);
    } else {
      if (job.status !== 'succeeded' || !job.modelKey) throw new GraftError('model_not_ready', `Job ${id} is ${job.status}; a model exists once it has succeeded (its checkpoints predict before that).`);
      key = job.modelKey;
    }
    const { inputs, topK } = request.isMultipart() ? await readMultipart(request) : readJson(request.body as PredictRequest);
    const bytes = await app.storage.size(key);
    if (bytes === null) throw new Error(`model missing from storage: ${key}`);
    const pulled = await app.storage.pull(key);
    try {
      const out = await app.predictions.predict({ key, path: pulled.path, bytes, inputs, topK });
      request.log.info({ jobId: id, checkpoint, inputs: inputs.length, loadMs: Math.round(out.loadMs), inferenceMs: Math.round(out.inferenceMs) }, 'predicted');
      return {
        object: 'list',
        model: id,
        checkpoint,
        task: out.task,
        labels: out.labels,
        data: out.predictions.map((p, index) => ({ index, label: p.label, probability: p.topK[0]?.probability ?? 0, topK: p.topK, probabilities: p.probabilities })),
        runtime: out.runtime,
        timing: { queuedMs: Math.round(out.queuedMs), loadMs: Math.round(out.loadMs), inferenceMs: Math.round(out.inferenceMs) },
      };
    } finally {
      pulled.release();
    }
  }

  app.post(
    '/:id/predict',
    { bodyLimit: PREDICT_LIMITS.maxBodyBytes, schema: schema('predictFineTune', "Predict with the job's model", IdParams) },
    async (request) => predict(request, request.params.id, null),
  );

  app.post(
    '/:id/checkpoints/:checkpoint/predict',
    { bodyLimit: PREDICT_LIMITS.maxBodyBytes, schema: schema('predictCheckpoint', 'Predict with one of the job\'s checkpoints', CheckpointParams) },
    async (request) => predict(request, request.params.id, request.params.checkpoint),
  );
};

export default predictRoutes;

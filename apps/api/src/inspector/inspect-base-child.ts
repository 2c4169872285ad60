/**
 * Runs in a child process of the API (loading a model is CPU-bound and must not block the API's
 * event loop): unpacks an uploaded model zip or fetches a hosted model into `dir`, then loads and
 * checks it. Request: JSON in argv[2]. Answer: one JSON line on stdout.
 *
 * Image bases (tfjs) load TensorFlow.js; text bases (ONNX encoders) load onnxruntime-node only.
 *
 * A hosted model is fetched through the outbound guard (public addresses only, unless allow-listed;
 * each redirect checked; bounded in time and bytes). What a failed fetch tells the client never
 * depends on what sits at a refused or unreachable address: the cause goes back as `detail`, for the
 * API's log.
 */
import { cp } from 'node:fs/promises';
import type { Preprocessing } from '@graft/contracts';
import type { TextBaseClaim } from '@graft/engine/onnx-text';
import { guardedFetch, OutboundError } from '@graft/outbound';

interface Outbound {
  maxBytes: number;
  /** OUTBOUND_ALLOWLIST */
  allow: string;
  /** Bound of one request. */
  timeoutMs: number;
}

interface ImageRequest extends Outbound {
  task?: 'image-classification';
  dir: string;
  zip?: string;
  url?: string;
  featureLayer: string;
  preprocessing: Preprocessing;
}

interface TextRequest extends TextBaseClaim, Outbound {
  task: 'text-classification';
  dir: string;
  zip?: string;
  url?: string;
}

/** A fetch that failed: `message` for the client, `detail` for the log. */
class FetchFailed extends Error {
  constructor(
    message: string,
    readonly detail: string,
    readonly param = 'url',
  ) {
    super(message);
  }
}

const answer = (v: unknown, code: number) => {
  process.stdout.write(`${JSON.stringify(v)}\n`, () => process.exit(code));
};

/**
 * Runs `load` with a guarded fetch. When the guard refused or failed a request, the client hears the
 * guard's one message, whatever the loader made of it; the loader's other failures are reworded by
 * `ownReason`, or passed on as they are without it.
 */
async function fetchGuarded<T>(url: string, o: Outbound, load: (fetch: typeof globalThis.fetch) => Promise<T>, ownReason?: (message: string) => string): Promise<T> {
  let failed: OutboundError | null = null;
  const guarded = guardedFetch({ allow: o.allow, maxBytes: o.maxBytes, timeoutMs: o.timeoutMs });
  const fetch: typeof globalThis.fetch = (input, init) =>
    guarded(input, init).catch((err: unknown) => {
      if (err instanceof OutboundError) failed = err;
      throw err;
    });
  try {
    return await load(fetch);
  } catch (err) {
    const e = (err instanceof OutboundError ? err : failed) as OutboundError | null;
    if (!e && !ownReason) throw err;
    const detail = e ? `${e.code}: ${e.detail}` : (err as Error).message;
    throw new FetchFailed(`The model at ${url} cannot be fetched: ${e ? e.reason : ownReason!((err as Error).message)}`, detail);
  }
}

/**
 * The hosted-model loader's reasons, kept only where they speak of the model rather than of the
 * server: an HTTP status from a permitted address, a size limit, a model.json that is not a tfjs
 * model. Never the bytes that came back.
 */
function imageFetchReason(message: string): string {
  const status = /answered HTTP (\d{3})/.exec(message);
  if (status) return `it answered HTTP ${status[1]}.`;
  if (/larger than graft accepts/.test(message)) return `it is larger than graft accepts (${message.match(/\((\d+) bytes/)?.[1] ?? 'the upload limit'} bytes).`;
  if (/is not JSON/.test(message)) return 'model.json is not JSON.';
  if (/no weightsManifest/.test(message)) return 'model.json has no weightsManifest: not a tfjs model.';
  if (/not a plain relative path/.test(message)) return 'model.json names a weight file that is not a plain relative path.';
  return 'it gave no usable answer.';
}

async function inspectImage(req: ImageRequest): Promise<unknown> {
  const { fetchHostedModel, initBackend, inspectUserBase, unpackModelZip } = await import('@graft/engine');
  if (req.zip) await unpackModelZip(req.zip, req.dir);
  else if (req.url) {
    const url = req.url;
    await fetchGuarded(
      url,
      req,
      async (fetch) => {
        // Fetched into a private temporary directory (no shared cache: the copy in storage is the base).
        const hosted = await fetchHostedModel(url, { cacheDir: null, fetch, limits: { maxTotalBytes: req.maxBytes, timeoutMs: req.timeoutMs } });
        try {
          await cp(hosted.dir, req.dir, { recursive: true });
        } finally {
          await hosted.release();
        }
      },
      imageFetchReason,
    );
  }
  await initBackend();
  return inspectUserBase({ dir: req.dir }, { featureLayer: req.featureLayer, preprocessing: req.preprocessing });
}

async function inspectText(req: TextRequest): Promise<unknown> {
  const { fetchOnnxTextFolder, inspectOnnxTextBase, unpackModelZip } = await import('@graft/engine/onnx-text');
  if (req.zip) await unpackModelZip(req.zip, req.dir, { maxTotalBytes: req.maxBytes }, { rootFile: 'tokenizer.json' });
  else if (req.url) {
    const url = req.url;
    // The folder loader's own reasons (HTTP statuses, missing files, sizes) stay; the guard's failures read as one.
    await fetchGuarded(url, req, (fetch) =>
      fetchOnnxTextFolder(url, req.dir, { maxBytes: req.maxBytes, fetch, timeoutMs: req.timeoutMs, ...(req.modelFile !== undefined ? { modelFile: req.modelFile } : {}) }),
    );
  }
  const { pooling, maxLength, outputName, modelFile } = req;
  return inspectOnnxTextBase(req.dir, { pooling, maxLength, outputName, modelFile }, { threads: 1 });
}

interface GraphRequest extends Outbound {
  task: 'text-graph';
  dir: string;
  url: string;
  vocabUrl: string;
  maxLength?: number;
  outputNode?: string;
}

/** A USE-style tfjs graph by URL: model.json, its shards and vocab.json fetched through the guard, then opened and run on two texts. */
async function inspectGraph(req: GraphRequest): Promise<unknown> {
  const { initBackend } = await import('@graft/engine');
  const { fetchUseGraph, inspectUseBase } = await import('@graft/engine/use-text');
  const { url, vocabUrl } = req;
  await fetchGuarded(url, req, (fetch) => fetchUseGraph(url, vocabUrl, req.dir, { fetch, maxBytes: req.maxBytes, timeoutMs: req.timeoutMs }), imageFetchReason);
  await initBackend();
  return inspectUseBase(req.dir, { ...(req.maxLength !== undefined ? { maxLength: req.maxLength } : {}), ...(req.outputNode !== undefined ? { outputNode: req.outputNode } : {}) }, url);
}

const req = JSON.parse(process.argv[2] ?? '{}') as ImageRequest | TextRequest | GraphRequest;
(req.task === 'text-graph' ? inspectGraph(req) : req.task === 'text-classification' ? inspectText(req) : inspectImage(req)).then(
  (result) => answer({ result }, 0),
  // Every failure here means the base as given is not usable: the message says why (and `param` which field, when one is at fault).
  (err: Error & { param?: unknown }) =>
    answer(
      {
        error: {
          code: 'invalid_base_model',
          message: err.message,
          ...(typeof err.param === 'string' ? { param: err.param } : {}),
          ...(err instanceof FetchFailed ? { detail: err.detail } : {}),
        },
      },
      1,
    ),
);

/**
 * Runs in a child process of the API (loading a model is CPU-bound and must not block the API's
 * event loop): unpacks an uploaded model zip or fetches a hosted model into `dir`, then loads and
 * checks it. Request: JSON in argv[2]. Answer: one JSON line on stdout.
 *
 * Image bases (tfjs) load TensorFlow.js; text bases (ONNX encoders) load onnxruntime-node only.
 */
import { cp } from 'node:fs/promises';
import type { Preprocessing } from '@graft/contracts';
import type { TextBaseClaim } from '@graft/engine/onnx-text';

interface ImageRequest {
  task?: 'image-classification';
  dir: string;
  zip?: string;
  url?: string;
  featureLayer: string;
  preprocessing: Preprocessing;
  maxBytes: number;
}

interface TextRequest extends TextBaseClaim {
  task: 'text-classification';
  dir: string;
  zip?: string;
  url?: string;
  maxBytes: number;
}

const answer = (v: unknown, code: number) => {
  process.stdout.write(`${JSON.stringify(v)}\n`, () => process.exit(code));
};

async function inspectImage(req: ImageRequest): Promise<unknown> {
  const { fetchHostedModel, initBackend, inspectUserBase, unpackModelZip } = await import('@graft/engine');
  if (req.zip) await unpackModelZip(req.zip, req.dir);
  else if (req.url) {
    try {
      // Fetched into a private temporary directory (no shared cache: the copy in storage is the base).
      const hosted = await fetchHostedModel(req.url, { cacheDir: null, limits: { maxTotalBytes: req.maxBytes } });
      try {
        await cp(hosted.dir, req.dir, { recursive: true });
      } finally {
        await hosted.release();
      }
    } catch (err) {
      throw new Error(`The model at ${req.url} cannot be fetched: ${(err as Error).message}`);
    }
  }
  await initBackend();
  return inspectUserBase({ dir: req.dir }, { featureLayer: req.featureLayer, preprocessing: req.preprocessing });
}

async function inspectText(req: TextRequest): Promise<unknown> {
  const { fetchOnnxTextFolder, inspectOnnxTextBase, unpackModelZip } = await import('@graft/engine/onnx-text');
  if (req.zip) await unpackModelZip(req.zip, req.dir, { maxTotalBytes: req.maxBytes }, { rootFile: 'tokenizer.json' });
  else if (req.url) await fetchOnnxTextFolder(req.url, req.dir, { maxBytes: req.maxBytes, ...(req.modelFile !== undefined ? { modelFile: req.modelFile } : {}) });
  const { pooling, maxLength, outputName, modelFile } = req;
  return inspectOnnxTextBase(req.dir, { pooling, maxLength, outputName, modelFile }, { threads: 1 });
}

const req = JSON.parse(process.argv[2] ?? '{}') as ImageRequest | TextRequest;
(req.task === 'text-classification' ? inspectText(req) : inspectImage(req)).then(
  (result) => answer({ result }, 0),
  // Every failure here means the base as given is not usable: the message says why (and `param` which field, when one is at fault).
  (err: Error & { param?: unknown }) => answer({ error: { code: 'invalid_base_model', message: err.message, ...(typeof err.param === 'string' ? { param: err.param } : {}) } }, 1),
);

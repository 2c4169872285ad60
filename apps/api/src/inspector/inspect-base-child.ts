/**
 * Runs in a child process of the API (TensorFlow.js is CPU-bound and must not block the API's
 * event loop): unpacks an uploaded model zip or fetches a hosted model into `dir`, then loads and
 * checks it. Request: JSON in argv[2]. Answer: one JSON line on stdout.
 */
import { cp } from 'node:fs/promises';
import type { Preprocessing } from '@graft/contracts';
import { fetchHostedModel, initBackend, inspectUserBase, unpackModelZip } from '@graft/engine';

interface Request {
  dir: string;
  zip?: string;
  url?: string;
  featureLayer: string;
  preprocessing: Preprocessing;
  maxBytes: number;
}

const answer = (v: unknown, code: number) => {
  process.stdout.write(`${JSON.stringify(v)}\n`, () => process.exit(code));
};

async function main(req: Request): Promise<unknown> {
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

main(JSON.parse(process.argv[2] ?? '{}') as Request).then(
  (result) => answer({ result }, 0),
  // Every failure here means the base as given is not usable: the message says why.
  (err: Error) => answer({ error: { code: 'invalid_base_model', message: err.message } }, 1),
);

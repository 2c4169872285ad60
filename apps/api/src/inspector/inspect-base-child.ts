/**
 * Runs in a child process of the API (TensorFlow.js is CPU-bound and must not block the API's
 * event loop): unpacks an uploaded model zip or fetches a hosted model into `dir`, then loads and
 * checks it. Request: JSON in argv[2]. Answer: one JSON line on stdout.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Preprocessing } from '@graft/contracts';
import { initBackend, inspectUserBase, unpackModelZip } from '@graft/engine';

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

/** Fetches model.json and the weight files its manifest names (same directory), within maxBytes. */
async function fetchModel(url: string, dir: string, maxBytes: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const res = await fetch(url, { signal: AbortSignal.timeout(60_000) });
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  const text = await res.text();
  const json = JSON.parse(text) as { weightsManifest?: { paths: string[] }[] };
  await writeFile(join(dir, 'model.json'), text);
  let total = text.length;
  for (const p of (json.weightsManifest ?? []).flatMap((g) => g.paths)) {
    if (p.includes('..') || p.startsWith('/') || /^[a-z]+:/i.test(p)) throw new Error(`unsafe weight path "${p}" in model.json`);
    const w = await fetch(new URL(p, url), { signal: AbortSignal.timeout(120_000) });
    if (!w.ok || !w.body) throw new Error(`GET ${new URL(p, url)} answered ${w.status}`);
    await mkdir(join(dir, p, '..'), { recursive: true });
    const counter = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        total += chunk.length;
        if (total > maxBytes) ctl.error(new Error(`the model is larger than ${maxBytes} bytes`));
        else ctl.enqueue(chunk);
      },
    });
    await pipeline(Readable.fromWeb(w.body.pipeThrough(counter) as never), createWriteStream(join(dir, p)));
  }
}

async function main(req: Request): Promise<unknown> {
  if (req.zip) await unpackModelZip(req.zip, req.dir);
  else if (req.url) {
    try {
      await fetchModel(req.url, req.dir, req.maxBytes);
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

/**
 * Inspects a user's base model in its own process (loading a model is CPU-bound; run this as a
 * child so the caller's event loop stays free):
 *
 *   node --import tsx packages/engine/src/cli/inspect-base.ts '<json request>'
 *   echo '<json request>' | node --import tsx packages/engine/src/cli/inspect-base.ts
 *
 * Request: { "dir": "<model dir>", "featureLayer": "...", "preprocessing": {...}, "format"?: "tfjs-layers"|"tfjs-graph" }
 * or with "zip": "<model zip>" (unpacked into "dir", or into a temporary directory removed afterwards).
 * Answer: one JSON line on stdout, `{"result": BaseInspection}` (exit 0) or
 * `{"error": {"code", "message"}}` (exit 1; code `invalid_base_model` for a base that is not usable,
 * `invalid_request` for a malformed request, `internal_error` otherwise).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TrainingError } from '../errors.ts';
import { inspectUserBase, unpackModelZip, type BaseInspection, type ClaimedBase } from '../bases/inspect-base.ts';

export interface InspectBaseRequest extends ClaimedBase {
  dir?: string;
  zip?: string;
}

export type InspectBaseAnswer = { result: BaseInspection } | { error: { code: string; message: string } };

export async function runInspectBase(req: InspectBaseRequest): Promise<InspectBaseAnswer> {
  if (!req || typeof req !== 'object' || (!req.dir && !req.zip) || typeof req.featureLayer !== 'string' || !req.preprocessing) {
    return { error: { code: 'invalid_request', message: 'The request needs "dir" or "zip", "featureLayer" and "preprocessing".' } };
  }
  let temp: string | null = null;
  try {
    let dir = req.dir ?? null;
    if (req.zip) {
      if (!dir) dir = temp = await mkdtemp(join(tmpdir(), 'graft-inspect-'));
      dir = (await unpackModelZip(req.zip, dir)).modelDir;
    }
    const result = await inspectUserBase({ dir: dir! }, { featureLayer: req.featureLayer, preprocessing: req.preprocessing, format: req.format });
    return { result };
  } catch (err) {
    if (err instanceof TrainingError) return { error: { code: err.code, message: err.message } };
    return { error: { code: 'internal_error', message: (err as Error).message ?? String(err) } };
  } finally {
    if (temp) await rm(temp, { recursive: true, force: true });
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<void> {
  let answer: InspectBaseAnswer;
  try {
    const raw = process.argv[2] ?? (await readStdin());
    answer = await runInspectBase(JSON.parse(raw) as InspectBaseRequest);
  } catch (err) {
    answer = { error: { code: 'invalid_request', message: `The request is not JSON: ${(err as Error).message}` } };
  }
  const code = 'result' in answer ? 0 : 1;
  process.stdout.write(`${JSON.stringify(answer)}\n`, () => process.exit(code));
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) void main();

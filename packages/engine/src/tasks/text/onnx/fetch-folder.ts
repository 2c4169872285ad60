/**
 * Fetches an ONNX text encoder's folder over HTTP(S) for registration: either a .zip of the folder
 * (unpacked as an upload would be), or the folder itself, whose files are fetched relative to the
 * URL — `config.json`, `tokenizer.json`, `tokenizer_config.json` (if served), and the ONNX file
 * (`modelFile`, else `onnx/model.onnx`, else `model.onnx`, as Hugging Face lays repositories out)
 * with its `_data` file if served. Streamed to disk, every byte counted against `maxBytes`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { unpackModelZip } from '../../../bases/model-zip.ts';
import { CONFIG_FILE, DEFAULT_MODEL_FILES, InvalidTextBase } from './folder.ts';

export interface FetchFolderOptions {
  modelFile?: string;
  /** Bytes in all (a zip: inflated). */
  maxBytes: number;
  fetch?: typeof fetch;
  /** Per request (default 120 s). */
  timeoutMs?: number;
}

class NotFound extends Error {}

export async function fetchOnnxTextFolder(url: string, destDir: string, opts: FetchFolderOptions): Promise<{ files: string[]; bytes: number }> {
  const get = opts.fetch ?? fetch;
  let bytes = 0;
  const download = async (from: URL, to: string): Promise<void> => {
    let res: Response;
    try {
      res = await get(from, { redirect: 'follow', signal: AbortSignal.timeout(opts.timeoutMs ?? 120_000) });
    } catch (err) {
      throw new InvalidTextBase(`${from.href} cannot be fetched: ${(err as Error).message}`);
    }
    if (res.status === 404) {
      await res.body?.cancel();
      throw new NotFound(from.href);
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new InvalidTextBase(`${from.href} cannot be fetched: HTTP ${res.status}`);
    }
    await mkdir(dirname(to), { recursive: true });
    const file = await open(to, 'w');
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        bytes += chunk.length;
        if (bytes > opts.maxBytes) throw new InvalidTextBase(`the model at ${url} is larger than ${opts.maxBytes} bytes`);
        await file.write(chunk);
      }
    } finally {
      await file.close();
    }
  };
  const fetchFile = async (base: URL, rel: string, required: boolean): Promise<boolean> => {
    try {
      await download(new URL(rel, base), join(destDir, ...rel.split('/')));
      return true;
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      if (required) throw new InvalidTextBase(`${err.message} cannot be fetched: HTTP 404 (the folder needs ${rel})`);
      return false;
    }
  };

  const u = new URL(url);
  if (u.pathname.toLowerCase().endsWith('.zip')) {
    const tmp = join(tmpdir(), `graft-text-base-${process.pid}-${randomBytes(6).toString('hex')}.zip`);
    try {
      await download(u, tmp).catch((err: unknown) => {
        throw err instanceof NotFound ? new InvalidTextBase(`${url} cannot be fetched: HTTP 404`) : err;
      });
      const unpacked = await unpackModelZip(tmp, destDir, { maxTotalBytes: opts.maxBytes }, { rootFile: 'tokenizer.json' });
      return { files: unpacked.files, bytes: unpacked.bytes };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  const base = new URL(u.href.endsWith('/') ? u.href : `${u.href}/`);
  if (opts.modelFile !== undefined && (opts.modelFile.startsWith('/') || opts.modelFile.split('/').includes('..') || opts.modelFile.includes('\\'))) {
    throw new InvalidTextBase(`modelFile "${opts.modelFile}" must be a path inside the folder`, 'modelFile');
  }
  const files: string[] = [];
  for (const [rel, required] of [[CONFIG_FILE, true], ['tokenizer.json', true], ['tokenizer_config.json', false]] as const) {
    if (await fetchFile(base, rel, required)) files.push(rel);
  }
  const candidates = opts.modelFile !== undefined ? [opts.modelFile] : [...DEFAULT_MODEL_FILES];
  let model: string | null = null;
  for (const rel of candidates) {
    if (await fetchFile(base, rel, false)) {
      model = rel;
      break;
    }
  }
  if (!model) throw new InvalidTextBase(`${base.href} serves no ONNX model (looked for ${candidates.join(', ')})`, opts.modelFile !== undefined ? 'modelFile' : null);
  files.push(model);
  if (await fetchFile(base, `${model}_data`, false)) files.push(`${model}_data`);
  return { files, bytes };
}

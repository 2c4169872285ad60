/**
 * Checks a user's ONNX text encoder before it is listed (`POST /v1/base-models`, run in a child
 * process): the folder is reduced to what the base needs — the chosen ONNX file as `model.onnx` at
 * its root (with its external-data file, if any), `config.json`, the tokenizer files — then
 * opened as the encoder would be in a job, and one text embedded: the vector has the hidden size
 * config.json states and finite values, pooled as asked. What it measures becomes the base's
 * descriptor.
 */
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { TextPooling, TokenizerKind } from '@graft/contracts';
import { CONFIG_FILE, InvalidTextBase, readOnnxTextFolder } from './folder.ts';
import { openOnnxTextEncoder } from './onnx-encoder.ts';

/** What the registration says (the rest is measured). */
export interface TextBaseClaim {
  pooling?: 'cls' | 'mean';
  maxLength?: number;
  outputName?: string;
  modelFile?: string;
}

export interface TextBaseInspection {
  format: 'onnx';
  /** Always `model.onnx` once stored (the chosen file, moved to the folder's root). */
  modelFile: string;
  /** Where the chosen file was in what the user sent. */
  sentModelFile: string;
  outputName: string;
  inputNames: string[];
  dim: number;
  maxLength: number;
  pooling: Extract<TextPooling, 'cls' | 'mean'>;
  tokenizer: { kind: TokenizerKind; files: string[]; vocabSize: number; lowercase: boolean };
  modelType: string | null;
  /** Bytes of the files kept. */
  bytes: number;
  /** The files kept, relative to the folder. */
  files: string[];
}

export const STORED_MODEL_FILE = 'model.onnx';

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

/** Keeps the chosen model (moved to the root as model.onnx, external data beside it), config.json and the tokenizer files; removes the rest. */
async function reduceFolder(dir: string, modelFile: string, tokenizerFiles: readonly string[]): Promise<string[]> {
  const from = join(dir, modelFile);
  // ONNX external data is named relative to the model file: `<file>_data` (the exporters' default) moves with it.
  const data = `${from}_data`;
  const hasData = await stat(data).then((s) => s.isFile(), () => false);
  const keep = new Set([CONFIG_FILE, ...tokenizerFiles, STORED_MODEL_FILE, ...(hasData ? [`${STORED_MODEL_FILE}_data`] : [])]);
  if (modelFile !== STORED_MODEL_FILE) {
    await rm(join(dir, STORED_MODEL_FILE), { force: true });
    await rm(join(dir, `${STORED_MODEL_FILE}_data`), { force: true });
    await rename(from, join(dir, STORED_MODEL_FILE));
    if (hasData) await rename(data, join(dir, `${STORED_MODEL_FILE}_data`));
  }
  for (const path of await walk(dir)) {
    const rel = relative(dir, path).split(sep).join('/');
    if (!keep.has(rel)) await rm(path, { force: true });
  }
  // Empty folders left behind (onnx/, …).
  for (const e of await readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await rm(join(dir, e.name), { recursive: true, force: true });
  return [...keep].sort();
}

export async function inspectOnnxTextBase(dir: string, claim: TextBaseClaim, opts: { threads?: number } = {}): Promise<TextBaseInspection> {
  const folder = await readOnnxTextFolder(dir, claim.modelFile === undefined ? {} : { modelFile: claim.modelFile });
  const files = await reduceFolder(dir, folder.modelFile, folder.tokenizer.files);
  const enc = await openOnnxTextEncoder(dir, {
    modelFile: STORED_MODEL_FILE,
    ...(claim.outputName !== undefined ? { outputName: claim.outputName } : {}),
    pooling: claim.pooling ?? 'mean',
    ...(claim.maxLength !== undefined ? { maxLength: claim.maxLength } : {}),
    threads: opts.threads ?? 1,
  });
  try {
    const texts = ['A short sentence to check the encoder.', 'Another one, a little longer, so that the batch is padded.'];
    const v = await enc.embed(texts);
    if (v.length !== texts.length * enc.dim || !v.every(Number.isFinite)) {
      throw new InvalidTextBase(`${folder.modelFile} gives non-finite sentence vectors for a plain English sentence`);
    }
    let bytes = 0;
    for (const f of files) bytes += await stat(join(dir, f)).then((s) => s.size, () => 0);
    const t = enc.tokenizer;
    return {
      format: 'onnx',
      modelFile: STORED_MODEL_FILE,
      sentModelFile: folder.modelFile,
      outputName: enc.outputName,
      inputNames: [...enc.inputNames],
      dim: enc.dim,
      maxLength: enc.maxLength,
      pooling: enc.pooling,
      tokenizer: { kind: t.kind, files: [...t.files], vocabSize: t.vocabSize, lowercase: t.lowercase },
      modelType: enc.config.modelType,
      bytes,
      files: (await Promise.all(files.map(async (f) => ((await stat(join(dir, f)).catch(() => null)) ? f : null)))).filter((f): f is string => f !== null),
    };
  } finally {
    enc.dispose();
  }
}

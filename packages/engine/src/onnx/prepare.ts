/**
 * A frozen cut base on ONNX Runtime, or the reason it stays on tfjs. Converts the cut (or reuses
 * the cached conversion), checks it against tfjs on seeded random inputs and opens a session:
 *
 *   <cacheDir>/onnx/<key>.onnx   the converted model
 *   <cacheDir>/onnx/<key>.json   what it is: checksum, cut layer, the check's figures, the file's sha256
 *
 * key = sha256(converter version, the cut model's checksum — its topology and every weight byte —,
 * the cut layer, the output pooling). A conversion that failed its check is recorded too (no .onnx),
 * so later jobs fall back at once instead of converting again. A cached file whose sha256 differs
 * from its record is converted again. The check runs when the file is made; a cached, checked file is
 * used as is (the record says when and how it was checked).
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '@graft/contracts';
import { TrainingCancelled } from '../errors.ts';
import { canonicalJson } from '../util/hash.ts';
import { modelChecksum } from '../util/model-checksum.ts';
import { markCacheUsed } from '../util/cache-use.ts';
import { convertLayersModel, CONVERTER_VERSION, UnsupportedLayerError, type ConvertedModel, type OutputPooling } from './convert.ts';
import { openOnnxRunner, type OnnxRunner } from './runtime.ts';
import { compareWithTfjs, MAX_RELATIVE_ERROR, type Equivalence } from './verify.ts';

export interface PrepareOnnxOptions {
  /** Shared cache (`<cacheDir>/onnx/`); null: convert in memory, keep nothing. */
  cacheDir: string | null;
  pooling: OutputPooling;
  /** The base's preprocessing: the check's inputs look like real images, and it fills unknown input sizes. */
  preprocessing: Preprocessing | null;
  threads?: number;
  signal?: AbortSignal;
  /** Defaults: 2 samples, the module's seed, MAX_RELATIVE_ERROR. */
  check?: { samples?: number; seed?: number; tolerance?: number };
}

/** What the cache records (and the caller reports in an event). */
export interface OnnxBaseRecord {
  version: number;
  key: string;
  checksum: string;
  cutLayer: string;
  pooling: OutputPooling;
  ok: boolean;
  /** Why it is not used (check failed). */
  reason?: string;
  equivalence: Equivalence;
  tolerance: number;
  /** sha256 of the .onnx file (ok records). */
  sha256?: string;
  bytes: number;
  inputShape: number[];
  outputShape: (number | null)[];
  flopsPerImage: number | null;
  ops: Record<string, number>;
  foldedBatchNorms: number;
  convertMs: number;
  checkMs: number;
  createdAt: string;
}

export type OnnxBase =
  | { ok: true; runner: OnnxRunner; record: OnnxBaseRecord; cached: boolean; path: string | null }
  | { ok: false; reason: string; record: OnnxBaseRecord | null; cached: boolean };

export { modelChecksum } from '../util/model-checksum.ts';

export function onnxCacheKey(parts: { checksum: string; cutLayer: string; pooling: OutputPooling }): string {
  return createHash('sha256').update(canonicalJson({ v: CONVERTER_VERSION, ...parts })).digest('hex');
}

export function onnxCacheFiles(cacheDir: string, key: string): { model: string; record: string } {
  const dir = join(cacheDir, 'onnx');
  return { model: join(dir, `${key}.onnx`), record: join(dir, `${key}.json`) };
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export async function prepareOnnxBase(cut: tf.LayersModel, opts: PrepareOnnxOptions): Promise<OnnxBase> {
  const cancelled = () => { if (opts.signal?.aborted) throw new TrainingCancelled(); };
  const cutLayer = cut.outputs[0]!.sourceLayer.name;
  const checksum = modelChecksum(cut);
  const key = onnxCacheKey({ checksum, cutLayer, pooling: opts.pooling });
  const files = opts.cacheDir ? onnxCacheFiles(opts.cacheDir, key) : null;
  const io = (c: { inputShape: number[] }) => ({ inputName: 'input', outputName: 'features', inputShape: c.inputShape });

  if (files) {
    const cached = await readCached(files);
    if (cached?.record.ok === false) return { ok: false, reason: cached.record.reason ?? 'the converted model did not match tfjs', record: cached.record, cached: true };
    if (cached?.bytes) {
      cancelled();
      const runner = await openOnnxRunner(cached.bytes, io(cached.record), { threads: opts.threads });
      return { ok: true, runner, record: cached.record, cached: true, path: files.model };
    }
  }

  cancelled();
  const t0 = performance.now();
  let converted: ConvertedModel;
  try {
    converted = convertLayersModel(cut, { pooling: opts.pooling });
  } catch (err) {
    if (err instanceof UnsupportedLayerError) return { ok: false, reason: `the converter does not support ${err.message}`, record: null, cached: false };
    throw err;
  }
  const convertMs = performance.now() - t0;
  const inputShape = converted.inputShape.map((d, i) => d ?? (opts.preprocessing ? [opts.preprocessing.height, opts.preprocessing.width, opts.preprocessing.channels][i] : null) ?? null);
  if (inputShape.some((d) => d == null)) return { ok: false, reason: `the base's input size [${converted.inputShape}] is not fixed and no preprocessing gives it`, record: null, cached: false };
  cancelled();

  const runner = await openOnnxRunner(converted.bytes, io({ inputShape: inputShape as number[] }), { threads: opts.threads });
  const tolerance = opts.check?.tolerance ?? MAX_RELATIVE_ERROR;
  let equivalence: Equivalence;
  const t1 = performance.now();
  try {
    equivalence = await compareWithTfjs(cut, runner, { pooling: opts.pooling, preprocessing: opts.preprocessing, samples: opts.check?.samples, seed: opts.check?.seed });
  } catch (err) {
    await runner.release();
    throw err;
  }
  const checkMs = performance.now() - t1;
  const ok = equivalence.relError < tolerance;
  const record: OnnxBaseRecord = {
    version: CONVERTER_VERSION,
    key,
    checksum,
    cutLayer,
    pooling: opts.pooling,
    ok,
    ...(ok ? { sha256: sha256(converted.bytes) } : { reason: `the converted model differs from tfjs by ${equivalence.relError.toExponential(2)} (relative to the feature scale ${equivalence.scale.toPrecision(3)}; the bound is ${tolerance})` }),
    equivalence,
    tolerance,
    bytes: converted.bytes.byteLength,
    inputShape: inputShape as number[],
    outputShape: converted.outputShape,
    flopsPerImage: converted.flopsPerImage,
    ops: converted.ops,
    foldedBatchNorms: converted.foldedBatchNorms,
    convertMs: Math.round(convertMs),
    checkMs: Math.round(checkMs),
    createdAt: new Date().toISOString(),
  };
  if (files) await writeCached(files, record, ok ? converted.bytes : null);
  if (!ok) {
    await runner.release();
    return { ok: false, reason: record.reason!, record, cached: false };
  }
  return { ok: true, runner, record, cached: false, path: files?.model ?? null };
}

async function readCached(files: { model: string; record: string }): Promise<{ record: OnnxBaseRecord; bytes: Uint8Array | null } | null> {
  let record: OnnxBaseRecord;
  try {
    record = JSON.parse(await readFile(files.record, 'utf8')) as OnnxBaseRecord;
  } catch {
    return null;
  }
  if (record.version !== CONVERTER_VERSION) return null;
  if (!record.ok) return { record, bytes: null };
  try {
    const bytes = await readFile(files.model);
    if (sha256(bytes) !== record.sha256) return null;
    await markCacheUsed(files.model, files.record);
    return { record, bytes };
  } catch {
    return null;
  }
}

async function writeCached(files: { model: string; record: string }, record: OnnxBaseRecord, bytes: Uint8Array | null): Promise<void> {
  await mkdir(join(files.model, '..'), { recursive: true });
  const tag = randomUUID();
  const tmpModel = `${files.model}.${tag}.tmp`;
  const tmpRecord = `${files.record}.${tag}.tmp`;
  try {
    if (bytes) await writeFile(tmpModel, bytes);
    await writeFile(tmpRecord, JSON.stringify(record, null, 1));
    // Model first: a reader that finds the record finds the whole model.
    if (bytes) await rename(tmpModel, files.model);
    await rename(tmpRecord, files.record);
  } catch (err) {
    await rm(tmpModel, { force: true });
    await rm(tmpRecord, { force: true });
    throw err;
  }
}

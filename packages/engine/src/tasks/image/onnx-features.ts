/**
 * The frozen cut of an image layers base on ONNX Runtime for the decode pass (training features,
 * validation features, the test set when the base never changes): converted once per base, cut layer
 * and pooling (cached under `<cacheDir>/onnx/`), checked against tfjs on seeded inputs, then run on
 * batches of float32 NHWC pixels. Anything that keeps it from ONNX Runtime — the setting, the
 * backend, an unsupported layer, a failed check, onnxruntime-node not loading — leaves the encoder on
 * tfjs with the reason, which the pipeline reports in the job's `backend` event.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '@graft/contracts';
import { initBackend } from '../../backend/backend.ts';
import { TrainingCancelled } from '../../errors.ts';
import { frozenRuntimeSetting } from '../../onnx/frozen-runtime.ts';
import type { Pooling } from '../../train/head.ts';
import type { FeatureRuntime } from '../task.ts';
import { featureBatchSize } from './preprocess.ts';

export interface OnnxFeatures {
  report: FeatureRuntime;
  /** Pooled feature rows of `n` preprocessed images (NHWC float32), or null on tfjs. */
  rows: { batchSize: number; run(x: Float32Array, n: number): Promise<Float32Array> } | null;
  release(): Promise<void>;
}

/**
 * Images per ONNX Runtime call: larger batches than tfjs' chunks (its activations are freed per
 * call), bounded so the largest bases (InceptionV3 at 299) stay well under a gigabyte.
 */
export function onnxBatchSize(pre: Preprocessing): number {
  return Math.min(32, 4 * featureBatchSize(pre));
}

export async function openOnnxFeatures(cut: tf.LayersModel, pooling: Pooling, pre: Preprocessing, opts: { cacheDir?: string; signal?: AbortSignal }): Promise<OnnxFeatures> {
  const setting = frozenRuntimeSetting((await initBackend()).name);
  const tfjs = (reason: string | null, fallback: boolean): OnnxFeatures => ({
    report: { runtime: 'tfjs', requested: setting.requested, reason, fallback, onnx: null },
    rows: null,
    release: async () => {},
  });
  if (setting.runtime === 'tfjs') return tfjs(setting.reason, false);
  let prepare: typeof import('../../onnx/prepare.ts');
  let runtime: typeof import('../../onnx/runtime.ts');
  try {
    // Loaded here only: jobs on tfjs never load onnxruntime-node.
    [prepare, runtime] = await Promise.all([import('../../onnx/prepare.ts'), import('../../onnx/runtime.ts')]);
  } catch (err) {
    return tfjs(`onnxruntime-node does not load here: ${(err as Error).message.split('\n')[0]}`, true);
  }
  let prepared: Awaited<ReturnType<typeof prepare.prepareOnnxBase>>;
  try {
    prepared = await prepare.prepareOnnxBase(cut, { cacheDir: opts.cacheDir ?? null, pooling, preprocessing: pre, threads: setting.threads, signal: opts.signal });
  } catch (err) {
    if (err instanceof TrainingCancelled) throw err;
    return tfjs(`converting the base to ONNX failed: ${(err as Error).message.split('\n')[0]}`, true);
  }
  if (!prepared.ok) return tfjs(prepared.reason, true);
  const { runner, record } = prepared;
  const batchSize = onnxBatchSize(pre);
  return {
    report: {
      runtime: 'onnx',
      requested: setting.requested,
      reason: null,
      fallback: false,
      onnx: {
        version: runtime.onnxRuntimeVersion(),
        threads: runner.threads,
        key: record.key,
        cached: prepared.cached,
        relError: record.equivalence.relError,
        checkedOn: record.equivalence.tfBackend,
        convertMs: record.convertMs,
        checkMs: record.checkMs,
        flopsPerImage: record.flopsPerImage,
        batchSize,
      },
    },
    rows: { batchSize, run: (x, n) => runner.run(x, n) },
    release: () => runner.release(),
  };
}

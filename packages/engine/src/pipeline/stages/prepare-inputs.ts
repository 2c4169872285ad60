/**
 * Stage 4, prepare inputs: the frozen encoder's features for the examples that need them (read
 * from the cross-job feature cache, or computed), and the task's input cache when a phase reads raw
 * inputs per batch (reused from the shared cache directory, or written) — one pass over the
 * dataset at most. Then the features as [n, dim] tensors for training and validation.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { sourceIdentity } from '../../bases/source-identity.ts';
import { featureCacheKey, readFeatureCache, writeFeatureCache, type FeatureCacheKeyParts } from '../../data/feature-cache.ts';
import type { InputCache, TaskEncoder } from '../../tasks/task.ts';
import type { RunContext } from '../context.ts';
import type { PreparedData } from './prepare-data.ts';
import type { PhasePlan } from './plan-phases.ts';
import { markCacheUsed } from '../../util/cache-use.ts';

/** At most one progress event this often during the pass. */
const PROGRESS_EVERY_MS = 30_000;

export interface PreparedInputs {
  /** Training features [nTrain, dim] (the head trains on them), or null when augmenting. */
  trainX: tf.Tensor2D | null;
  /** Validation features [nVal, dim], or null (no validation examples, or none computed). */
  valX: tf.Tensor2D | null;
  /** The input cache, when a phase reads raw inputs. */
  cache: InputCache | null;
  /** Rows of the split's examples in the features and the input cache (ids sorted). */
  rows: { train: number[]; validation: number[] };
  labels: { train: number[]; validation: number[] };
}

export async function prepareInputs(ctx: RunContext, encoder: TaskEncoder, data: PreparedData, plan: PhasePlan, datasetPath: string): Promise<PreparedInputs> {
  const { task, cacheDir } = ctx;
  const { units } = task;
  const capitalised = units.one[0]!.toUpperCase() + units.one.slice(1);
  const { split } = data;
  const store = encoder.inputs.cache;
  const ids = [...split.train, ...split.validation].map((e) => e.id).sort();
  const rowOf = new Map(ids.map((id, i) => [id, i]));
  const rows = { train: split.train.map((e) => rowOf.get(e.id)!), validation: split.validation.map((e) => rowOf.get(e.id)!) };
  const labels = { train: split.train.map((e) => e.label), validation: split.validation.map((e) => e.label) };
  const datasetSha256 = data.sha256;
  const keyParts: FeatureCacheKeyParts | null = cacheDir
    ? {
        baseId: ctx.base.descriptor.id,
        sourceIdentity: await sourceIdentity(ctx.base),
        cutLayer: ctx.spec.cutLayer,
        datasetSha256,
        ...encoder.inputIdentity,
        pooling: encoder.pooling,
        // Features from ONNX Runtime differ from tfjs' in the last bits: their own entry (tfjs keys are unchanged).
        ...(encoder.featureRuntime?.onnx ? { runtime: 'onnx', onnxModel: encoder.featureRuntime.onnx.key } : {}),
      }
    : null;
  const featureKey = keyParts ? featureCacheKey(keyParts) : null;

  let features: Float32Array | null = null;
  let featuresReused = false;
  if (cacheDir && featureKey) {
    const t = performance.now();
    features = await readFeatureCache(cacheDir, featureKey, ids, encoder.dim);
    if (features) {
      featuresReused = true;
      await ctx.emit({
        level: 'info',
        type: 'features',
        message: `Reused cached features for ${ids.length} ${units.many} (same dataset, base, cut layer and ${units.inputIdentity}) in ${Math.round(performance.now() - t)} ms.`,
        data: { reused: true, [units.countField]: ids.length, dim: encoder.dim, key: featureKey, ms: Math.round(performance.now() - t) },
      });
    }
  }
  const cacheFiles = plan.needsInputs ? (cacheDir ? store.files(cacheDir, datasetSha256) : store.files(ctx.workDir, null)) : null;
  let cache: InputCache | null = null;
  const openCache = async () => {
    cache = await store.open(cacheFiles!, ids, plan.augmentation);
    if (cache) ctx.onDispose(() => cache!.close());
    return cache;
  };
  if (cacheFiles && cacheDir && (await openCache())) {
    await markCacheUsed(cacheFiles.data, cacheFiles.index);
    await ctx.emit({ level: 'info', type: store.eventType, message: store.reused(ids.length), data: { reused: true, [units.countField]: ids.length } });
  }
  if (plan.augmentation) {
    await ctx.emit({
      level: 'info',
      type: 'augmentation',
      message: 'Augmentation is on: phase 1 runs the frozen base on every augmented batch instead of training on cached features (slower; validation still uses cached features).',
      data: { augmentation: plan.augmentation },
    });
  }
  // Features needed: every example for phase 1 on cached features, the validation ones when augmenting.
  const featureRows = plan.features === 'validation' ? new Set(rows.validation) : null;
  const needFeatures = !features && plan.features !== null;
  if (needFeatures || (cacheFiles && !cache)) {
    const writer = cacheFiles && !cache ? await store.create(cacheFiles, ids) : null;
    const t = performance.now();
    let lastProgress = t;
    const describe = encoder.inputs.describePass({ count: ids.length, features: needFeatures ? plan.features : null, storing: writer !== null });
    await ctx.emit({ level: 'info', type: 'features', message: describe.start });
    let computed: Float32Array | null;
    const timing = { encoderMs: 0 };
    try {
      computed = await encoder.inputs.pass(datasetPath, {
        timing,
        ids,
        features: needFeatures ? (featureRows ?? 'all') : null,
        cache: writer,
        signal: ctx.signal,
        onProgress: async (done, total) => {
          if (performance.now() - lastProgress < PROGRESS_EVERY_MS || done === total) return;
          lastProgress = performance.now();
          await ctx.emit({ level: 'info', type: 'features', message: describe.progress(done, total), data: { done, total } });
        },
      });
      await writer?.finish();
    } catch (err) {
      await writer?.abort();
      throw err;
    }
    const ms = Math.round(performance.now() - t);
    ctx.inputPassMs = { decode: Math.max(0, ms - Math.round(timing.encoderMs)), encoder: Math.round(timing.encoderMs) };
    if (writer) await openCache();
    if (needFeatures) {
      features = computed;
      const count = featureRows ? featureRows.size : ids.length;
      await ctx.emit({
        level: 'info',
        type: 'features',
        message: `Computed features for ${count} ${units.many} in ${(ms / 1000).toFixed(1)} s.`,
        data: { [units.countField]: count, ms, [`msPer${capitalised}`]: ms / ids.length, dim: encoder.dim, reused: false, key: featureRows ? null : featureKey },
      });
      if (cacheDir && featureKey && keyParts && !featureRows && features) {
        await writeFeatureCache(cacheDir, featureKey, keyParts, ids, encoder.dim, features);
      }
    }
    if (writer) {
      const stored = store.stored(ids.length);
      await ctx.emit({ level: 'info', type: store.eventType, message: stored.message, data: { [units.countField]: ids.length, bytes: stored.bytes, ms } });
    }
  }
  ctx.checkCancelled();
  if (plan.needsInputs && !cache) throw new Error('the input cache is missing');
  ctx.record.featureCache = { used: plan.head.onFeatures, reused: featuresReused };

  const gather = (rs: readonly number[]) => {
    const out = new Float32Array(rs.length * encoder.dim);
    rs.forEach((r, i) => out.set(features!.subarray(r * encoder.dim, (r + 1) * encoder.dim), i * encoder.dim));
    return out;
  };
  const nVal = rows.validation.length;
  const trainX = features && plan.head.onFeatures ? ctx.keep(tf.tensor2d(gather(rows.train), [rows.train.length, encoder.dim])) : null;
  const valX = features && nVal ? ctx.keep(tf.tensor2d(gather(rows.validation), [nVal, encoder.dim])) : null;
  return { trainX, valX, cache, rows, labels };
}

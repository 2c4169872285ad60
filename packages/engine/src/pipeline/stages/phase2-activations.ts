/**
 * Phase 2 without recomputing the frozen lower layers: the base is split at the boundary between its
 * frozen layers and the unfrozen top (train/freezing.ts `splitForward`); the frozen part never
 * changes, so its activations are computed once for the training and validation examples — on ONNX
 * Runtime when the job's features run there and the converter converts and checks that part (max
 * relative error < 1e-4), else in tfjs — and every epoch trains [unfrozen top + head] on them.
 *
 * Augmentation draws new inputs every batch: the training examples' frozen part then runs on every
 * batch as before, only the validation activations are kept (validation is never augmented). The
 * store is bounded (train/activation-store.ts): in memory up to GRAFT_PHASE2_CACHE_MEMORY_MB, on disk
 * in the job's work directory up to GRAFT_PHASE2_CACHE_DISK_MB, beyond that recomputed every batch;
 * the phase's event says which, and why.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Scorer } from '../../evaluate/metrics.ts';
import type { AsyncPredict } from '../../evaluate/score.ts';
import { TrainingCancelled } from '../../errors.ts';
import type { Validation } from '../../train/callbacks.ts';
import { activationCacheSetting, ActivationStore, placeActivations, type ActivationSlot, type StoredRows } from '../../train/activation-store.ts';
import type { SplitForward } from '../../train/freezing.ts';
import { poolFeatures } from '../../train/head.ts';
import { runOnnxRows } from './onnx-rows.ts';
import { batchSizeOf } from '../../train/model-input.ts';
import type { Training } from '../training.ts';

const tick = () => new Promise((r) => setImmediate(r));

export interface FrozenActivations {
  /** What the phase event says about the frozen part (appended to its message) and its data. */
  message: string;
  data: Record<string, unknown>;
  /** The kept activations, or null (recomputed every batch). */
  store: ActivationStore | null;
  /** Training examples read from the store (false: augmentation, recomputed per batch). */
  train: boolean;
  /** Validation examples read from the store. */
  validation: boolean;
  /** Examples the frozen part ran on so far (the pass, then every recomputed batch and validation). */
  frozenRuns: number;
  /**
   * With augmentation and the frozen part on ONNX Runtime: the boundary values of a batch of model
   * inputs (not freed here) computed there; null: the caller runs the frozen part in tfjs.
   */
  runFrozen: ((x: tf.Tensor, n: number) => Promise<tf.Tensor[]>) | null;
  /** The store's batch of training indices (store rows 0..nTrain-1), as bytes; `tensors` makes them the boundary values. */
  readTrain(indices: readonly number[]): Promise<StoredRows>;
  tensors(batch: StoredRows): tf.Tensor[];
  /** [unfrozen top + head] on the stored validation activations, inference mode. */
  validate(): Promise<Validation | null>;
  close(): Promise<void>;
  /**
   * The transfer model (as trained so far) on model inputs with the frozen part on ONNX Runtime and
   * the unfrozen top and head in tfjs, inference mode; null when the frozen part runs in tfjs.
   * Open until the job ends (the evaluation uses it).
   */
  predictWithOnnx: AsyncPredict | null;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const size = (bytes: number) => (bytes >= GiB ? `${(bytes / GiB).toFixed(2)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`);

export async function prepareFrozenActivations(t: Training, forward: SplitForward): Promise<FrozenActivations> {
  const { ctx, encoder, inputs, plan, model, data } = t;
  const cut = encoder.cut!;
  const inputIds = new Set(cut.inputs.map((i) => i.id));
  const computed = forward.boundary.filter((b) => !inputIds.has(b.id));
  const setting = activationCacheSetting();
  const augmenting = plan.augmentation !== null;
  const nTrain = inputs.rows.train.length;
  const nVal = inputs.rows.validation.length;
  const boundaryNames = forward.boundary.map((b) => b.sourceLayer.name);
  const none = (why: string, extra: Record<string, unknown> = {}): FrozenActivations => ({
    message: why,
    data: { cached: false, boundary: boundaryNames, ...extra },
    store: null,
    train: false,
    validation: false,
    frozenRuns: 0,
    runFrozen: null,
    readTrain: () => Promise.reject(new Error('no stored activations')),
    tensors: () => {
      throw new Error('no stored activations');
    },
    validate: async () => null,
    close: async () => {},
    predictWithOnnx: null,
  });
  if (!setting.enabled) return none('GRAFT_PHASE2_CACHE=off: the frozen layers below run on every batch and every validation pass.');
  if (computed.length === 0) return none('Every layer below the cut is unfrozen: nothing frozen to compute once.');

  // Store rows: the training examples (training index order) unless augmenting, then the validation ones.
  const trainRows = augmenting ? [] : inputs.rows.train;
  const rows = [...trainRows, ...inputs.rows.validation];
  if (rows.length === 0) return none('No examples to keep activations of.');
  // A store row has one fixed size: a boundary with a dynamic dimension (a text encoder's sequence
  // axis) is recomputed every batch, as before the cache existed, rather than failing the job.
  const dynamic = forward.boundary.find((b) => b.shape.slice(1).some((d) => d == null));
  if (dynamic) {
    return none(`The frozen activations at ${dynamic.sourceLayer.name} have a dynamic shape [${dynamic.shape.map((d) => d ?? '?').join(', ')}]: the frozen layers below run on every batch instead.`, {
      reason: 'dynamic_shape',
    });
  }
  const slots: ActivationSlot[] = forward.boundary.map((b) => ({ shape: b.shape.slice(1) as number[], dtype: b.dtype === 'int32' ? 'int32' : 'float32' }));
  const place = placeActivations(slots, rows.length, setting);
  const perExample = slots.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1) * 4, 0);
  const shapes = slots.map((s) => s.shape);
  if (!place) {
    return none(
      `The frozen activations at ${boundaryNames.join(', ')} would take ${size(perExample * rows.length)} (${size(perExample)} per example), over GRAFT_PHASE2_CACHE_DISK_MB (${size(setting.diskBytes)}): the frozen layers below run on every batch instead.`,
      { bytes: perExample * rows.length, shapes, reason: 'over_disk_budget' },
    );
  }

  // ONNX Runtime for the frozen part: one boundary tensor computed from the one input, converted and checked.
  let onnx: Awaited<ReturnType<NonNullable<typeof encoder.frozenPartRuntime>>> | null = null;
  let runtimeNote: string | null = null;
  if (encoder.featureRuntime?.runtime === 'onnx' && encoder.frozenPartRuntime) {
    if (forward.boundary.length === 1 && computed.length === 1 && cut.inputs.length === 1) {
      const lower = tf.model({ inputs: cut.inputs, outputs: computed[0]!, name: `${cut.name}_frozen_part` });
      const opened = await encoder.frozenPartRuntime(lower);
      if (opened.rows) onnx = opened;
      else runtimeNote = `the frozen part stays on TensorFlow.js: ${opened.report.reason}`;
    } else {
      runtimeNote = `the frozen part stays on TensorFlow.js: its boundary has ${forward.boundary.length} tensors (the converter takes one input to one output)`;
    }
  }

  const store = await ActivationStore.create(slots, rows.length, place.location, join(ctx.workDir, 'phase2-activations.bin'));
  const cache = inputs.cache!;
  const started = performance.now();
  try {
    const batchSize = onnx ? onnx.rows!.batchSize : encoder.inferenceBatchSize;
    for (let start = 0; start < rows.length; start += batchSize) {
      if (ctx.signal?.aborted) throw new TrainingCancelled();
      const chunk = rows.slice(start, start + batchSize);
      const x = cache.inputs(await cache.read(chunk), null);
      let values: tf.Tensor[];
      try {
        if (onnx) {
          const out = await onnx.rows!.run(await (x as tf.Tensor).data<'float32'>(), chunk.length);
          values = [tf.tensor(out, [chunk.length, ...slots[0]!.shape])];
        } else {
          values = forward.frozen(x, encoder.inferenceBatchSize);
        }
      } finally {
        tf.dispose(x);
      }
      try {
        await store.append(values);
      } finally {
        tf.dispose(values);
      }
      await tick();
    }
  } catch (err) {
    await store.close();
    await onnx?.release().catch(() => {});
    throw err;
  }
  const ms = Math.round(performance.now() - started);
  ctx.onDispose(() => store.close());
  if (onnx) {
    const session = onnx;
    ctx.onDispose(() => session.release());
  }

  const runtime = onnx ? 'onnx' : 'tfjs';
  const { many } = ctx.task.units;
  const where = place.location === 'memory' ? `in memory (${size(store.bytes)})` : `on disk (${size(store.bytes)}, over GRAFT_PHASE2_CACHE_MEMORY_MB ${size(setting.memoryBytes)})`;
  const message =
    `The frozen layers below ${boundaryNames.join(', ')} ran once on ${augmenting ? `the ${nVal} validation` : `${nTrain} training and ${nVal} validation`} ${many} ` +
    `(${onnx ? 'ONNX Runtime' : 'TensorFlow.js'}, ${(ms / 1000).toFixed(1)} s); their activations are kept ${where}` +
    (augmenting ? `. Augmentation is on: the training batches run the frozen layers on every augmented batch (${onnx ? 'ONNX Runtime' : 'TensorFlow.js'}).` : ' and every epoch trains the unfrozen top and the head on them.') +
    (runtimeNote ? ` (${runtimeNote[0]!.toUpperCase()}${runtimeNote.slice(1)}.)` : '');
  const numClasses = data.classes.length;
  const { head } = model;
  const result: FrozenActivations = {
    message,
    data: {
      cached: true,
      boundary: boundaryNames,
      shapes,
      runtime,
      runtimeNote,
      location: place.location,
      bytes: store.bytes,
      ms,
      examples: { train: trainRows.length, validation: nVal },
      augmentation: augmenting,
      ...(onnx?.report.onnx ? { onnx: { relError: onnx.report.onnx.relError, key: onnx.report.onnx.key, cached: onnx.report.onnx.cached } } : {}),
    },
    store,
    train: !augmenting,
    validation: nVal > 0,
    frozenRuns: rows.length,
    // Augmented batches need a new pass each: on ONNX Runtime too when the pass ran there (the session stays open for the job).
    runFrozen: onnx && augmenting ? async (x, n) => [await runOnnxRows(onnx!.rows!, x, n, slots[0]!.shape)] : null,
    readTrain: (indices) => store.records(indices),
    tensors: (batch) => store.tensors(batch),
    validate: async () => {
      if (!nVal) return null;
      const scorer = new Scorer(numClasses, data.topK);
      const labels = inputs.labels.validation;
      for (let start = 0; start < nVal; start += encoder.inferenceBatchSize) {
        if (ctx.signal?.aborted) throw new TrainingCancelled();
        const end = Math.min(nVal, start + encoder.inferenceBatchSize);
        const values = await store.read(Array.from({ length: end - start }, (_, k) => trainRows.length + start + k));
        try {
          const probs = tf.tidy(() => head.model.predict(poolFeatures(head, forward.trainable(values))) as tf.Tensor2D);
          try {
            await scorer.add(probs, labels.slice(start, end));
          } finally {
            probs.dispose();
          }
        } finally {
          tf.dispose(values);
        }
        await tick();
      }
      return { loss: scorer.loss!, accuracy: scorer.accuracy! };
    },
    close: () => store.close(),
    predictWithOnnx: onnx
      ? async (x) => {
          const n = batchSizeOf(x);
          const pixels = await (x as tf.Tensor).data<'float32'>();
          const per = pixels.length / n;
          const rows = onnx.rows!;
          const out = new Float32Array(n * slots[0]!.shape.reduce((a, b) => a * b, 1));
          const outPer = out.length / n;
          for (let start = 0; start < n; start += rows.batchSize) {
            const m = Math.min(rows.batchSize, n - start);
            out.set(await rows.run(pixels.subarray(start * per, (start + m) * per), m), start * outPer);
          }
          return tf.tidy(() => head.model.predict(poolFeatures(head, forward.trainable([tf.tensor(out, [n, ...slots[0]!.shape])]))) as tf.Tensor2D);
        }
      : null,
  };
  return result;
}

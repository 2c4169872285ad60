/**
 * One fine-tune job: a new head on a frozen base (the Keras transfer-learning recipe), trained on
 * cached base features. Same seed + data + backend → same split, weights and metrics.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import { GraftError, type FineTuneResult, type FineTuneSpec } from '@graft/contracts';
import { initBackend } from './backend.ts';
import { getBaseModel } from './catalog.ts';
import { inspectArchive, type ArchiveInspection } from './dataset-archive.ts';
import { TrainingCancelled, TrainingError } from './errors.ts';
import { assembleInferenceModel, exportModel } from './export.ts';
import { computeFeatures, featureExtractor } from './features.ts';
import { buildHead, type Head } from './head.ts';
import { cutAtFeatureLayer, loadBaseModel } from './load-base.ts';
import { accuracyOf, confusionMatrix, perClassMetrics } from './metrics.ts';
import { stratifiedSplit, type LabelledImage } from './split.ts';
import { evaluateHead, isOverfitting, trainHead, type EpochResult } from './train-head.ts';

export { TrainingCancelled, TrainingError } from './errors.ts';

export interface TrainingEvent {
  level: 'info' | 'warning' | 'error';
  type: string;
  message: string;
  data?: Record<string, unknown>;
}

export interface TrainingHooks {
  onEvent?(e: TrainingEvent): void | Promise<void>;
  onBatch?(p: { epoch: number; epochs: number; batch: number; batches: number }): void | Promise<void>;
  onEpoch?(m: { epoch: number; phase: string; loss: number; accuracy: number; valLoss: number | null; valAccuracy: number | null; durationMs: number }): void | Promise<void>;
}

export interface FineTuneOptions {
  baseModelId: string;
  /** The dataset .zip (`<class>/<image>`). */
  datasetPath: string;
  spec: FineTuneSpec;
  /** Gets `model/` (the exported files) and `model.zip`. */
  outDir: string;
  signal?: AbortSignal;
  hooks?: TrainingHooks;
}

export interface FineTuneOutcome {
  result: FineTuneResult;
  modelZipPath: string;
  modelZipBytes: number;
}

/** largest class / smallest class above this → an `imbalance` warning (the Dataset contract's threshold). */
const IMBALANCE_RATIO = 3;
/** At most one `features` progress event this often. */
const FEATURE_PROGRESS_EVERY_MS = 30_000;

export async function fineTune(opts: FineTuneOptions): Promise<FineTuneOutcome> {
  const started = performance.now();
  const { spec, signal, hooks = {} } = opts;
  const { epochs, batchSize, learningRate } = spec.hyperparameters;
  const emit = async (e: TrainingEvent) => { await hooks.onEvent?.(e); };
  const checkCancelled = () => { if (signal?.aborted) throw new TrainingCancelled(); };

  checkCancelled();
  const backend = await initBackend();
  await emit({ level: 'info', type: 'backend', message: `Training on the TensorFlow.js ${backend.name} backend.`, data: { ...backend } });

  const info = getBaseModel(opts.baseModelId);
  if (!info) throw new TrainingError('base_model_unavailable', `Unknown base model "${opts.baseModelId}".`);

  const inspection = await inspectDataset(opts.datasetPath);
  const classes = inspection.classes.map((c) => c.name);
  const split = stratifiedSplit(uniqueByPath(inspection.images), classes, spec.validationSplit, spec.seed);
  await emit({
    level: 'info',
    type: 'dataset',
    message: `${split.train.length} training and ${split.validation.length} validation images in ${classes.length} classes.`,
    data: { classes: split.counts, skipped: inspection.skipped.length },
  });
  const sizes = inspection.classes.map((c) => c.images);
  const ratio = Math.max(...sizes) / Math.min(...sizes);
  if (ratio > IMBALANCE_RATIO) {
    await emit({
      level: 'warning',
      type: 'imbalance',
      message: `The largest class has ${ratio.toFixed(1)}x the images of the smallest: expect predictions biased towards large classes.`,
      data: { imbalanceRatio: ratio },
    });
  }
  checkCancelled();

  const tensors: tf.TensorContainer[] = [];
  let base: tf.LayersModel | null = null;
  let head: Head | null = null;
  try {
    base = (await loadBaseModel(info.id)).model;
    const fx = featureExtractor(cutAtFeatureLayer(base, info.featureLayer));

    const all: LabelledImage[] = [...split.train, ...split.validation];
    const featureStart = performance.now();
    await emit({ level: 'info', type: 'features', message: `Computing ${info.name} features for ${all.length} images.` });
    let lastProgress = performance.now();
    const features = await computeFeatures(opts.datasetPath, all.map((i) => i.path), fx, info.preprocessing, {
      signal,
      // A large dataset on a big base takes minutes here, before the first batch: say how far it got.
      onProgress: async (done, total) => {
        if (performance.now() - lastProgress < FEATURE_PROGRESS_EVERY_MS || done === total) return;
        lastProgress = performance.now();
        await emit({ level: 'info', type: 'features', message: `Computed features for ${done} of ${total} images.`, data: { done, total } });
      },
    });
    const featureMs = Math.round(performance.now() - featureStart);
    await emit({
      level: 'info',
      type: 'features',
      message: `Computed features for ${all.length} images in ${(featureMs / 1000).toFixed(1)} s.`,
      data: { images: all.length, ms: featureMs, msPerImage: featureMs / all.length, dim: fx.dim },
    });

    const nTrain = split.train.length;
    const nVal = split.validation.length;
    const trainX = tf.tensor2d(features.subarray(0, nTrain * fx.dim), [nTrain, fx.dim]);
    const trainY = tf.tensor1d(split.train.map((i) => i.label), 'int32');
    const valX = nVal ? tf.tensor2d(features.subarray(nTrain * fx.dim), [nVal, fx.dim]) : null;
    const valY = nVal ? tf.tensor1d(split.validation.map((i) => i.label), 'int32') : null;
    tensors.push(trainX, trainY, valX ?? [], valY ?? []);

    head = buildHead(fx.dim, classes.length, fx.pooling, spec.seed);
    const full = assembleInferenceModel(fx.cut, head);
    let warnedOverfitting = false;
    const seen: EpochResult[] = [];
    const history = await trainHead(head, { trainX, trainY, valX, valY, numClasses: classes.length }, {
      epochs,
      batchSize,
      learningRate,
      seed: spec.seed,
      signal,
      onBatch: hooks.onBatch?.bind(hooks),
      onEpoch: async (m) => {
        seen.push(m);
        await hooks.onEpoch?.(m);
        if (!warnedOverfitting && isOverfitting(seen)) {
          warnedOverfitting = true;
          await emit({
            level: 'warning',
            type: 'overfitting',
            message: `Validation loss has risen for 3 epochs while training loss fell (epoch ${m.epoch}): the head is overfitting; fewer epochs or more data would help.`,
            data: { epoch: m.epoch },
          });
        }
      },
    });

    // Final metrics: the trained head in inference mode on the cached validation features, i.e.
    // exactly what the exported model computes on the validation images.
    const evaluation = valX && valY ? await evaluateHead(head, valX, valY, classes.length) : null;
    const matrix = confusionMatrix(split.validation.map((i) => i.label), evaluation?.predicted ?? [], classes.length);
    const result: FineTuneResult = {
      classes,
      trainImages: nTrain,
      validationImages: nVal,
      epochsRun: history.length,
      stoppedEarly: false,
      valAccuracy: accuracyOf(matrix),
      valLoss: evaluation?.loss ?? null,
      perClass: perClassMetrics(matrix, classes),
      confusionMatrix: matrix,
      backend: backend.name,
      trainingMs: 0,
    };
    checkCancelled();

    const dataset = await describeDataset(opts.datasetPath, inspection);
    result.trainingMs = Math.round(performance.now() - started);
    const training = {
      baseModel: { id: info.id, featureLayer: info.featureLayer, inputShape: info.inputShape },
      dataset: { id: spec.dataset, ...dataset, classes: split.counts },
      seed: spec.seed,
      validationSplit: spec.validationSplit,
      hyperparameters: spec.hyperparameters,
      head: { units: head.units, dropout: head.dropoutRate, pooling: fx.pooling, optimizer: 'adam', loss: 'categorical_crossentropy' },
      backend: backend.name,
      split: { train: split.train.map((i) => i.path), validation: split.validation.map((i) => i.path) },
      history,
      result,
    };
    const exported = await exportModel({ model: full, labels: classes, preprocessing: info.preprocessing, training, outDir: opts.outDir });
    await emit({ level: 'info', type: 'export', message: `Exported the model (${exported.bytes} bytes).`, data: { bytes: exported.bytes } });
    return { result, modelZipPath: exported.zipPath, modelZipBytes: exported.bytes };
  } finally {
    tf.dispose(tensors);
    releaseWeights([base, head?.model]);
  }
}

/** inspectArchive's GraftErrors (bad archive) become TrainingErrors under the same code. */
async function inspectDataset(path: string): Promise<ArchiveInspection> {
  try {
    return await inspectArchive(path);
  } catch (err) {
    if (err instanceof GraftError) throw new TrainingError(err.code, err.message);
    throw err;
  }
}

/**
 * Frees every weight of the given models (base, cut, head and the assembled model share layers).
 * tfjs' own dispose() is reference-counted per layer and cannot free layers shared by several
 * containers, nor the base's layers above the cut, in one go.
 */
function releaseWeights(models: readonly (tf.LayersModel | null | undefined)[]): void {
  for (const model of models) {
    for (const w of model?.weights ?? []) {
      const v = w.read();
      if (!v.isDisposed) v.dispose();
    }
  }
}

function uniqueByPath<T extends { path: string }>(items: readonly T[]): T[] {
  const seen = new Set<string>();
  return items.filter((i) => (seen.has(i.path) ? false : (seen.add(i.path), true)));
}

/** What training.json records about the dataset: its content hash and size, never a file path. */
async function describeDataset(path: string, inspection: ArchiveInspection): Promise<Record<string, unknown>> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return { sha256: hash.digest('hex'), bytes: (await stat(path)).size, images: inspection.images.length, skipped: inspection.skipped.length };
}


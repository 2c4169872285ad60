/**
 * One fine-tune job, the Keras transfer-learning recipe: phase `head` trains a new head on the
 * frozen base (on cached features, or per batch when augmenting); phase `fine-tune` unfreezes the
 * chosen top layers and trains end to end at a lower rate, the base in inference mode (frozen
 * BatchNorm keeps its statistics); optionally a `baseline` trained from scratch for comparison.
 * Early stopping, class weights, label smoothing, L2, seeded augmentation, checkpoints, and an
 * evaluation of the exported model on the validation split and an optional test set.
 * Same seed + data + backend → same split, weights and metrics.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { GraftError, type FineTuneResult, type FineTuneSpec, type Preprocessing } from '@graft/contracts';
import { augmentBatch, isAugmenting } from './augment.ts';
import { initBackend } from './backend.ts';
import { HEAD_LAYER_PREFIX, openTrainingBase, sourceIdentity, type TrainingBase } from './base-adapter.ts';
import type { ResolvedBase } from './base-source.ts';
import { cloneWithFreshWeights } from './baseline.ts';
import { CheckpointWriter, type CheckpointInfo } from './checkpoints.ts';
import { resolveClassWeights } from './class-weights.ts';
import { inspectArchive, type ArchiveInspection } from './dataset-archive.ts';
import { EarlyStopper, type BestSoFar } from './early-stopping.ts';
import { TrainingCancelled, TrainingError } from './errors.ts';
import { scoreHeadOnFeatures, scoreModelOnCache, scoreModelsOnArchive } from './evaluate.ts';
import { assembleHeadModel, assembleInferenceModel, exportModel, type ModelFiles } from './export.ts';
import { featureCacheKey, readFeatureCache, writeFeatureCache, type FeatureCacheKeyParts } from './feature-cache.ts';
import { decodePass, featureBatchSize, featureExtractor, graphFeatureExtractor, type FeatureExtractor } from './features.ts';
import { asUnsupportedOnBackend, cutBase, missingGradientKernels, selectTrainableLayers, splitForward, unfreeze, type TrainableSelection } from './freezing.ts';
import { assertGraphUsable } from './load-base.ts';
import { buildHead, headForwardTraining, poolFeatures, type Head, type LossOptions } from './head.ts';
import { ImageCache, ImageCacheWriter, imageCacheFiles, imageCacheKey } from './image-cache.ts';
import { clampTopK, Scorer } from './metrics.ts';
import { scalePixels } from './preprocess.ts';
import { mulberry32, nextSeed } from './random.ts';
import { stratifiedSplit, type LabelledImage } from './split.ts';
import { isOverfitting, trainHeadPhase } from './train-head.ts';
import { optimizerStep, runPhase, type EpochResult, type PhaseLoop, type PhaseName, type PhaseOutcome } from './training-loop.ts';

export { TrainingCancelled, TrainingError } from './errors.ts';

export interface TrainingEvent {
  level: 'info' | 'warning' | 'error';
  type: string;
  message: string;
  data?: Record<string, unknown>;
}

export interface TrainingHooks {
  onEvent?(e: TrainingEvent): void | Promise<void>;
  onBatch?(p: { phase: string; epoch: number; epochs: number; batch: number; batches: number }): void | Promise<void>;
  onEpoch?(m: { epoch: number; phase: string; loss: number; accuracy: number; valLoss: number | null; valAccuracy: number | null; durationMs: number }): void | Promise<void>;
  /** A checkpoint was written (a model zip in the same format as the final one, under outDir/checkpoints/). The worker moves/records it. */
  onCheckpoint?(c: { epoch: number; phase: string; batch: number | null; valLoss: number | null; valAccuracy: number | null; isBest: boolean; zipPath: string; bytes: number }): void | Promise<void>;
}

export interface FineTuneOptions {
  /** The base: its public descriptor and where its weights are (`resolveCatalogBase`, or the worker's resolver). */
  base: ResolvedBase;
  /** The dataset .zip (`<class>/<image>`). */
  datasetPath: string;
  /** `spec.testDataset` resolved by the worker: evaluated once at the end; its classes must be a subset of the training classes. */
  testDatasetPath?: string | null;
  /** Normalized (`normalizeFineTune`). */
  spec: FineTuneSpec;
  /** Gets `model/`, `model.zip` and `checkpoints/`. */
  outDir: string;
  /** Shared across jobs: `features/` (feature cache) and `images/` (decoded-image cache). null → nothing reused across jobs. */
  cacheDir?: string | null;
  signal?: AbortSignal;
  hooks?: TrainingHooks;
}

export interface FineTuneOutcome {
  result: FineTuneResult;
  modelZipPath: string;
  modelZipBytes: number;
  /** Every checkpoint written (also reported through `hooks.onCheckpoint`). */
  checkpoints: CheckpointInfo[];
}

/** largest class / smallest class above this → an `imbalance` warning (the Dataset contract's threshold). */
const IMBALANCE_RATIO = 3;
/** At most one progress event this often during the decode/feature pass. */
const PROGRESS_EVERY_MS = 30_000;
/** The transfer model counts as no better than the scratch baseline within this much val accuracy. */
const TASK_MISMATCH_MARGIN = 0.01;
/** Each phase's PRNG stream, apart from the split's. */
const SALT: Record<PhaseName, number> = { head: 0x5bd1e995, 'fine-tune': 0x27d4eb2f, baseline: 0x165667b1 };

export async function fineTune(opts: FineTuneOptions): Promise<FineTuneOutcome> {
  const started = performance.now();
  const { spec, signal, hooks = {} } = opts;
  const descriptor = opts.base.descriptor;
  const pre = descriptor.preprocessing as Preprocessing;
  const hp = spec.hyperparameters;
  const emit = async (e: TrainingEvent) => { await hooks.onEvent?.(e); };
  const checkCancelled = () => { if (signal?.aborted) throw new TrainingCancelled(); };

  checkCancelled();
  const backend = await initBackend();
  await emit({ level: 'info', type: 'backend', message: `Training on the TensorFlow.js ${backend.name} backend.`, data: { ...backend } });

  // ---- Data: split, class weights, test set (all cheap checks before any model work).
  const inspection = await inspectDataset(opts.datasetPath);
  const classes = inspection.classes.map((c) => c.name);
  const numClasses = classes.length;
  const images = uniqueByPath(inspection.images);
  const split = stratifiedSplit(images, classes, spec.validationSplit, spec.seed);
  const nTrain = split.train.length;
  const nVal = split.validation.length;
  await emit({
    level: 'info',
    type: 'dataset',
    message: `${nTrain} training and ${nVal} validation images in ${numClasses} classes.`,
    data: { classes: split.counts, skipped: inspection.skipped.length },
  });
  const sizes = inspection.classes.map((c) => c.images);
  const ratio = Math.max(...sizes) / Math.min(...sizes);
  if (ratio > IMBALANCE_RATIO) {
    await emit({
      level: 'warning',
      type: 'imbalance',
      message:
        `The largest class has ${ratio.toFixed(1)}x the images of the smallest: expect predictions biased towards large classes.` +
        (spec.classWeights === 'none' ? ' Set classWeights: "auto" to weigh each class by the inverse of its size.' : ''),
      data: { imbalanceRatio: ratio, classWeights: spec.classWeights },
    });
  }
  const classWeights = resolveClassWeights(spec.classWeights, classes, split.counts.map((c) => c.train));
  if (classWeights) {
    await emit({
      level: 'info',
      type: 'class_weights',
      message: `Class weights: ${classes.map((c, i) => `${c} ${classWeights[i]!.toFixed(3)}`).join(', ')}.`,
      data: { classWeights: Object.fromEntries(classes.map((c, i) => [c, classWeights[i]])) },
    });
  }
  const testSet = opts.testDatasetPath ? await loadTestSet(opts.testDatasetPath, classes) : null;
  const k = clampTopK(spec.topK, numClasses);
  const datasetSha256 = await sha256File(opts.datasetPath);
  const datasetBytes = (await stat(opts.datasetPath)).size;
  checkCancelled();

  const tensors: tf.Tensor[] = [];
  const models: (tf.LayersModel | null)[] = [];
  const stoppers: EarlyStopper[] = [];
  let imageCache: ImageCache | null = null;
  let disposeBase: (() => void) | null = null;
  const workDir = join(opts.outDir, '.work');
  try {
    // ---- Base, cut, what phase 2 unfreezes.
    const opened: TrainingBase = await openTrainingBase(opts.base, { cutLayer: spec.cutLayer, cacheDir: opts.cacheDir ?? undefined, signal });
    disposeBase = () => opened.graph?.model.dispose();
    models.push(opened.model);
    let cut: tf.LayersModel | null = null;
    let fx: FeatureExtractor;
    let selection: TrainableSelection = { layers: [], names: [], clampedFrom: null };
    if (opened.model) {
      cut = cutBase(opened.model, spec.cutLayer);
      fx = featureExtractor(cut);
      selection = selectTrainableLayers(cut, spec.trainableLayers);
    } else {
      // A graph base is a frozen feature extractor: no phase 2, no scratch baseline.
      assertGraphUsable(spec);
      fx = graphFeatureExtractor(opened.graph!.features, pre);
    }
    if (selection.clampedFrom !== null) {
      await emit({ level: 'info', type: 'trainable_layers', message: `trainableLayers ${selection.clampedFrom} is more than the ${selection.names.length} layers with weights below the cut: all of them are unfrozen in phase 2.` });
    }
    let phase2 = spec.trainableLayers !== 'none' && hp.fineTuneEpochs > 0;
    if (spec.trainableLayers === 'none' && hp.fineTuneEpochs > 0) {
      await emit({ level: 'info', type: 'fine_tune_skipped', message: `fineTuneEpochs is ${hp.fineTuneEpochs} but trainableLayers is "none": no phase 2 (feature extraction only).` });
    } else if (phase2 && selection.names.length === 0) {
      phase2 = false;
      await emit({ level: 'warning', type: 'fine_tune_skipped', message: `trainableLayers selects no layer with weights (${JSON.stringify(spec.trainableLayers)}): no phase 2.` });
    }
    const augmentation = isAugmenting(spec.augmentation) ? spec.augmentation : null;
    const baselineOn = spec.baseline === 'scratch';
    // Fail before any expensive work when the backend cannot compute the gradients needed.
    if (phase2) assertKernels(missingGradientKernels(cut!, selection.layers), 'phase 2 (fine-tune)');
    if (baselineOn) assertKernels(missingGradientKernels(cut!, cut!.layers.filter((l) => l.weights.length > 0)), 'the scratch baseline');
    const needImages = phase2 || augmentation !== null || baselineOn;

    // ---- Features (feature cache) and decoded images (image cache), one decode pass at most.
    const paths = images.map((i) => i.path).sort();
    const rowOf = new Map(paths.map((p, i) => [p, i]));
    const trainRows = split.train.map((i) => rowOf.get(i.path)!);
    const valRows = split.validation.map((i) => rowOf.get(i.path)!);
    const trainLabels = split.train.map((i) => i.label);
    const valLabels = split.validation.map((i) => i.label);
    const cacheDir = opts.cacheDir ?? null;
    const keyParts: FeatureCacheKeyParts | null = cacheDir
      ? { baseId: descriptor.id, sourceIdentity: await sourceIdentity(opts.base), cutLayer: spec.cutLayer, datasetSha256, preprocessing: pre, pooling: fx.pooling }
      : null;
    const featureKey = keyParts ? featureCacheKey(keyParts) : null;

    let features: Float32Array | null = null;
    let featuresReused = false;
    if (cacheDir && featureKey) {
      const t = performance.now();
      features = await readFeatureCache(cacheDir, featureKey, paths, fx.dim);
      if (features) {
        featuresReused = true;
        await emit({
          level: 'info',
          type: 'features',
          message: `Reused cached features for ${paths.length} images (same dataset, base, cut layer and preprocessing) in ${Math.round(performance.now() - t)} ms.`,
          data: { reused: true, images: paths.length, dim: fx.dim, key: featureKey, ms: Math.round(performance.now() - t) },
        });
      }
    }
    const imageFiles = needImages
      ? cacheDir ? imageCacheFiles(join(cacheDir, 'images'), imageCacheKey(datasetSha256, pre)) : imageCacheFiles(workDir, 'images')
      : null;
    const shape: [number, number, number] = [pre.height, pre.width, pre.channels];
    if (imageFiles && cacheDir) {
      imageCache = await ImageCache.open(imageFiles, { paths, shape });
      if (imageCache) await emit({ level: 'info', type: 'images', message: `Reused the decoded-image cache (${paths.length} images at ${shape.join('x')}).`, data: { reused: true, images: paths.length } });
    }
    if (augmentation) {
      await emit({
        level: 'info',
        type: 'augmentation',
        message: 'Augmentation is on: phase 1 runs the frozen base on every augmented batch instead of training on cached features (slower; validation still uses cached features).',
        data: { augmentation },
      });
    }
    // Features needed: every image for phase 1 on cached features, the validation images when augmenting.
    const featureRows = augmentation ? new Set(valRows) : null;
    const needFeatures = !features && (!augmentation || nVal > 0);
    if (needFeatures || (imageFiles && !imageCache)) {
      const writer = imageFiles && !imageCache ? await ImageCacheWriter.create(imageFiles, paths, shape) : null;
      const t = performance.now();
      let lastProgress = t;
      await emit({
        level: 'info',
        type: 'features',
        message: `Decoding ${paths.length} images once${needFeatures ? ` and computing ${descriptor.name} features${augmentation ? ' of the validation images' : ''}` : ''}${writer ? '; storing the decoded images for the epochs that need them' : ''}.`,
      });
      let computed: Float32Array | null;
      try {
        computed = await decodePass(opts.datasetPath, paths, pre, {
          features: needFeatures ? { fx, rows: featureRows ?? undefined } : null,
          onPixels: writer ? (row, px) => writer.write(row, px) : null,
          signal,
          onProgress: async (done, total) => {
            if (performance.now() - lastProgress < PROGRESS_EVERY_MS || done === total) return;
            lastProgress = performance.now();
            await emit({ level: 'info', type: 'features', message: `Decoded ${done} of ${total} images.`, data: { done, total } });
          },
        });
        await writer?.finish();
      } catch (err) {
        await writer?.abort();
        throw err;
      }
      const ms = Math.round(performance.now() - t);
      if (writer) imageCache = await ImageCache.open(imageFiles!, { paths, shape });
      if (needFeatures) {
        features = computed;
        await emit({
          level: 'info',
          type: 'features',
          message: `Computed features for ${featureRows ? featureRows.size : paths.length} images in ${(ms / 1000).toFixed(1)} s.`,
          data: { images: featureRows ? featureRows.size : paths.length, ms, msPerImage: ms / paths.length, dim: fx.dim, reused: false, key: featureRows ? null : featureKey },
        });
        if (cacheDir && featureKey && keyParts && !featureRows && features) {
          await writeFeatureCache(cacheDir, featureKey, keyParts, paths, fx.dim, features);
        }
      }
      if (writer) {
        await emit({
          level: 'info',
          type: 'images',
          message: `Stored ${paths.length} decoded ${shape.join('x')} images (${((paths.length * shape[0] * shape[1] * shape[2]) / 1e6).toFixed(1)} MB on disk).`,
          data: { images: paths.length, bytes: paths.length * shape[0] * shape[1] * shape[2], ms },
        });
      }
    }
    checkCancelled();
    if (needImages && !imageCache) throw new Error('the decoded-image cache is missing');

    const gather = (rows: readonly number[]) => {
      const out = new Float32Array(rows.length * fx.dim);
      rows.forEach((r, i) => out.set(features!.subarray(r * fx.dim, (r + 1) * fx.dim), i * fx.dim));
      return out;
    };
    const trainX = features && !augmentation ? keep(tensors, tf.tensor2d(gather(trainRows), [nTrain, fx.dim])) : null;
    const valX = features && nVal ? keep(tensors, tf.tensor2d(gather(valRows), [nVal, fx.dim])) : null;
    features = null; // rows gathered; let the full matrix go

    // ---- The head (continuing a previous fine-tune's head when the classes are the same).
    const headOptions = { units: hp.headUnits, dropout: hp.dropout, l2: hp.l2 };
    const head = buildHead(fx.dim, numClasses, fx.pooling, { ...headOptions, seed: spec.seed });
    models.push(head.model);
    let continuedFrom: string | null = null;
    if (opened.previous && opened.model) {
      const cont = continueHead(opened.model, opened.previous, head, classes, spec.cutLayer);
      if (cont.continued) continuedFrom = descriptor.id;
      await emit({
        level: 'info',
        type: 'continue',
        message: cont.continued
          ? `The base is the fine-tune ${descriptor.id} with the same classes: its head's weights start this training (continue training).`
          : `The base is the fine-tune ${descriptor.id}; a new head is trained (${cont.reason}).`,
        data: { continued: cont.continued, from: descriptor.id },
      });
    }
    // The exported model: cut base + head as one layers graph; for a graph base, the graph to its
    // feature node followed by the head (with its pooling) as a layers model.
    const full = cut ? assembleInferenceModel(cut, head) : null;
    const headOnFeatures = cut ? null : assembleHeadModel(fx.featureShape, head);
    const predict = (x: tf.Tensor4D): tf.Tensor2D =>
      full ? (full.predict(x) as tf.Tensor2D) : tf.tidy(() => headOnFeatures!.predict(fx.run(x)) as tf.Tensor2D);
    const modelFiles = (training: Record<string, unknown>): ModelFiles => ({
      model: full ?? headOnFeatures!,
      graphBase: opened.graph ? { model: opened.graph.model, featureNode: opened.graph.node } : null,
      labels: classes,
      preprocessing: pre,
      training,
    });
    const classWeightsTensor = classWeights ? keep(tensors, tf.tensor1d(classWeights)) : null;
    const lossOptions = (h: Head): LossOptions => ({ numClasses, labelSmoothing: hp.labelSmoothing, classWeights: classWeightsTensor, l2: hp.l2, kernels: h.kernels });

    // ---- Early stopping, warnings, checkpoints.
    const es = spec.earlyStopping;
    if (es && nVal === 0) await emit({ level: 'info', type: 'early_stopping', message: 'No validation images: early stopping is off.' });
    const stopperFor = (vars: tf.Variable[], carry: BestSoFar | null) => {
      if (!es || nVal === 0) return null;
      const s = new EarlyStopper(es, vars, carry);
      stoppers.push(s);
      return s;
    };
    const history: EpochResult[] = [];
    const phases: Record<string, unknown>[] = [];
    let warnedOverfitting = false;
    const afterEpoch = async (m: EpochResult, phaseHistory: EpochResult[]) => {
      phaseHistory.push(m);
      history.push(m);
      await hooks.onEpoch?.(m);
      if (!warnedOverfitting && isOverfitting(phaseHistory)) {
        warnedOverfitting = true;
        await emit({
          level: 'warning',
          type: 'overfitting',
          message: `Validation loss has risen for 3 epochs while training loss fell (${m.phase} epoch ${m.epoch}): the model is overfitting; early stopping, augmentation, more dropout or more data would help.`,
          data: { epoch: m.epoch, phase: m.phase },
        });
      }
      if (spec.checkpointEvery === 'epoch') await checkpoints.write({ epoch: m.epoch, phase: m.phase, batch: null, valLoss: m.valLoss, valAccuracy: m.valAccuracy });
    };
    const trainingRecord = (extra: Record<string, unknown>): Record<string, unknown> => ({
      spec,
      baseModel: {
        id: descriptor.id,
        name: descriptor.name,
        format: descriptor.format,
        featureLayer: descriptor.featureLayer,
        inputShape: descriptor.inputShape,
        sourceKind: opts.base.source.kind,
        continuedFrom,
      },
      cutLayer: spec.cutLayer,
      trainableLayers: { spec: spec.trainableLayers, names: phase2 ? selection.names : [] },
      dataset: { id: spec.dataset, sha256: datasetSha256, bytes: datasetBytes, images: inspection.images.length, skipped: inspection.skipped.length, classes: split.counts },
      testDataset: testSet ? { id: spec.testDataset, sha256: testSet.sha256, images: testSet.items.length } : null,
      seed: spec.seed,
      validationSplit: spec.validationSplit,
      hyperparameters: hp,
      head: { units: head.units, dropout: head.dropoutRate, pooling: fx.pooling, l2: hp.l2, labelSmoothing: hp.labelSmoothing, optimizer: 'adam', loss: 'categorical_crossentropy' },
      classWeights: classWeights ? Object.fromEntries(classes.map((c, i) => [c, classWeights[i]])) : null,
      augmentation,
      earlyStopping: es,
      featureCache: { used: !augmentation, reused: featuresReused },
      phases,
      history,
      backend: backend.name,
      split: { train: split.train.map((i) => i.path), validation: split.validation.map((i) => i.path) },
      ...extra,
    });
    const checkpoints = CheckpointWriter.forOutDir(
      opts.outDir,
      (c) => modelFiles(trainingRecord({ checkpoint: c })),
      hooks.onCheckpoint?.bind(hooks),
    );
    const steps = { count: 0 };
    const batchCheckpoints = (phase: PhaseName, validate: () => Promise<{ loss: number; accuracy: number } | null>) =>
      typeof spec.checkpointEvery === 'number'
        ? {
            n: spec.checkpointEvery,
            steps,
            run: async (epoch: number, batch: number) => {
              const v = await validate();
              await checkpoints.write({ epoch, phase, batch, valLoss: v?.loss ?? null, valAccuracy: v?.accuracy ?? null });
            },
          }
        : null;
    const onBatch = hooks.onBatch?.bind(hooks);
    const imageInputs = (bytes: Uint8Array, random: () => number) =>
      tf.tidy(() => {
        const px = imageCache!.pixels(bytes);
        return scalePixels(augmentation ? augmentBatch(px, augmentation, random) : px, pre);
      });
    const validateOnImages = (model: tf.LayersModel) => async () => {
      if (!nVal) return null;
      const s = await scoreModelOnCache(model, imageCache!, valRows, valLabels, pre, numClasses, k, { signal });
      return { loss: s.loss!, accuracy: s.accuracy! };
    };
    const validateHead = async () => {
      if (!valX) return null;
      const s = await scoreHeadOnFeatures(head, valX, valLabels, numClasses, k);
      return { loss: s.loss!, accuracy: s.accuracy! };
    };
    const laterAfterHead = phase2 ? hp.fineTuneEpochs : 0;
    // Images per inference call of the frozen base inside a training batch (bounds activation memory).
    const chunk = featureBatchSize(pre);

    // ---- Phase 1: the head on the frozen base.
    const headHistory: EpochResult[] = [];
    const headRandom = mulberry32(spec.seed ^ SALT.head);
    const stopper1 = stopperFor(head.variables, null);
    let p1: PhaseOutcome;
    if (!augmentation) {
      const trainY = keep(tensors, tf.tensor1d(trainLabels, 'int32'));
      const valY = valX ? keep(tensors, tf.tensor1d(valLabels, 'int32')) : null;
      p1 = await trainHeadPhase(head, { trainX: trainX!, trainY, valX, valY, numClasses }, {
        epochs: hp.epochs,
        batchSize: hp.batchSize,
        learningRate: hp.learningRate,
        seed: spec.seed,
        random: headRandom,
        signal,
        loss: lossOptions(head),
        stopper: stopper1,
        laterEpochs: laterAfterHead,
        topK: k,
        onBatch,
        onEpoch: (m) => afterEpoch(m, headHistory),
        everyBatches: batchCheckpoints('head', validateHead),
      }).catch(rethrowTraining);
    } else {
      const optimizer = tf.train.adam(hp.learningRate);
      try {
        p1 = await runPhase<Uint8Array>({
          phase: 'head',
          epochs: hp.epochs,
          epochOffset: 0,
          laterEpochs: laterAfterHead,
          nTrain,
          batchSize: hp.batchSize,
          learningRate: hp.learningRate,
          random: headRandom,
          load: (idx) => imageCache!.read(idx.map((i) => trainRows[i]!)),
          step: async (bytes, idx) => {
            // The frozen base in inference mode, outside the gradient tape: only the head trains.
            const feats = tf.tidy(() => poolFeatures(head, runInChunks(fx.run, imageInputs(bytes, headRandom), chunk)));
            const y = tf.tensor1d(idx.map((i) => trainLabels[i]!), 'int32');
            const dropoutSeed = nextSeed(headRandom);
            try {
              return await optimizerStep(optimizer, head.variables, () => headForwardTraining(head, feats, dropoutSeed), y, lossOptions(head));
            } finally {
              tf.dispose([feats, y]);
            }
          },
          validate: validateHead,
          stopper: stopper1,
          signal,
          onBatch,
          onEpoch: (m) => afterEpoch(m, headHistory),
          everyBatches: batchCheckpoints('head', validateHead),
        }).catch(rethrowTraining);
      } finally {
        optimizer.dispose();
      }
    }
    let modelEpoch = p1.restoredEpoch ?? p1.history.at(-1)!.epoch;
    phases.push(phaseRecord('head', hp.epochs, hp.learningRate, p1, modelEpoch, { featureCache: !augmentation }));
    await reportStop('head', p1, es ? es.patience : 0, emit);
    checkCancelled();

    // ---- Phase 2: the chosen top layers unfrozen, end to end on images, the base in inference mode.
    let p2: PhaseOutcome | null = null;
    if (phase2) {
      const baseVars = unfreeze(selection.layers);
      const variables = [...head.variables, ...baseVars];
      await emit({
        level: 'info',
        type: 'phase',
        message: `Phase 2 (fine-tune): ${selection.names.length} base layers unfrozen (${selection.names.join(', ')}), Adam at ${hp.fineTuneLearningRate}, for up to ${hp.fineTuneEpochs} epochs; BatchNormalization layers stay in inference mode.`,
        data: { trainableLayers: selection.names, learningRate: hp.fineTuneLearningRate, epochs: hp.fineTuneEpochs },
      });
      const ftRandom = mulberry32(spec.seed ^ SALT['fine-tune']);
      const carry = es && es.restoreBestWeights && stopper1?.best ? stopper1.best : null;
      const stopper2 = stopperFor(variables, carry);
      const optimizer = tf.train.adam(hp.fineTuneLearningRate);
      const fineTuneHistory: EpochResult[] = [];
      const validate = validateOnImages(full!);
      const forward = splitForward(cut!, selection.layers);
      try {
        p2 = await runPhase<Uint8Array>({
          phase: 'fine-tune',
          epochs: hp.fineTuneEpochs,
          epochOffset: p1.history.length,
          laterEpochs: 0,
          nTrain,
          batchSize: hp.batchSize,
          learningRate: hp.fineTuneLearningRate,
          random: ftRandom,
          load: (idx) => imageCache!.read(idx.map((i) => trainRows[i]!)),
          step: async (bytes, idx) => {
            const x = imageInputs(bytes, ftRandom);
            // Below the lowest unfrozen layer: inference, outside the gradient tape.
            const boundary = forward.frozen(x, chunk);
            const y = tf.tensor1d(idx.map((i) => trainLabels[i]!), 'int32');
            const dropoutSeed = nextSeed(ftRandom);
            try {
              // Inference mode (training: false) in the unfrozen part too: every BatchNormalization
              // normalises with its moving statistics and never updates them (tfjs would otherwise
              // use batch statistics and move the averages, trainable or not).
              return await optimizerStep(
                optimizer,
                variables,
                () => headForwardTraining(head, poolFeatures(head, forward.trainable(boundary)), dropoutSeed),
                y,
                lossOptions(head),
              );
            } finally {
              tf.dispose([x, y, ...boundary]);
            }
          },
          validate,
          stopper: stopper2,
          signal,
          onBatch,
          onEpoch: (m) => afterEpoch(m, fineTuneHistory),
          everyBatches: batchCheckpoints('fine-tune', validate),
        }).catch(rethrowTraining);
      } finally {
        optimizer.dispose();
      }
      modelEpoch = p2.restoredEpoch ?? p2.history.at(-1)!.epoch;
      phases.push(phaseRecord('fine-tune', hp.fineTuneEpochs, hp.fineTuneLearningRate, p2, modelEpoch, { trainableLayers: selection.names }));
      await reportStop('fine-tune', p2, es ? es.patience : 0, emit);
    }
    checkCancelled();

    // ---- The scratch baseline: same architecture, fresh seeded weights, everything trainable.
    let baselineModel: tf.LayersModel | null = null;
    let baselineOutcome: PhaseOutcome | null = null;
    let baselineMs = 0;
    const baselineHistory: EpochResult[] = [];
    if (baselineOn) {
      const t = performance.now();
      const bSeed = (spec.seed ^ SALT.baseline) >>> 0;
      const scratch = await cloneWithFreshWeights(cut!, bSeed);
      models.push(scratch);
      const bHead = buildHead(fx.dim, numClasses, fx.pooling, { ...headOptions, seed: bSeed % 2 ** 30 });
      models.push(bHead.model);
      baselineModel = assembleInferenceModel(scratch, bHead);
      const trainable = [...scratch.trainableWeights.map((w) => w.read() as tf.Variable), ...bHead.variables];
      const everything = [...scratch.weights.map((w) => w.read() as tf.Variable), ...bHead.variables];
      const epochs = hp.epochs + (phase2 ? hp.fineTuneEpochs : 0);
      await emit({
        level: 'info',
        type: 'baseline',
        message: `Training the scratch baseline: the same architecture from random weights, all layers trainable, Adam at ${hp.learningRate}, for up to ${epochs} epochs.`,
        data: { epochs, learningRate: hp.learningRate },
      });
      const bRandom = mulberry32(bSeed);
      const optimizer = tf.train.adam(hp.learningRate);
      try {
        baselineOutcome = await runPhase<Uint8Array>({
          phase: 'baseline',
          epochs,
          epochOffset: 0,
          laterEpochs: 0,
          nTrain,
          batchSize: hp.batchSize,
          learningRate: hp.learningRate,
          random: bRandom,
          load: (idx) => imageCache!.read(idx.map((i) => trainRows[i]!)),
          step: async (bytes, idx) => {
            const x = imageInputs(bytes, bRandom);
            const y = tf.tensor1d(idx.map((i) => trainLabels[i]!), 'int32');
            const dropoutSeed = nextSeed(bRandom);
            try {
              // From scratch, nothing is frozen: BatchNormalization trains (batch statistics).
              return await optimizerStep(
                optimizer,
                trainable,
                () => headForwardTraining(bHead, poolFeatures(bHead, scratch.apply(x, { training: true }) as tf.Tensor), dropoutSeed),
                y,
                lossOptions(bHead),
              );
            } finally {
              tf.dispose([x, y]);
            }
          },
          validate: validateOnImages(baselineModel),
          stopper: stopperFor(everything, null),
          signal,
          onBatch,
          onEpoch: async (m) => {
            baselineHistory.push(m);
            await hooks.onEpoch?.(m);
          },
        }).catch(rethrowTraining);
      } finally {
        optimizer.dispose();
      }
      baselineMs = Math.round(performance.now() - t);
    }
    checkCancelled();

    // ---- Evaluation of the exported model (and the baseline) on validation and test images.
    await emit({ level: 'info', type: 'evaluation', message: `Evaluating on ${nVal} validation${testSet ? ` and ${testSet.items.length} test` : ''} images.` });
    const baseChanged = p2 !== null;
    const onArchive = [...(baseChanged ? [predict] : []), ...(baselineModel ? [baselineModel] : [])];
    const valScores = nVal ? await scoreModelsOnArchive(opts.datasetPath, split.validation, onArchive, pre, numClasses, k, { signal }) : onArchive.map(() => new Scorer(numClasses, k));
    const transferVal = baseChanged ? valScores[0]! : valX ? await scoreHeadOnFeatures(head, valX, valLabels, numClasses, k) : new Scorer(numClasses, k);
    const baselineVal = baselineModel ? valScores.at(-1)! : null;
    const testScores = testSet ? await scoreModelsOnArchive(opts.testDatasetPath!, testSet.items, [predict, ...(baselineModel ? [baselineModel] : [])], pre, numClasses, k, { signal }) : null;
    const validation = transferVal.evaluation(classes);
    const test = testScores ? testScores[0]!.evaluation(classes) : null;

    const epochsRun = p1.history.length + (p2?.history.length ?? 0);
    const result: FineTuneResult = {
      classes,
      trainImages: nTrain,
      validationImages: nVal,
      epochsRun,
      stoppedEarly: p1.stoppedEarly || (p2?.stoppedEarly ?? false),
      bestEpoch: modelEpoch,
      valAccuracy: validation.accuracy,
      valLoss: validation.loss,
      perClass: validation.perClass,
      confusionMatrix: validation.confusionMatrix,
      validation,
      test,
      baseline: baselineOutcome && baselineVal
        ? {
            kind: 'scratch',
            valAccuracy: baselineVal.accuracy,
            valLoss: baselineVal.loss,
            testAccuracy: testScores ? testScores[1]!.accuracy : null,
            epochsRun: baselineOutcome.history.length,
            trainingMs: baselineMs,
            transferGain: validation.accuracy !== null && baselineVal.accuracy !== null ? validation.accuracy - baselineVal.accuracy : null,
          }
        : null,
      backend: backend.name,
      trainingMs: 0,
    };
    if (result.baseline && validation.accuracy !== null && result.baseline.valAccuracy !== null && validation.accuracy <= result.baseline.valAccuracy + TASK_MISMATCH_MARGIN) {
      await emit({
        level: 'warning',
        type: 'taskMismatch',
        message:
          `The transfer model (val accuracy ${validation.accuracy.toFixed(3)}) does no better than the same network trained from scratch (${result.baseline.valAccuracy.toFixed(3)}): ` +
          `what ${descriptor.id} learnt (${descriptor.pretrainedOn}) may not suit this task. Try another base, a lower cutLayer, or more trainableLayers.`,
        data: { transferValAccuracy: validation.accuracy, baselineValAccuracy: result.baseline.valAccuracy },
      });
    }
    checkCancelled();

    result.trainingMs = Math.round(performance.now() - started);
    const training = trainingRecord({
      bestEpoch: modelEpoch,
      baselineHistory: baselineOn ? baselineHistory : null,
      result,
    });
    const exported = await exportModel({ ...modelFiles(training), outDir: opts.outDir });
    await emit({ level: 'info', type: 'export', message: `Exported the model (${exported.bytes} bytes).`, data: { bytes: exported.bytes } });
    return { result, modelZipPath: exported.zipPath, modelZipBytes: exported.bytes, checkpoints: checkpoints.written };
  } finally {
    for (const s of stoppers) s.dispose();
    tf.dispose(tensors);
    releaseWeights(models);
    disposeBase?.();
    await imageCache?.close().catch(() => {});
    await rm(workDir, { recursive: true, force: true }).catch(() => {});
  }
}

/** `run` on slices of at most `chunk` images, concatenated (inference: rows are independent). */
function runInChunks(run: (x: tf.Tensor4D) => tf.Tensor, x: tf.Tensor4D, chunk: number): tf.Tensor {
  const n = x.shape[0];
  if (n <= chunk) return run(x);
  return tf.tidy(() => {
    const parts: tf.Tensor[] = [];
    // Each chunk in its own scope: tfjs keeps a call's activations until its scope ends.
    for (let start = 0; start < n; start += chunk) parts.push(tf.tidy(() => run(x.slice(start, Math.min(chunk, n - start)))));
    return tf.concat(parts);
  });
}

function keep<T extends tf.Tensor>(list: tf.Tensor[], t: T): T {
  list.push(t);
  return t;
}

function assertKernels(missing: { kernel: string; layer: string }[], what: string): void {
  if (!missing.length) return;
  throw new TrainingError(
    'unsupported_on_backend',
    `The ${tf.getBackend()} backend lacks ${missing.map((m) => `${m.kernel} (needed by layer ${m.layer})`).join(', ')}, so ${what} cannot train these layers here. ` +
      'Use trainableLayers "none" (feature extraction), unfreeze fewer layers, or run on a backend that has the kernel (GRAFT_TF_BACKEND=node or cpu).',
  );
}

/** A missing kernel or gradient at run time becomes `unsupported_on_backend`; anything else passes. */
function rethrowTraining(err: unknown): never {
  if (err instanceof TrainingError || err instanceof TrainingCancelled) throw err;
  throw asUnsupportedOnBackend(err) ?? err;
}

function phaseRecord(phase: PhaseName, epochs: number, learningRate: number, out: PhaseOutcome, modelEpoch: number, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    phase,
    epochs,
    epochsRun: out.history.length,
    learningRate,
    stoppedEarly: out.stoppedEarly,
    restoredEpoch: out.restoredEpoch,
    modelEpoch,
    ...extra,
  };
}

async function reportStop(phase: PhaseName, out: PhaseOutcome, patience: number, emit: (e: TrainingEvent) => Promise<void>): Promise<void> {
  if (!out.stoppedEarly && out.restoredEpoch === null) return;
  const last = out.history.at(-1)!.epoch;
  const parts: string[] = [];
  if (out.stoppedEarly) parts.push(`Phase ${phase} stopped early after epoch ${last}: validation loss did not improve for ${patience} epochs.`);
  if (out.restoredEpoch !== null && out.restoredEpoch !== last) parts.push(`Restored the weights of epoch ${out.restoredEpoch} (lowest validation loss).`);
  if (!parts.length) return;
  await emit({ level: 'info', type: 'early_stopping', message: parts.join(' '), data: { phase, stoppedEarly: out.stoppedEarly, lastEpoch: last, restoredEpoch: out.restoredEpoch } });
}

/**
 * When the base is a previous graft fine-tune with exactly these classes (same order) and the same
 * head shape on the same cut, copy its head's weights into the new head.
 */
function continueHead(model: tf.LayersModel, previous: NonNullable<TrainingBase['previous']>, head: Head, classes: readonly string[], cutLayer: string): { continued: boolean; reason: string } {
  if (previous.labels.length !== classes.length || previous.labels.some((l, i) => l !== classes[i])) {
    return { continued: false, reason: `its classes (${previous.labels.join(', ')}) differ from this dataset's` };
  }
  const layer = (name: string) => (previous.headLayerNames.includes(name) ? model.getLayer(name) : null);
  const prevDense = layer('graft_head_dense');
  const prevOutput = layer('graft_head_output');
  if (!prevOutput) return { continued: false, reason: 'its head has no output layer' };
  const first = model.layers.find((l) => l.name.startsWith(HEAD_LAYER_PREFIX));
  const below = first?.inboundNodes[0]?.inboundLayers[0]?.name;
  if (below !== cutLayer) return { continued: false, reason: `its head starts above layer ${below}, not the cut layer ${cutLayer}` };
  if (!!prevDense !== !!head.dense) return { continued: false, reason: 'its head has a different hidden layer (headUnits)' };
  const pairs: [tf.layers.Layer, tf.layers.Layer][] = [[prevOutput, head.output]];
  if (prevDense && head.dense) pairs.unshift([prevDense, head.dense]);
  for (const [from, to] of pairs) {
    const a = from.getWeights();
    const b = to.getWeights();
    if (a.length !== b.length || a.some((w, i) => w.shape.join() !== b[i]!.shape.join())) {
      return { continued: false, reason: `its layer ${from.name} has other shapes (headUnits)` };
    }
  }
  for (const [from, to] of pairs) to.setWeights(from.getWeights());
  return { continued: true, reason: '' };
}

/** A test dataset: its classes must all be training classes (TrainingError `class_mismatch`). */
async function loadTestSet(path: string, classes: readonly string[]): Promise<{ items: LabelledImage[]; sha256: string }> {
  const inspection = await inspectDataset(path);
  const unknown = inspection.classes.map((c) => c.name).filter((c) => !classes.includes(c));
  if (unknown.length) {
    throw new TrainingError(
      'class_mismatch',
      `The test dataset has classes the training dataset does not: ${unknown.join(', ')} (training classes: ${classes.join(', ')}).`,
    );
  }
  const items = uniqueByPath(inspection.images)
    .map((i) => ({ path: i.path, label: classes.indexOf(i.className) }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { items, sha256: await sha256File(path) };
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

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

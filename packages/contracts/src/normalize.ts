import type { CreateFineTuneBody, FineTuneSpec } from './fine-tunes.ts';
import { BUNDLED_ENCODER_MAX_BYTES_DEFAULT, HYPERPARAMETER_DEFAULTS, TOP_K_DEFAULT } from './fine-tunes.ts';
import type { Augmentation } from './training-options.ts';

const EARLY_STOPPING_DEFAULTS = { patience: 3, minDelta: 0, restoreBestWeights: true } as const;
const AUGMENTATION_DEFAULTS: Augmentation = { flip: 'none', rotation: 0, zoom: 0, brightness: 0, contrast: 0 };

/**
 * A request with every default made explicit. Stored with the job and sent to the worker, so what
 * a job trained with never depends on the defaults of the code that later reads it.
 */
export function normalizeFineTune(body: CreateFineTuneBody, base: { id: string; featureLayer: string; format?: string }, seed: number): FineTuneSpec {
  const hp = body.hyperparameters ?? {};
  const trainableLayers = body.trainableLayers ?? 'none';
  const learningRate = hp.learningRate ?? HYPERPARAMETER_DEFAULTS.learningRate;
  const augmentation = body.augmentation ? { ...AUGMENTATION_DEFAULTS, ...body.augmentation } : null;
  const augments = augmentation && (augmentation.flip !== 'none' || augmentation.rotation > 0 || augmentation.zoom > 0 || augmentation.brightness > 0 || augmentation.contrast > 0);
  return {
    baseModel: base.id,
    dataset: body.dataset,
    testDataset: body.testDataset ?? null,
    validationSplit: body.validationSplit ?? 0.2,
    hyperparameters: {
      epochs: hp.epochs ?? HYPERPARAMETER_DEFAULTS.epochs,
      batchSize: hp.batchSize ?? HYPERPARAMETER_DEFAULTS.batchSize,
      learningRate,
      fineTuneEpochs: hp.fineTuneEpochs ?? (trainableLayers === 'none' ? 0 : HYPERPARAMETER_DEFAULTS.fineTuneEpochs),
      fineTuneLearningRate: hp.fineTuneLearningRate ?? learningRate * HYPERPARAMETER_DEFAULTS.fineTuneLearningRateFactor,
      dropout: hp.dropout ?? HYPERPARAMETER_DEFAULTS.dropout,
      headUnits: hp.headUnits ?? HYPERPARAMETER_DEFAULTS.headUnits,
      labelSmoothing: hp.labelSmoothing ?? HYPERPARAMETER_DEFAULTS.labelSmoothing,
      l2: hp.l2 ?? HYPERPARAMETER_DEFAULTS.l2,
    },
    cutLayer: body.cutLayer ?? base.featureLayer,
    trainableLayers,
    earlyStopping: body.earlyStopping === false ? false : { ...EARLY_STOPPING_DEFAULTS, ...body.earlyStopping },
    classWeights: body.classWeights ?? 'none',
    augmentation: augments ? augmentation : null,
    baseline: body.baseline ?? 'none',
    checkpointEvery: body.checkpointEvery ?? 'epoch',
    topK: body.topK ?? TOP_K_DEFAULT,
    seed,
    metadata: body.metadata ?? {},
    // Only an ONNX encoder is a file of its own to bundle: other specs stay as they were (pinned training.json).
    ...(base.format === 'onnx' || body.maxBundledEncoderBytes !== undefined
      ? { maxBundledEncoderBytes: body.maxBundledEncoderBytes ?? BUNDLED_ENCODER_MAX_BYTES_DEFAULT }
      : {}),
  };
}

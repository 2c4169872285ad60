/** @graft/engine: fine-tuning on TensorFlow.js. Importing this module loads TensorFlow.js. */
export { initBackend, BACKEND_CHOICES, type BackendChoice, type BackendInfo } from './backend.ts';
export { listBaseModels, getBaseModel, getBaseModelSource, type BaseModelSource } from './catalog.ts';
export { inspectArchive, readArchiveImages, type ArchiveImage, type ArchiveInspection } from './dataset-archive.ts';
export { readImageHeader, type ImageHeader } from './image-header.ts';
export { decodeImage, imageToTensor, preprocessImage, DECODE_LIMITS, type DecodeLimits, type RgbImage } from './preprocess.ts';
export { loadBaseModel, cutAtFeatureLayer, type LoadedBase } from './load-base.ts';
export { stratifiedSplit, type DatasetSplit, type LabelledImage } from './split.ts';
export { fineTune, type FineTuneOptions, type FineTuneOutcome, type TrainingHooks, type TrainingEvent } from './fine-tune.ts';
export { TrainingCancelled, TrainingError } from './errors.ts';
export { assembleInferenceModel, exportModel, loadModelZip, MODEL_FILES, type LoadedModelZip } from './export.ts';
export { directoryLoader, directorySaver, jsonLoader } from './model-io.ts';
export { confusionMatrix, perClassMetrics, type ClassMetrics } from './metrics.ts';

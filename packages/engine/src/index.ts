/**
 * @graft/engine: transfer learning on TensorFlow.js. Importing this module loads TensorFlow.js
 * (`@graft/engine/catalog`, `/dataset-archive` and `/resolve-base` do not).
 *
 * - `fineTune` runs a job (pipeline/); `loadPredictor` loads any model zip it exports and predicts
 *   from raw inputs (export/).
 * - Bases: the catalog, opening and checking bases (bases/). Tasks: what differs between image and
 *   text behind one interface (tasks/task.ts), the image task (tasks/image/).
 * - `initBackend()` picks the TensorFlow.js backend; call it before anything that runs a model.
 */
export { BACKEND_CHOICES, initBackend, registerWasmGradientKernels, type BackendChoice, type BackendInfo } from './backend/index.ts';
export { frozenRuntimeSetting, onnxRuntimeLoads, FROZEN_RUNTIME_CHOICES, type FrozenRuntime, type FrozenRuntimeSetting } from './onnx/frozen-runtime.ts';
export { fineTune, type FineTuneOptions, type FineTuneOutcome, type TrainingEvent, type TrainingHooks } from './pipeline/index.ts';
export { buildModelCard, loadPredictor, MODEL_CARD_FILES, renderModelCard, type CheckpointInfo, type LoadPredictorOptions, type ModelCard, type Prediction, type Predictor } from './export/index.ts';
export { TrainingCancelled, TrainingError } from './errors.ts';
export { readResumeState, decodeResumeState, encodeResumeState, type ResumeState } from './train/resume-state.ts';
export {
  defaultModelCacheDir,
  fetchHostedModel,
  getBaseModel,
  inspectUserBase,
  listBaseModels,
  openBase,
  resolveCatalogBase,
  unpackModelZip,
  type BaseInspection,
  type BaseModelSource,
  type ClaimedBase,
  type OpenBaseOptions,
  type OpenedBase,
  type ResolvedBase,
} from './bases/index.ts';
export { loadTask, type RawInput, type Task, type TaskDataset, type TaskEncoder, type TaskName } from './tasks/index.ts';
export { decodeImage, inspectArchive, preprocessImage, readArchiveImages, readImageHeader, type ArchiveImage, type ArchiveInspection } from './tasks/image/index.ts';

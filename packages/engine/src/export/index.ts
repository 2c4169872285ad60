/**
 * Export, whatever the task: the exported model assembled from the encoder and the head, the model
 * bundle (zip) every job and checkpoint writes, checkpoints, and `loadPredictor`, which loads any
 * bundle back and predicts from raw inputs.
 */
export { assembleHeadModel, assembleInferenceModel } from './assemble.ts';
export { exportModel, writeModelZip, type ModelFiles } from './bundle.ts';
export { checkpointFileName, CheckpointWriter, type CheckpointInfo, type FrozenHead } from './checkpoints.ts';
export { assembleHeadCheckpoint, readHeadCheckpointManifest, HEAD_CHECKPOINT_KIND, type HeadCheckpointManifest } from './head-checkpoint.ts';
export { buildModelCard, MODEL_CARD_FILES, modelCardFiles, renderModelCard, wilson95, type ModelCard, type ModelCardInput } from './model-card.ts';
export { loadPredictor, type LoadPredictorOptions, type Prediction, type Predictor } from './predictor.ts';

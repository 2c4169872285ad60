/**
 * Training, whatever the task: the new head and its loss, class weights, the one phase runner with
 * its callbacks (history, overfitting warning, checkpoints, early stopping, hooks), freezing and
 * unfreezing a tfjs layers encoder (cut, trainable layers, gradient kernels, the split forward pass
 * of phase 2), and fresh weights for the scratch baseline.
 */
export { buildHead, featureLayout, headForwardTraining, poolFeatures, trainingLoss, type Head, type HeadOptions, type LossOptions, type Pooling } from './head.ts';
export { resolveClassWeights } from './class-weights.ts';
export { optimizerStep, runPhase, type BatchProgress, type EpochResult, type PhaseLoop, type PhaseName, type PhaseOutcome } from './phase-runner.ts';
export { CallbackList, Checkpoints, EarlyStopping, History, isOverfitting, OverfittingWarning, ProgressHooks, TrainingCallback, type CheckpointRequest, type PhaseParams, type Validation } from './callbacks.ts';
export { EarlyStopper, WeightSnapshot, type BestSoFar } from './early-stopping.ts';
export { assertGradientKernels, asUnsupportedOnBackend, cutBase, cuttableLayers, missingGradientKernels, selectTrainableLayers, splitForward, unfreeze, type SplitForward, type TrainableSelection } from './freezing.ts';
export { cloneWithFreshWeights } from './fresh-weights.ts';
export { batchSizeOf, runInChunks, sliceBatch, type ModelInput } from './model-input.ts';
export { releaseWeights } from './weights.ts';

/** The stages of a fine-tune, in the order `fineTune` runs them; each one testable alone. */
export { prepareData, IMBALANCE_RATIO, type PreparedData } from './prepare-data.ts';
export { assertBackendCanTrain, openEncoder, type OpenedEncoder } from './open-base.ts';
export { isAugmenting, planPhases, type PhasePlan, type PlanInput } from './plan-phases.ts';
export { prepareInputs, type PreparedInputs } from './prepare-inputs.ts';
export { buildModel, continueHead, type TransferModel } from './build-model.ts';
export { trainHeadPhase, type PhaseResult } from './head-phase.ts';
export { trainFineTunePhase } from './fine-tune-phase.ts';
export { trainBaseline, type BaselineResult } from './baseline.ts';
export { evaluate, type Evaluation } from './evaluate.ts';
export { summarize, TASK_MISMATCH_MARGIN } from './summarize.ts';
export { exportBundle } from './export.ts';

/**
 * The pipeline: `fineTune`, a short recipe of named stages (stages/) over one run context
 * (context.ts: events, cancellation, what to release, the training record), the three phases
 * sharing one phase runner and the job's callbacks (training.ts).
 */
export { fineTune } from './fine-tune.ts';
export type { FineTuneOptions, FineTuneOutcome, TrainingEvent, TrainingHooks } from './options.ts';
export { RunContext } from './context.ts';
export { TrainingRecord, type PhaseRecord } from './record.ts';
export * from './stages/index.ts';

/**
 * The job's `stage_timings` event: where its wall time went, stage by stage, so a user can see
 * whether a job is bound by decoding, the frozen base's feature pass, training or export.
 */
import type { RunContext } from './context.ts';
import type { TrainingEvent } from './options.ts';

const LABELS: Record<string, string> = {
  prepareData: 'data',
  openBase: 'opening the base',
  prepareInputs: 'inputs',
  buildModel: 'model',
  headPhase: 'head phase',
  fineTunePhase: 'fine-tune phase',
  checkpoints: 'checkpoints',
  baseline: 'baseline',
  evaluate: 'evaluation',
  summarize: 'summary',
  export: 'export',
};

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function stageTimings(ctx: RunContext): TrainingEvent {
  const totalMs = Math.round(performance.now() - ctx.started);
  const stages = { ...ctx.stageMs };
  const pass = ctx.inputPassMs;
  const parts = Object.entries(stages).map(([k, ms]) =>
    k === 'prepareInputs' && pass ? `${LABELS[k]} ${secs(ms)} (decoding ${secs(pass.decode)}, frozen base ${secs(pass.encoder)})` : `${LABELS[k] ?? k} ${secs(ms)}`,
  );
  return {
    level: 'info',
    type: 'stage_timings',
    message: `Time by stage: ${parts.join(', ')}; ${secs(totalMs)} in all.`,
    data: { totalMs, stages, inputPass: pass ? { decodeMs: pass.decode, encoderMs: pass.encoder } : null },
  };
}

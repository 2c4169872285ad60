/**
 * Stage 10, summarize: the job's result (the contracts' `FineTuneResult`: classes, counts, epochs,
 * the exported model's metrics, the baseline's and the transfer gain) and the `taskMismatch`
 * warning when the pretrained weights did not help.
 */
import type { FineTuneResult } from '@graft/contracts';
import type { RunContext } from '../context.ts';
import type { BaselineResult } from './baseline.ts';
import type { Evaluation } from './evaluate.ts';
import type { PhaseResult } from './head-phase.ts';
import type { PreparedData } from './prepare-data.ts';

/** The transfer model counts as no better than the scratch baseline within this much val accuracy. */
export const TASK_MISMATCH_MARGIN = 0.01;

export async function summarize(ctx: RunContext, data: PreparedData, phases: { head: PhaseResult; fineTune: PhaseResult | null }, scores: Evaluation, baseline: BaselineResult | null): Promise<FineTuneResult> {
  const { head, fineTune } = phases;
  const validation = scores.validation.evaluation(data.classes);
  const test = scores.test ? scores.test.evaluation(data.classes) : null;
  const baselineVal = scores.baseline ? scores.baseline.validation : null;
  const result: FineTuneResult = {
    classes: data.classes,
    trainImages: data.split.train.length,
    validationImages: data.split.validation.length,
    epochsRun: head.outcome.history.length + (fineTune?.outcome.history.length ?? 0),
    stoppedEarly: head.outcome.stoppedEarly || (fineTune?.outcome.stoppedEarly ?? false),
    bestEpoch: (fineTune ?? head).modelEpoch,
    valAccuracy: validation.accuracy,
    valLoss: validation.loss,
    perClass: validation.perClass,
    confusionMatrix: validation.confusionMatrix,
    validation,
    test,
    baseline: baseline && baselineVal
      ? {
          kind: 'scratch',
          valAccuracy: baselineVal.accuracy,
          valLoss: baselineVal.loss,
          testAccuracy: scores.baseline?.test ? scores.baseline.test.accuracy : null,
          epochsRun: baseline.history.length,
          trainingMs: baseline.trainingMs,
          transferGain: validation.accuracy !== null && baselineVal.accuracy !== null ? validation.accuracy - baselineVal.accuracy : null,
        }
      : null,
    backend: ctx.backend.name,
    trainingMs: 0,
  };
  if (result.baseline && validation.accuracy !== null && result.baseline.valAccuracy !== null && validation.accuracy <= result.baseline.valAccuracy + TASK_MISMATCH_MARGIN) {
    const descriptor = ctx.base.descriptor;
    await ctx.emit({
      level: 'warning',
      type: 'taskMismatch',
      message:
        `The transfer model (val accuracy ${validation.accuracy.toFixed(3)}) does no better than the same network trained from scratch (${result.baseline.valAccuracy.toFixed(3)}): ` +
        `what ${descriptor.id} learnt (${descriptor.pretrainedOn}) may not suit this task. Try another base, a lower cutLayer, or more trainableLayers.`,
      data: { transferValAccuracy: validation.accuracy, baselineValAccuracy: result.baseline.valAccuracy },
    });
  }
  ctx.checkCancelled();
  result.trainingMs = Math.round(performance.now() - ctx.started);
  return result;
}

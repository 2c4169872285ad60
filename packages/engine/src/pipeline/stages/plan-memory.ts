/**
 * Stage 3b, the memory plan (after the phases are planned, before any input is prepared or any
 * epoch runs): each planned phase's peak memory estimated from the model and the batch size
 * (train/memory-plan.ts) against the backend's budget. A training phase whose batch does not fit
 * trains as micro-batches with accumulated gradients (a `micro_batching` event gives the figures);
 * a phase where one example does not fit fails the job now with `insufficient_memory`.
 */
import type { TrainableSelection } from '../../train/freezing.ts';
import {
  estimateBaseline,
  estimateFineTune,
  estimateHead,
  estimateInference,
  fitPhase,
  memoryBudget,
  mib,
  peakBytes,
  type MemoryBudget,
  type PhaseEstimate,
  type PhaseFit,
} from '../../train/memory-plan.ts';
import type { PhaseName } from '../../train/phase-runner.ts';
import type { TaskEncoder } from '../../tasks/task.ts';
import type { RunContext } from '../context.ts';
import type { PhasePlan } from './plan-phases.ts';

export interface MemoryPlan {
  budget: MemoryBudget;
  /** Every phase estimated, in run order, with the micro-batch that fits. */
  phases: PhaseFit[];
  /** Examples per optimizer micro-step of a training phase (its batch size when it fits whole). */
  microBatch(phase: PhaseName): number;
}

export async function planMemory(ctx: RunContext, encoder: TaskEncoder, selection: TrainableSelection, plan: PhasePlan, numClasses: number): Promise<MemoryPlan> {
  const batchSize = ctx.spec.hyperparameters.batchSize;
  const units = ctx.spec.hyperparameters.headUnits;
  const headParams = units > 0 ? encoder.dim * units + units + units * numClasses + numClasses : encoder.dim * numClasses + numClasses;
  const cut = encoder.cut;
  const chunk = encoder.inferenceBatchSize;
  const estimates: PhaseEstimate[] = [];
  const add = (e: PhaseEstimate | null) => e && estimates.push(e);
  if (cut && plan.features) add(estimateInference('features', cut, chunk));
  const encoderPass = !plan.head.onFeatures && cut ? estimateInference('features', cut, chunk) : null;
  add(estimateHead(encoder.dim, headParams, batchSize, encoderPass ? { perExampleBytes: encoderPass.perExampleBytes, chunk } : null));
  if (cut && plan.fineTune) add(estimateFineTune(cut, selection.layers, headParams, batchSize));
  if (cut && plan.baseline) add(estimateBaseline(cut, headParams, batchSize));
  if (cut && (plan.fineTune || plan.baseline || plan.needsInputs)) add(estimateInference('evaluation', cut, chunk));

  const budget = memoryBudget(ctx.backend.name);
  const phases = estimates.map((e) => fitPhase(e, budget)); // throws insufficient_memory
  const hasBatchNorm = !!cut?.layers.some((l) => l.getClassName() === 'BatchNormalization');
  for (const p of phases) {
    if (!p.estimate.trains || p.microBatch >= p.estimate.batchSize) continue;
    const e = p.estimate;
    const steps = Math.ceil(e.batchSize / p.microBatch);
    await ctx.emit({
      level: 'info',
      type: 'micro_batching',
      message:
        `The ${e.phase} phase's batch of ${e.batchSize} needs an estimated ${mib(peakBytes(e))}, more than the ${mib(budget.bytes)} available (${budget.source}): ` +
        `it trains in micro-batches of ${p.microBatch} (estimated ${mib(peakBytes(e, p.microBatch))}), ${steps} per optimizer step, gradients accumulated; ` +
        `the step equals the full batch's up to float error${e.phase === 'baseline' && hasBatchNorm ? ', except that BatchNormalization uses each micro-batch\'s statistics (and moves its averages once per micro-batch)' : ''}.`,
      data: {
        phase: e.phase,
        batchSize: e.batchSize,
        microBatch: p.microBatch,
        microBatchesPerStep: steps,
        estimatedPeakBytes: Math.round(peakBytes(e)),
        estimatedMicroBatchPeakBytes: Math.round(peakBytes(e, p.microBatch)),
        budgetBytes: Math.round(budget.bytes),
      },
    });
  }
  const byPhase = new Map(phases.filter((p) => p.estimate.trains).map((p) => [p.estimate.phase, p.microBatch]));
  return { budget, phases, microBatch: (phase) => byPhase.get(phase) ?? batchSize };
}

/**
 * One fine-tune job, the Keras transfer-learning recipe as a list of named stages sharing one run
 * context: prepare the data → open the base as the task's frozen encoder → plan the phases →
 * prepare inputs (features, cached inputs) → build the transfer model → the head phase → the
 * fine-tune phase (top layers unfrozen, BatchNorm in inference mode) → the scratch baseline →
 * evaluate the exported model → summarize → export. Early stopping, class weights, label
 * smoothing, L2, seeded augmentation and checkpoints ride on the phases as callbacks.
 * Same seed + data + backend → same split, weights and metrics.
 */
import { initBackend } from '../backend/backend.ts';
import { TrainingCancelled } from '../errors.ts';
import { frozenRuntimeSetting } from '../onnx/frozen-runtime.ts';
import { loadTask } from '../tasks/index.ts';
import { RunContext } from './context.ts';
import type { FineTuneOptions, FineTuneOutcome } from './options.ts';
import { trainBaseline } from './stages/baseline.ts';
import { buildModel } from './stages/build-model.ts';
import { evaluate } from './stages/evaluate.ts';
import { exportBundle } from './stages/export.ts';
import { trainFineTunePhase } from './stages/fine-tune-phase.ts';
import { trainHeadPhase } from './stages/head-phase.ts';
import { assertBackendCanTrain, openEncoder } from './stages/open-base.ts';
import { planMemory } from './stages/plan-memory.ts';
import { planPhases } from './stages/plan-phases.ts';
import { prepareData } from './stages/prepare-data.ts';
import { prepareInputs } from './stages/prepare-inputs.ts';
import { summarize } from './stages/summarize.ts';
import { acceptResume } from './resume.ts';
import { setUpTraining } from './training.ts';
import { stageTimings } from './stage-timings.ts';

export async function fineTune(opts: FineTuneOptions): Promise<FineTuneOutcome> {
  if (opts.signal?.aborted) throw new TrainingCancelled();
  const task = await loadTask(opts.base.descriptor.task);
  const backend = await initBackend();
  const ctx = new RunContext(opts, task, backend);
  const frozen = frozenRuntimeSetting(backend.name);
  await ctx.emit({
    level: 'info',
    type: 'backend',
    message: `Training on the TensorFlow.js ${backend.name} backend; frozen layers bases: ${frozen.runtime === 'onnx' ? `ONNX Runtime (${frozen.threads} threads) once converted and checked` : `TensorFlow.js (${frozen.reason})`}.`,
    data: { ...backend, frozenRuntime: frozen.runtime, frozenRuntimeRequested: frozen.requested },
  });
  try {
    const data = await ctx.timed('prepareData', () => prepareData(ctx, opts));
    // A resumed job checks its checkpoint against the split it has just recomputed.
    const resumeState = await acceptResume(ctx, opts.resume);
    const { encoder, selection } = await ctx.timed('openBase', () => openEncoder(ctx));
    const plan = planPhases({
      spec: ctx.spec,
      encoder: { trainable: encoder.cut !== null, frozenOnly: encoder.frozenOnly, selected: selection },
      task,
      validationExamples: data.split.validation.length,
    });
    for (const notice of plan.notices) await ctx.emit(notice);
    assertBackendCanTrain(encoder, selection, plan);
    ctx.record.planned(plan);
    const memory = await planMemory(ctx, encoder, selection, plan, data.classes.length);
    const inputs = await ctx.timed('prepareInputs', () => prepareInputs(ctx, encoder, data, plan, opts.datasetPath));
    const model = await ctx.timed('buildModel', () => buildModel(ctx, encoder, data));
    for (const notice of plan.trainingNotices) await ctx.emit(notice);

    const training = setUpTraining(ctx, plan, encoder, data, inputs, model, resumeState, memory);
    const head = await ctx.timed('headPhase', () => trainHeadPhase(training));
    const fineTune = await ctx.timed('fineTunePhase', () => trainFineTunePhase(training, selection, head));
    await ctx.timed('checkpoints', () => training.checkpoints.flush());
    ctx.checkCancelled();
    const baseline = await ctx.timed('baseline', () => trainBaseline(training));
    ctx.checkCancelled();
    const scores = await ctx.timed('evaluate', () => evaluate(training, opts.datasetPath, fineTune !== null, baseline, fineTune?.predictWithOnnx ?? null));
    const result = await ctx.timed('summarize', () => summarize(ctx, data, { head, fineTune }, scores, baseline));
    const outcome = await ctx.timed('export', () =>
      exportBundle(ctx, model, { result, bestEpoch: (fineTune ?? head).modelEpoch, baselineHistory: baseline?.history ?? null }, training.checkpoints.written),
    );
    await ctx.emit(stageTimings(ctx));
    return { ...outcome, checkpointTimings: training.checkpoints.timings };
  } finally {
    await ctx.dispose();
  }
}

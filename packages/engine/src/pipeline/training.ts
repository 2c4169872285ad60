/**
 * What the three training phases share: the job's callbacks (history, progress hooks, the
 * overfitting warning, checkpoints) built once, early stopping per phase, each phase's own PRNG
 * stream, validation functions, and the `early_stopping` notice of a phase that ended.
 */
import type * as tf from '@tensorflow/tfjs';
import { HEAD_LAYER_PREFIX } from '../bases/open-base.ts';
import { CheckpointWriter, type FrozenHead } from '../export/checkpoints.ts';
import { scoreHeadOnFeatures, scoreOnInputCache, type Predict } from '../evaluate/score.ts';
import type { TaskEncoder } from '../tasks/task.ts';
import { Checkpoints, EarlyStopping, History, OverfittingWarning, ProgressHooks, type TrainingCallback, type Validation } from '../train/callbacks.ts';
import type { BestSoFar } from '../train/early-stopping.ts';
import type { PhaseName, PhaseOutcome } from '../train/phase-runner.ts';
import { modelChecksum } from '../util/model-checksum.ts';
import { mulberry32, type SeededRandom } from '../util/random.ts';
import type { ResumeState } from '../train/resume-state.ts';
import type { RunContext } from './context.ts';
import { ResumeTracker } from './resume.ts';
import type { TransferModel } from './stages/build-model.ts';
import type { MemoryPlan } from './stages/plan-memory.ts';
import type { PhasePlan } from './stages/plan-phases.ts';
import type { PreparedData } from './stages/prepare-data.ts';
import type { PreparedInputs } from './stages/prepare-inputs.ts';

/** Each phase's PRNG stream, apart from the split's. */
const SALT: Record<PhaseName, number> = { head: 0x5bd1e995, 'fine-tune': 0x27d4eb2f, baseline: 0x165667b1 };

export function phaseSeed(seed: number, phase: PhaseName): number {
  return (seed ^ SALT[phase]) >>> 0;
}

export function phaseRandom(seed: number, phase: PhaseName): SeededRandom {
  return mulberry32(phaseSeed(seed, phase));
}

/** Everything a phase needs besides its own step. */
export interface Training {
  ctx: RunContext;
  plan: PhasePlan;
  encoder: TaskEncoder;
  data: PreparedData;
  inputs: PreparedInputs;
  model: TransferModel;
  /** Callbacks of the head and fine-tune phases in call order: the job's, the phase's early stopping, checkpoints last (they save the state the others leave). */
  phaseCallbacks(earlyStopping: EarlyStopping | null): TrainingCallback[];
  /** Saves the running phase's state with each checkpoint; restores it when the job resumes. */
  resume: ResumeTracker;
  /** The progress hooks alone (the baseline's phase reports progress but is not history or checkpointed). */
  progress: ProgressHooks;
  checkpoints: CheckpointWriter;
  /** Each phase's micro-batch (the batch size unless it does not fit in memory); null: never planned (whole batches). */
  memory: MemoryPlan | null;
  /** Early stopping on `variables` (null when the plan has none); released with the job. */
  earlyStopping(variables: readonly tf.Variable[], carry: BestSoFar | null): EarlyStopping | null;
  /** The head on the validation features. */
  validateHead(): Promise<Validation | null>;
  /** A whole model on the validation examples of the input cache. */
  validateOnInputs(predict: Predict): () => Promise<Validation | null>;
}

export function setUpTraining(ctx: RunContext, plan: PhasePlan, encoder: TaskEncoder, data: PreparedData, inputs: PreparedInputs, model: TransferModel, resumeState: ResumeState | null = null, memory: MemoryPlan | null = null): Training {
  const numClasses = data.classes.length;
  const k = data.topK;
  const checkpoints = CheckpointWriter.forOutDir(
    ctx.outDir,
    (c) => model.files(ctx.record.toJSON({ checkpoint: c }), 'checkpoint'),
    ctx.hooks.onCheckpoint?.bind(ctx.hooks),
    ctx.headCheckpoints ? frozenHead(ctx, encoder, model) : null,
  );
  // A failed or cancelled job still waits for the head checkpoints being written (their files are in outDir); then their thread ends.
  ctx.onDispose(() => checkpoints.close().catch(() => {}));
  const progress = new ProgressHooks({ onBatch: ctx.hooks.onBatch?.bind(ctx.hooks), onEpoch: ctx.hooks.onEpoch?.bind(ctx.hooks) });
  const overfitting = new OverfittingWarning((m) =>
    ctx.emit({
      level: 'warning',
      type: 'overfitting',
      message: `Validation loss has risen for 3 epochs while training loss fell (${m.phase} epoch ${m.epoch}): the model is overfitting; early stopping, augmentation, more dropout or more data would help.`,
      data: { epoch: m.epoch, phase: m.phase },
    }),
  );
  const checkpointing: Checkpoints = new Checkpoints(
    plan.checkpointEvery,
    async (c, position) => checkpoints.write(c, () => resume.capture(position, c.valLoss)),
    ctx.checkpointMinIntervalMs,
    ctx.handBack,
    (phase) => checkpoints.prepare(phase),
  );
  const resume = new ResumeTracker(ctx, { checkpoints: checkpointing, overfitting, writer: checkpoints }, resumeState);
  const jobCallbacks = [new History(ctx.record.history), progress, overfitting];
  return {
    ctx,
    plan,
    encoder,
    data,
    inputs,
    model,
    phaseCallbacks: (earlyStopping) => [...jobCallbacks, ...(earlyStopping ? [earlyStopping] : []), checkpointing],
    resume,
    progress,
    checkpoints,
    memory,
    earlyStopping: (variables, carry) => {
      if (!plan.earlyStopping) return null;
      const es = new EarlyStopping(plan.earlyStopping, variables, carry);
      ctx.onDispose(() => es.dispose());
      return es;
    },
    validateHead: async () => {
      if (!inputs.valX) return null;
      const s = await scoreHeadOnFeatures(model.head, inputs.valX, inputs.labels.validation, numClasses, k);
      return { loss: s.loss!, accuracy: s.accuracy! };
    },
    validateOnInputs: (predict) => async () => {
      if (!inputs.rows.validation.length) return null;
      const s = await scoreOnInputCache(predict, inputs.cache!, inputs.rows.validation, inputs.labels.validation, numClasses, k, { batchSize: encoder.inferenceBatchSize, signal: ctx.signal });
      return { loss: s.loss!, accuracy: s.accuracy! };
    },
  };
}

/**
 * Head checkpoints while the base is frozen: a tfjs layers encoder + head as one model (`full`),
 * in the head phase (phase 2 changes the base: full checkpoints from then on). Other encoders'
 * bundles hold the head alone already.
 */
function frozenHead(ctx: RunContext, encoder: TaskEncoder, model: TransferModel): FrozenHead | null {
  const full = model.full;
  const cut = encoder.cut;
  if (!full || !cut) return null;
  let base: { id: string; checksum: string } | null = null;
  return {
    frozen: (phase) => phase === 'head',
    isHead: (name) => name.startsWith(HEAD_LAYER_PREFIX),
    read: (names) => {
      const byName = new Map(full.weights.map((w) => [w.originalName, w]));
      return names.map((n) => {
        const w = byName.get(n);
        if (!w) throw new Error(`head checkpoint: the model has no weight ${n}`);
        return w.read().dataSync() as Float32Array;
      });
    },
    base: () => (base ??= { id: ctx.base.descriptor.id, checksum: modelChecksum(cut) }),
  };
}

/** The `early_stopping` event of a phase that stopped early or had its best weights put back. */
export async function reportStop(ctx: RunContext, phase: PhaseName, out: PhaseOutcome & { restoredEpoch: number | null }): Promise<void> {
  if (!out.stoppedEarly && out.restoredEpoch === null) return;
  const last = out.history.at(-1)!.epoch;
  const parts: string[] = [];
  const patience = ctx.spec.earlyStopping ? ctx.spec.earlyStopping.patience : 0;
  if (out.stoppedEarly) parts.push(`Phase ${phase} stopped early after epoch ${last}: validation loss did not improve for ${patience} epochs.`);
  if (out.restoredEpoch !== null && out.restoredEpoch !== last) parts.push(`Restored the weights of epoch ${out.restoredEpoch} (lowest validation loss).`);
  if (!parts.length) return;
  await ctx.emit({ level: 'info', type: 'early_stopping', message: parts.join(' '), data: { phase, stoppedEarly: out.stoppedEarly, lastEpoch: last, restoredEpoch: out.restoredEpoch } });
}

/** Examples per optimizer micro-step of a phase: the memory plan's, or the whole batch when nothing was planned. */
export function microBatchOf(t: Training, phase: PhaseName): number {
  return t.memory?.microBatch(phase) ?? Infinity;
}

/**
 * Resuming a job from a checkpoint. Every checkpoint of the head and fine-tune phases carries a
 * resume state (train/resume-state.ts) captured here at the moment it is written; a job given one
 * (`FineTuneOptions.resume`) prepares its data and model as usual, checks that the seeded split is
 * the same, skips a phase the state says finished, and restores the running phase's weights,
 * optimizer, PRNG, early stopping and position, so it continues with the next batch or epoch as if
 * it had never stopped. The scratch baseline is never checkpointed: it runs again in full.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import type { CheckpointWriter } from '../export/checkpoints.ts';
import type { Checkpoints, EarlyStopping, OverfittingWarning } from '../train/callbacks.ts';
import type { PhasePosition } from '../train/phase-runner.ts';
import { RESUME_STATE_VERSION, type DonePhase, type OptimizerState, type ResumeState, type SavedTensor } from '../train/resume-state.ts';
import type { SeededRandom } from '../util/random.ts';
import type { RunContext } from './context.ts';
import type { PhaseRecord } from './record.ts';

export interface Resume {
  state: ResumeState;
  /** The checkpoint it came with (named in the `resumed` event). */
  checkpointId: string | null;
}

/** What a running phase lets a checkpoint save (and a resumed job restore). */
export interface LivePhase {
  phase: 'head' | 'fine-tune';
  variables: readonly tf.Variable[];
  optimizer: tf.Optimizer;
  random: SeededRandom;
  earlyStopping: EarlyStopping | null;
}

function identityOf(ctx: RunContext): ResumeState['identity'] {
  return {
    seed: ctx.spec.seed,
    datasetSha256: String(ctx.record.dataset.sha256 ?? ''),
    splitSha256: createHash('sha256').update(JSON.stringify(ctx.record.split)).digest('hex'),
    classWeights: ctx.record.classWeights,
  };
}

/** Once the data is prepared: the resume state if it is of this very data and split; else a warning and null (the job starts over). */
export async function acceptResume(ctx: RunContext, resume: Resume | undefined): Promise<ResumeState | null> {
  if (!resume) return null;
  const { state } = resume;
  const now = identityOf(ctx);
  if (JSON.stringify(now) !== JSON.stringify(state.identity)) {
    await ctx.emit({
      level: 'warning',
      type: 'resume_refused',
      message: `Checkpoint ${resume.checkpointId ?? ''} was trained on other data or another split than this job computes now; training starts over from epoch 1.`,
      data: { checkpoint: resume.checkpointId, expected: state.identity, found: now },
    });
    return null;
  }
  const p = state.position;
  const offset = state.phase === 'fine-tune' ? (state.head?.history.length ?? 0) : 0;
  const where = p.batchesDone > 0 ? `epoch ${offset + p.epochsDone + 1}, batch ${p.batchesDone}` : `epoch ${offset + p.epochsDone}`;
  await ctx.emit({
    level: 'info',
    type: 'resumed',
    message: `Resumed from checkpoint ${resume.checkpointId ?? ''} at phase ${state.phase}, ${where}: weights, optimizer, early stopping and PRNG restored; the split is the same.`,
    data: { checkpoint: resume.checkpointId, phase: state.phase, epoch: offset + p.epochsDone, batch: p.batchesDone || null },
  });
  return state;
}

export interface ResumeParts {
  checkpoints: Checkpoints;
  overfitting: OverfittingWarning;
  writer: CheckpointWriter;
}

export class ResumeTracker {
  private live: LivePhase | null = null;
  private headDone: DonePhase | null = null;

  constructor(
    private readonly ctx: RunContext,
    private readonly parts: ResumeParts,
    private readonly state: ResumeState | null,
  ) {
    if (!state) return;
    ctx.record.history.push(...state.history);
    parts.checkpoints.steps = state.callbacks.steps;
    parts.writer.bestValLoss = state.callbacks.bestValLoss ?? Infinity;
    parts.overfitting.warned = state.callbacks.overfittingWarned;
    this.headDone = state.head;
  }

  /** A phase the resume state says had finished: what it gave (it is not run again), its record put back. */
  finished(phase: 'head'): DonePhase | null {
    if (this.state?.phase !== 'fine-tune' || phase !== 'head' || !this.state.head) return null;
    this.ctx.record.phases.push(this.state.head.record as PhaseRecord);
    return this.state.head;
  }

  /** The head phase's result, saved with the fine-tune phase's checkpoints. */
  headEnded(done: Omit<DonePhase, 'record'>): void {
    const record = this.ctx.record.phases.find((p) => p.phase === 'head') ?? {};
    this.headDone = { ...done, record: { ...record } };
  }

  /** A phase starts: registered for checkpoints; when the state is of this phase, restored, and its position returned. */
  async enter(live: LivePhase): Promise<PhasePosition | undefined> {
    this.live = live;
    const s = this.state;
    if (!s || s.phase !== live.phase) return undefined;
    if (s.variables.length !== live.variables.length || s.variables.some((t, i) => t.values.length !== live.variables[i]!.size)) {
      throw new Error(`resume state: the ${live.phase} phase trains ${live.variables.length} variables, the checkpoint has ${s.variables.length} of other sizes`);
    }
    live.variables.forEach((v, i) => {
      const t = tf.tensor(s.variables[i]!.values, v.shape, 'float32');
      v.assign(t);
      t.dispose();
    });
    await restoreOptimizer(live.optimizer, s.optimizer);
    live.random.restore(s.random);
    if (live.earlyStopping && s.earlyStopping) live.earlyStopping.restoreState(s.earlyStopping);
    return s.position;
  }

  /** The state to save with a checkpoint being written now (read at once: training goes on after). */
  async capture(position: PhasePosition, valLoss: number | null): Promise<ResumeState | null> {
    const live = this.live;
    if (!live) return null;
    return {
      version: RESUME_STATE_VERSION,
      identity: identityOf(this.ctx),
      phase: live.phase,
      position,
      random: live.random.state(),
      variables: live.variables.map(save),
      optimizer: await saveOptimizer(live.optimizer),
      earlyStopping: live.earlyStopping?.state() ?? null,
      callbacks: {
        steps: this.parts.checkpoints.steps,
        // Counting the checkpoint being written (the writer has not seen it yet).
        bestValLoss: Math.min(this.parts.writer.bestValLoss, valLoss ?? Infinity) === Infinity ? null : Math.min(this.parts.writer.bestValLoss, valLoss ?? Infinity),
        overfittingWarned: this.parts.overfitting.warned,
      },
      history: [...this.ctx.record.history],
      head: live.phase === 'fine-tune' ? this.headDone : null,
    };
  }
}

const save = (t: tf.Tensor): SavedTensor => ({ shape: [...t.shape], values: (t.dataSync() as Float32Array).slice() });

/** Adam's private β powers (tfjs recomputes them as powers on setWeights; the kept values are exact). */
type WithBetas = { accBeta1?: tf.Variable; accBeta2?: tf.Variable };

async function saveOptimizer(optimizer: tf.Optimizer): Promise<OptimizerState> {
  const [iter, ...moments] = await optimizer.getWeights();
  const iterations = iter ? (await iter.tensor.data())[0]! : 0;
  iter?.tensor.dispose();
  const b = optimizer as unknown as WithBetas;
  return {
    iterations,
    accBeta1: b.accBeta1 ? b.accBeta1.dataSync()[0]! : 0,
    accBeta2: b.accBeta2 ? b.accBeta2.dataSync()[0]! : 0,
    moments: moments.map((m) => save(m.tensor)),
  };
}

async function restoreOptimizer(optimizer: tf.Optimizer, o: OptimizerState): Promise<void> {
  if (!o.moments.length) return; // no step taken yet
  const tensors = [tf.scalar(o.iterations, 'int32'), ...o.moments.map((m) => tf.tensor(m.values, m.shape, 'float32'))];
  await optimizer.setWeights(tensors.map((tensor, i) => ({ name: i === 0 ? 'iter' : `moment_${i - 1}`, tensor })));
  tf.dispose(tensors); // the optimizer made its own variables of them
  const b = optimizer as unknown as WithBetas;
  tf.tidy(() => {
    b.accBeta1?.assign(tf.scalar(o.accBeta1));
    b.accBeta2?.assign(tf.scalar(o.accBeta2));
  });
}

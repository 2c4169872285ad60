/**
 * The run context: what every stage of one job shares, owned in one place instead of closures
 * over mutable locals — the spec and the task, events and hooks, cancellation, the training record
 * being built, and everything to release when the job ends (tensors, models' weights, the encoder,
 * the input cache, the job's work directory), whether it succeeds, fails or is cancelled.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { FineTuneSpec } from '@graft/contracts';
import type { BackendInfo } from '../backend/backend.ts';
import type { ResolvedBase } from '../bases/base-source.ts';
import { TrainingCancelled } from '../errors.ts';
import type { Task } from '../tasks/task.ts';
import { releaseWeights } from '../train/weights.ts';
import type { FineTuneOptions, TrainingEvent, TrainingHooks } from './options.ts';
import { TrainingRecord } from './record.ts';

export class RunContext {
  readonly started = performance.now();
  readonly spec: FineTuneSpec;
  readonly base: ResolvedBase;
  readonly hooks: TrainingHooks;
  readonly signal: AbortSignal | undefined;
  /** The caller is leaving: stop at the next checkpoint (phases) or stage (FineTuneOptions.handBack). */
  readonly handBack: AbortSignal | undefined;
  /** Either of the two: what a stage that cannot checkpoint (the baseline) stops on. */
  readonly stopSignal: AbortSignal | undefined;
  readonly outDir: string;
  /** Shared across jobs (feature cache, input cache, hosted models); null: nothing shared. */
  readonly cacheDir: string | null;
  /** The job's own scratch space under outDir, removed at the end. */
  readonly workDir: string;
  /** Head checkpoints while the base is frozen (FineTuneOptions.headCheckpoints). */
  readonly headCheckpoints: boolean;
  /** FineTuneOptions.checkpointMinIntervalMs. */
  readonly checkpointMinIntervalMs: number;
  readonly record: TrainingRecord;
  /** Every warning the job raised, in order (the model card lists them). */
  readonly warnings: TrainingEvent[] = [];
  /** Wall time of each stage run so far, ms (the `stage_timings` event). */
  readonly stageMs: Record<string, number> = {};
  /** The input pass's split, when one ran: reading and decoding inputs vs the frozen encoder, ms. */
  inputPassMs: { decode: number; encoder: number } | null = null;
  private readonly tensors: tf.Tensor[] = [];
  private readonly models: (tf.LayersModel | null)[] = [];
  private readonly cleanups: (() => void | Promise<void>)[] = [];

  constructor(
    opts: FineTuneOptions,
    readonly task: Task,
    readonly backend: BackendInfo,
  ) {
    this.spec = opts.spec;
    this.base = opts.base;
    this.hooks = opts.hooks ?? {};
    this.signal = opts.signal;
    this.handBack = opts.handBack;
    const signals = [opts.signal, opts.handBack].filter((s): s is AbortSignal => s !== undefined);
    this.stopSignal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    this.outDir = opts.outDir;
    this.cacheDir = opts.cacheDir ?? null;
    this.workDir = join(opts.outDir, '.work');
    this.headCheckpoints = opts.headCheckpoints ?? true;
    this.checkpointMinIntervalMs = opts.checkpointMinIntervalMs ?? 0;
    this.record = new TrainingRecord(opts.spec, opts.base);
    this.record.backend = backend.name;
  }

  async emit(e: TrainingEvent): Promise<void> {
    if (e.level === 'warning') this.warnings.push(e);
    await this.hooks.onEvent?.(e);
  }

  /** Runs one stage, adding its wall time to `stageMs[name]`. */
  async timed<T>(name: string, stage: () => T | Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await stage();
    } finally {
      this.stageMs[name] = (this.stageMs[name] ?? 0) + Math.round(performance.now() - t);
    }
  }

  /** Throws TrainingCancelled once the job's signal (or hand-back) has aborted (stages call it between steps). */
  checkCancelled(): void {
    if (this.stopSignal?.aborted) throw new TrainingCancelled();
  }

  /** A tensor that lives until the job ends. */
  keep<T extends tf.Tensor>(t: T): T {
    this.tensors.push(t);
    return t;
  }

  /** A model whose weights are released when the job ends (models sharing layers included). */
  own<M extends tf.LayersModel | null>(model: M): M {
    this.models.push(model);
    return model;
  }

  /** Something else to release when the job ends (the encoder, an open cache, callbacks' snapshots). */
  onDispose(cleanup: () => void | Promise<void>): void {
    this.cleanups.push(cleanup);
  }

  async dispose(): Promise<void> {
    tf.dispose(this.tensors);
    releaseWeights(this.models);
    for (const cleanup of this.cleanups) {
      try {
        await cleanup();
      } catch {
        // Releasing must not hide the job's own outcome.
      }
    }
    await rm(this.workDir, { recursive: true, force: true }).catch(() => {});
  }
}

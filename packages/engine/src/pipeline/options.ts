/** What `fineTune` takes and gives back, and what it tells its caller while it runs. */
import type { FineTuneResult, FineTuneSpec } from '@graft/contracts';
import type { ResolvedBase } from '../bases/base-source.ts';
import type { CheckpointInfo, CheckpointTiming } from '../export/checkpoints.ts';
import type { Resume } from './resume.ts';
import type { BatchProgress, EpochResult } from '../train/phase-runner.ts';

export interface TrainingEvent {
  level: 'info' | 'warning' | 'error';
  type: string;
  message: string;
  data?: Record<string, unknown>;
}

export interface TrainingHooks {
  onEvent?(e: TrainingEvent): void | Promise<void>;
  onBatch?(p: BatchProgress): void | Promise<void>;
  onEpoch?(m: EpochResult): void | Promise<void>;
  /**
   * A checkpoint was written under outDir/checkpoints/: a model zip in the final one's format, or,
   * while the base is frozen, a head checkpoint whose `templatePath` is the complete bundle it is
   * assembled from (the same file for the whole job). The worker moves/records them.
   */
  onCheckpoint?(c: CheckpointInfo): void | Promise<void>;
}

export interface FineTuneOptions {
  /** The base: its public descriptor (whose `task` picks the task) and where its weights are (`resolveCatalogBase`, or the worker's resolver). */
  base: ResolvedBase;
  /** The dataset file as stored at upload (images: a .zip of `<class>/<image>`). */
  datasetPath: string;
  /** `spec.testDataset` resolved by the worker: evaluated once at the end; its classes must be a subset of the training classes. */
  testDatasetPath?: string | null;
  /** Normalized (`normalizeFineTune`). */
  spec: FineTuneSpec;
  /** Gets `model/`, `model.zip` and `checkpoints/`. */
  outDir: string;
  /** Shared across jobs: `features/` (feature cache) and the task's input cache (`images/`). null → nothing reused across jobs. */
  cacheDir?: string | null;
  signal?: AbortSignal;
  /**
   * The caller is leaving (a worker's SIGTERM): in the head or fine-tune phase a checkpoint is
   * written at the next batch end and the job stops (TrainingCancelled), for another process to
   * resume; elsewhere it stops at the next stage.
   */
  handBack?: AbortSignal;
  /** Continue from a checkpoint's resume state (pipeline/resume.ts) instead of from epoch 1. */
  resume?: Resume;
  hooks?: TrainingHooks;
  /**
   * While the base is frozen, checkpoints are the head plus a reference to the base, written off the
   * training path (export/head-checkpoint.ts; assembled into a complete model when asked). Default
   * true; false writes every checkpoint as a complete model (the bench compares both).
   */
  headCheckpoints?: boolean;
  /**
   * With `checkpointEvery: N` batches, a checkpoint due sooner than this after the previous one is
   * skipped (its I/O costs more than the batches it would save). End-of-epoch checkpoints are never
   * skipped. Default 0: every one is written.
   */
  checkpointMinIntervalMs?: number;
}

export interface FineTuneOutcome {
  result: FineTuneResult;
  modelZipPath: string;
  modelZipBytes: number;
  /** Every checkpoint written (also reported through `hooks.onCheckpoint`). */
  checkpoints: CheckpointInfo[];
  /** Where each checkpoint's time went: on the training path and off it (bench/checkpoints.ts). */
  checkpointTimings: CheckpointTiming[];
}

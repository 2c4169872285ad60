/** The protocol between a worker and the training process it forks (Node IPC, one job each). */
import type { FineTuneResult, FineTuneSpec } from '@graft/contracts';
import type { ResolvedBase } from '@graft/engine/catalog';

export interface StartMessage {
  kind: 'start';
  fineTuneId: string;
  base: ResolvedBase;
  datasetPath: string;
  testDatasetPath: string | null;
  outDir: string;
  cacheDir: string;
  spec: FineTuneSpec;
  /** Batch checkpoints closer than this to the previous checkpoint are not written (0: none skipped). */
  checkpointMinIntervalMs?: number;
  /** The trainer waits at most this long for a checkpoint's acknowledgement, then fails the job. */
  ackTimeoutMs: number;
  /** Continue from this checkpoint's resume state (a local file) instead of from epoch 1. */
  resume: { path: string; checkpointId: string } | null;
}
export type ParentMessage =
  | StartMessage
  | { kind: 'cancel' }
  /** The worker is leaving: checkpoint at the next batch end and stop, for another worker to resume. */
  | { kind: 'hand-back' }
  | { kind: 'checkpoint-recorded'; zipPath: string }
  /** The worker could not record the checkpoint (storage or Postgres gave up): the job fails. */
  | { kind: 'checkpoint-failed'; zipPath: string; message: string };

export type ChildMessage =
  | { kind: 'event'; level: 'info' | 'warning' | 'error'; type: string; message: string; data?: Record<string, unknown> }
  | { kind: 'batch'; phase: string; epoch: number; epochs: number; batch: number; batches: number }
  | { kind: 'checkpoint'; epoch: number; phase: string; batch: number | null; valLoss: number | null; valAccuracy: number | null; isBest: boolean; zipPath: string; bytes: number; templatePath: string | null; resumePath: string | null }
  | { kind: 'epoch'; epoch: number; phase: string; loss: number; accuracy: number; valLoss: number | null; valAccuracy: number | null; durationMs: number }
  | { kind: 'succeeded'; result: FineTuneResult; modelZipPath: string; modelZipBytes: number }
  | { kind: 'cancelled' }
  | { kind: 'failed'; code: string; message: string; param?: string };

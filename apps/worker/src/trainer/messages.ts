/** The protocol between a worker and the training process it forks (Node IPC, one job each). */
import type { FineTuneResult, FineTuneSpec } from '@graft/contracts';

export interface StartMessage {
  kind: 'start';
  fineTuneId: string;
  baseModelId: string;
  datasetPath: string;
  outDir: string;
  spec: FineTuneSpec;
}
export type ParentMessage = StartMessage | { kind: 'cancel' };

export type ChildMessage =
  | { kind: 'event'; level: 'info' | 'warning' | 'error'; type: string; message: string; data?: Record<string, unknown> }
  | { kind: 'batch'; epoch: number; epochs: number; batch: number; batches: number }
  | { kind: 'epoch'; epoch: number; phase: string; loss: number; accuracy: number; valLoss: number | null; valAccuracy: number | null; durationMs: number }
  | { kind: 'succeeded'; result: FineTuneResult; modelZipPath: string; modelZipBytes: number }
  | { kind: 'cancelled' }
  | { kind: 'failed'; code: string; message: string };

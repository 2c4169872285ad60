/**
 * What a checkpoint saves besides the model so that a job can resume from it as if never stopped:
 * the weights training changes, the optimizer's state (Adam's moments, iteration and β powers), the
 * phase's position (epoch, batch, training order, running sums), its PRNG, early stopping (best,
 * wait, the best weights), the counters of the job's callbacks, and what identifies the data it
 * was trained on (a resumed job recomputes the seeded split and must find the same one).
 *
 * One file: `GRAFTRS1`, the header's length (u32 LE), the JSON header, then every tensor's float32
 * values back to back (the header names them by index).
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { BestSoFar, EarlyStopperState } from './early-stopping.ts';
import type { EpochResult, PhasePosition } from './phase-runner.ts';

export const RESUME_STATE_VERSION = 1;
const MAGIC = Buffer.from('GRAFTRS1', 'latin1');

export interface SavedTensor {
  shape: number[];
  values: Float32Array;
}

export interface OptimizerState {
  iterations: number;
  /** Adam's running β1^t and β2^t, kept exactly (recomputing them as powers differs in the last bits). */
  accBeta1: number;
  accBeta2: number;
  /** getWeights() order: the first moments, then the second moments. */
  moments: SavedTensor[];
}

/** A finished phase, as the next one needs it. */
export interface DonePhase {
  record: Record<string, unknown>;
  history: EpochResult[];
  stoppedEarly: boolean;
  restoredEpoch: number | null;
  modelEpoch: number;
  best: BestSoFar | null;
}

export interface ResumeState {
  version: number;
  /** What the job trains on: a resumed job must recompute the same (else it starts over). */
  identity: { seed: number; datasetSha256: string; splitSha256: string; classWeights: Record<string, number> | null };
  phase: 'head' | 'fine-tune';
  position: PhasePosition;
  /** The phase PRNG's state. */
  random: number;
  /** The phase's trained variables, in its order. */
  variables: SavedTensor[];
  optimizer: OptimizerState;
  earlyStopping: EarlyStopperState | null;
  /** Job-wide callback state: optimizer steps (checkpoint cadence), best checkpoint loss, the overfitting warning given. */
  callbacks: { steps: number; bestValLoss: number | null; overfittingWarned: boolean };
  /** The job's history (head and fine-tune epochs) so far. */
  history: EpochResult[];
  /** The head phase, when the state is of the fine-tune phase. */
  head: DonePhase | null;
}

const TENSOR = '$tensor';

export function encodeResumeState(state: ResumeState): Buffer {
  const arrays: Float32Array[] = [];
  const json = JSON.stringify(state, (_key, value: unknown) => {
    if (value instanceof Float32Array) {
      arrays.push(value);
      return { [TENSOR]: arrays.length - 1 };
    }
    if (typeof value === 'number' && !Number.isFinite(value)) return { $number: String(value) };
    return value;
  });
  // First line: each tensor's length; then the state.
  const head = Buffer.from(`${JSON.stringify(arrays.map((a) => a.length))}\n${json}`, 'utf8');
  const pad = (4 - ((MAGIC.length + 4 + head.length) % 4)) % 4;
  const length = Buffer.alloc(4);
  length.writeUInt32LE(head.length + pad);
  return Buffer.concat([MAGIC, length, head, Buffer.alloc(pad, 0x20), ...arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))]);
}

export function decodeResumeState(buf: Buffer): ResumeState {
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) throw new Error('not a graft resume state');
  const dataStart = 12 + buf.readUInt32LE(8);
  const header = buf.subarray(12, dataStart).toString('utf8');
  const newline = header.indexOf('\n');
  const lengths = JSON.parse(header.slice(0, newline)) as number[];
  const data = buf.subarray(dataStart);
  // An aligned copy: the file's bytes may start anywhere in the buffer.
  const floats = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  const starts: number[] = [];
  let at = 0;
  for (const n of lengths) {
    starts.push(at);
    at += n;
  }
  if (at !== floats.length) throw new Error(`resume state: ${floats.length} values where ${at} were expected`);
  const state = JSON.parse(header.slice(newline + 1), (_key, value: unknown) => {
    if (value && typeof value === 'object' && TENSOR in value) {
      const i = (value as { [TENSOR]: number })[TENSOR];
      return floats.subarray(starts[i]!, starts[i]! + lengths[i]!);
    }
    if (value && typeof value === 'object' && '$number' in value) return Number((value as { $number: string }).$number);
    return value;
  }) as ResumeState;
  if (state.version !== RESUME_STATE_VERSION) throw new Error(`resume state version ${state.version}, expected ${RESUME_STATE_VERSION}`);
  return state;
}

export async function writeResumeState(path: string, state: Buffer): Promise<number> {
  await writeFile(path, state);
  return state.length;
}

export async function readResumeState(path: string): Promise<ResumeState> {
  return decodeResumeState(await readFile(path));
}

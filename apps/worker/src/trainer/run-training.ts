/** Forks the training process for one job and relays its messages; kills it when asked to stop. */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChildMessage, StartMessage } from './messages.ts';

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
/** After a cancel, how long the process may take to stop by itself before it is killed. */
const KILL_AFTER_MS = 10_000;

export type TrainingEnd =
  | Extract<ChildMessage, { kind: 'succeeded' }>
  | Extract<ChildMessage, { kind: 'failed' }>
  | { kind: 'cancelled' };

export interface TrainingRun {
  done: Promise<TrainingEnd>;
  /** Tells the training process a checkpoint file has been taken and recorded. */
  checkpointRecorded(zipPath: string): void;
  /** Tells the training process its checkpoint could not be recorded (it then fails the job). */
  checkpointFailed(zipPath: string, message: string): void;
  cancel(): void;
  /** Asks for a checkpoint at the next batch end, then a stop (ends as `cancelled`); killed if not stopped within `killAfterMs`. */
  handBack(killAfterMs: number): void;
  kill(): void;
  pid: number | undefined;
}

export interface TrainerOptions {
  maxOldSpaceMb: number;
  /** Niceness of the training process (0: the worker's own priority). */
  nice: number;
}

/** The training process, waiting for its start message. */
export function forkTrainer(opts: TrainerOptions): ChildProcess {
  return fork(CHILD, [], {
    execArgv: ['--import', TSX, `--max-old-space-size=${opts.maxOldSpaceMb}`],
    env: { ...process.env, GRAFT_TRAINER_NICE: String(opts.nice) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
}

export function runTraining(start: StartMessage, onMessage: (m: ChildMessage) => void, opts: TrainerOptions): TrainingRun {
  const child = forkTrainer(opts);
  let end: TrainingEnd | undefined;
  let cancelled = false;
  let killTimer: NodeJS.Timeout | undefined;

  const done = new Promise<TrainingEnd>((resolve) => {
    child.on('message', (m: ChildMessage) => {
      if (m.kind === 'succeeded' || m.kind === 'failed' || m.kind === 'cancelled') end = m;
      else onMessage(m);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(killTimer);
      if (end) return resolve(end);
      if (cancelled) return resolve({ kind: 'cancelled' });
      resolve({
        kind: 'failed',
        code: 'trainer_crashed',
        message: `The training process exited unexpectedly (${signal ? `signal ${signal}` : `code ${code}`}); if it ran out of memory, use a smaller batch size or raise TRAINER_MAX_OLD_SPACE_MB.`,
      });
    });
    // A process that could not start emits no 'exit': end here (resolving twice is a no-op).
    child.on('error', (err) => {
      if (child.pid === undefined) resolve({ kind: 'failed', code: 'trainer_crashed', message: `The training process could not start: ${err.message}` });
    });
  });
  child.send(start);

  return {
    done,
    pid: child.pid,
    checkpointRecorded(zipPath) {
      if (child.connected) child.send({ kind: 'checkpoint-recorded', zipPath });
    },
    checkpointFailed(zipPath, message) {
      if (child.connected) child.send({ kind: 'checkpoint-failed', zipPath, message });
    },
    cancel() {
      if (cancelled) return;
      cancelled = true;
      if (child.connected) child.send({ kind: 'cancel' });
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    },
    handBack(killAfterMs) {
      if (cancelled) return;
      cancelled = true;
      if (child.connected) child.send({ kind: 'hand-back' });
      killTimer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    },
    kill() {
      child.kill('SIGKILL');
    },
  };
}

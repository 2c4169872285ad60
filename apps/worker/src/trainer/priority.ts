/**
 * The training process lowers its own CPU priority before anything else loads (imported first by
 * `child.ts`): threads it starts later (ONNX Runtime's, libuv's) inherit it. On a host shared with
 * the API, or with the worker's own lock renewal and cancel messages, training then takes the CPU
 * the others leave; on a host it has to itself, it loses nothing. GRAFT_TRAINER_NICE is set by the
 * worker from TRAINER_NICE.
 */
import { setPriority } from 'node:os';

const nice = Number(process.env.GRAFT_TRAINER_NICE ?? 0);
if (Number.isInteger(nice) && nice > 0) {
  try {
    setPriority(0, Math.min(nice, 19));
  } catch {
    // Not allowed here (a sandbox refusing setpriority): run at the worker's priority.
  }
}

/**
 * The training process: one per job, forked by the worker. TensorFlow.js work is CPU-bound and
 * would starve the worker's event loop (BullMQ lock renewal, cancel messages); here it can take
 * the whole core. The engine yields between batches, so a `cancel` message is seen within one.
 */
// First: the process' priority applies to every thread started after it.
import './priority.ts';
import { fineTune, readResumeState, TrainingCancelled, TrainingError } from '@graft/engine';
import type { ChildMessage, ParentMessage } from './messages.ts';

const send = (m: ChildMessage) =>
  new Promise<void>((resolve) => {
    if (!process.send) return resolve();
    process.send(m, undefined, undefined, () => resolve());
  });

const controller = new AbortController();
const handBack = new AbortController();
const acks = new Map<string, (failure?: string) => void>();

/**
 * Waits for the worker to record a checkpoint, never for ever: a refusal or no answer within
 * `timeoutMs` fails the job (`checkpoint_unrecorded`) instead of leaving it running at that epoch.
 */
function checkpointAck(c: Omit<Extract<ChildMessage, { kind: 'checkpoint' }>, 'kind'>, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => settle(`no acknowledgement within ${Math.round(timeoutMs / 1000)} s`), timeoutMs);
    const settle = (failure?: string) => {
      clearTimeout(timer);
      acks.delete(c.zipPath);
      if (failure === undefined) resolve();
      else reject(new TrainingError('checkpoint_unrecorded', `The checkpoint of epoch ${c.epoch} could not be recorded (${failure}); the job stops rather than go on without it.`));
    };
    acks.set(c.zipPath, settle);
    void send({ kind: 'checkpoint', ...c });
  });
}

process.on('message', (m: ParentMessage) => {
  if (m.kind === 'cancel') controller.abort();
  if (m.kind === 'hand-back') handBack.abort();
  if (m.kind === 'checkpoint-recorded') acks.get(m.zipPath)?.();
  if (m.kind === 'checkpoint-failed') acks.get(m.zipPath)?.(m.message);
  if (m.kind === 'start') void run(m);
});
process.on('disconnect', () => {
  // The worker is gone: nobody will record what we do.
  controller.abort();
  process.exit(1);
});

/** A resume state that cannot be read (damaged, another version) is not a reason to fail the job: it starts over. */
async function openResume(r: { path: string; checkpointId: string }) {
  try {
    return { state: await readResumeState(r.path), checkpointId: r.checkpointId };
  } catch (err) {
    await send({
      kind: 'event', level: 'warning', type: 'resume_refused',
      message: `The resume state of checkpoint ${r.checkpointId} could not be read (${(err as Error).message}); training starts over from epoch 1.`,
      data: { checkpoint: r.checkpointId },
    });
    return undefined;
  }
}

async function run(m: Extract<ParentMessage, { kind: 'start' }>) {
  try {
    const resume = m.resume ? await openResume(m.resume) : undefined;
    const outcome = await fineTune({
      base: m.base,
      datasetPath: m.datasetPath,
      testDatasetPath: m.testDatasetPath,
      cacheDir: m.cacheDir,
      spec: m.spec,
      outDir: m.outDir,
      checkpointMinIntervalMs: m.checkpointMinIntervalMs ?? 0,
      signal: controller.signal,
      handBack: handBack.signal,
      ...(resume ? { resume } : {}),
      hooks: {
        onEvent: (e) => send({ kind: 'event', ...e }),
        onBatch: (p) => send({ kind: 'batch', ...p }),
        onEpoch: (e) => send({ kind: 'epoch', ...e }),
        // Waits for the worker to take the file: the engine may only go on once it is recorded.
        onCheckpoint: (c) => checkpointAck(c, m.ackTimeoutMs),
      },
    });
    await send({ kind: 'succeeded', ...outcome });
  } catch (err) {
    if (err instanceof TrainingCancelled) await send({ kind: 'cancelled' });
    else if (err instanceof TrainingError) {
      // An engine error may name the request field at fault; else the worker derives it from the code.
      const param = (err as TrainingError & { param?: string }).param;
      await send({ kind: 'failed', code: err.code, message: err.message, ...(param ? { param } : {}) });
    }
    else await send({ kind: 'failed', code: 'training_failed', message: `Training failed: ${(err as Error).message ?? String(err)}` });
  } finally {
    // Every message was flushed (send resolves on delivery); the process holds nothing else.
    process.exit(0);
  }
}

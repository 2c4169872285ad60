/** The checkpoint thread (export/checkpoint-thread.ts): runs file jobs in the order they come. */
import { parentPort } from 'node:worker_threads';
import { writeCheckpointFile, type CheckpointFileJob } from './checkpoint-io.ts';

let chain: Promise<void> = Promise.resolve();
parentPort!.on('message', (m: { id: number; job: CheckpointFileJob }) => {
  chain = chain.then(() =>
    writeCheckpointFile(m.job).then(
      (done) => parentPort!.postMessage({ id: m.id, ok: true, done }),
      (err: unknown) => parentPort!.postMessage({ id: m.id, ok: false, message: (err as Error)?.message ?? String(err) }),
    ),
  );
});

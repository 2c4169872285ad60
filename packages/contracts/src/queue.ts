import { Type, type Static } from 'typebox';
import { Resources } from './workers.ts';

/** BullMQ queue that carries fine-tune jobs; the BullMQ job id is the fine-tune id. */
export const FINE_TUNE_QUEUE = 'fine-tunes';

export const FineTuneJobData = Type.Object(
  {
    fineTuneId: Type.String({ minLength: 1 }),
    /** What the job needs from a worker (checked before it starts); absent on jobs queued before graft routed by it. */
    resources: Type.Optional(Resources),
    /** Set once an event said that no live worker can run the job (so it is said once, not at every hand-back). */
    waitingNoted: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type FineTuneJobData = Static<typeof FineTuneJobData>;

/** Redis pub/sub channel (under the queue prefix) on which the API asks workers to stop a job. */
export const CANCEL_CHANNEL = 'cancel';

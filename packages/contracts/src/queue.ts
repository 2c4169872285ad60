import { Type, type Static } from 'typebox';

/** BullMQ queue that carries fine-tune jobs; the BullMQ job id is the fine-tune id. */
export const FINE_TUNE_QUEUE = 'fine-tunes';

export const FineTuneJobData = Type.Object({ fineTuneId: Type.String({ minLength: 1 }) }, { additionalProperties: false });
export type FineTuneJobData = Static<typeof FineTuneJobData>;

/** Redis pub/sub channel (under the queue prefix) on which the API asks workers to stop a job. */
export const CANCEL_CHANNEL = 'cancel';

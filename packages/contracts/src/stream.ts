/**
 * The live feed of a fine-tune (`GET /v1/fine-tunes/{id}/events` with `Accept: text/event-stream`):
 * Server-Sent Events whose `event:` is one of `STREAM_MESSAGE_TYPES` and whose `data:` is the JSON
 * of the matching schema. Every message but `end` carries an `id:` (a decimal integer, increasing
 * over the job's events, progress updates and metrics together) that `Last-Event-ID` resumes from.
 */
import { Type, type Static } from 'typebox';
import { Timestamp } from './common.ts';
import type { EpochMetrics, FineTune, FineTuneEvent } from './fine-tunes.ts';

export const STREAM_MESSAGE_TYPES = ['event', 'progress', 'metric', 'end'] as const;
export type StreamMessageType = (typeof STREAM_MESSAGE_TYPES)[number];

/** A progress update of a running job (written at most twice a second, and at the end of each epoch). */
export const FineTuneProgress = Type.Object(
  {
    phase: Type.String({ description: '`features`, `head`, `fine-tune`, `baseline` or `evaluation`.' }),
    epoch: Type.Integer(),
    epochs: Type.Integer({ description: 'Planned epochs over both phases (early stopping may end sooner).' }),
    batch: Type.Integer(),
    batches: Type.Integer(),
    createdAt: Timestamp,
  },
  { title: 'FineTuneProgress' },
);
export type FineTuneProgress = Static<typeof FineTuneProgress>;

/** The `data` of each message type: `event` as in the events list, `metric` as in the metrics list, `end` the final job. */
export interface StreamMessageData {
  event: FineTuneEvent;
  progress: FineTuneProgress;
  metric: EpochMetrics;
  end: FineTune;
}

/** One parsed message; `id` is null only on `end`. */
export type StreamMessage = { [K in StreamMessageType]: { type: K; id: string | null; data: StreamMessageData[K] } }[StreamMessageType];

/** Redis pub/sub channel (under the queue prefix, then `:<fine-tune id>`) nudged after each write to a job's feed. */
export const STREAM_CHANNEL = 'ft-feed';

export const STREAM_DESCRIPTION = [
  'With `Accept: text/event-stream` this route answers Server-Sent Events instead of a page:',
  '',
  '| `event:` | `data:` (JSON) | `id:` |',
  '|---|---|---|',
  '| `event` | a `FineTuneEvent`, as in the list | yes |',
  '| `progress` | a `FineTuneProgress` (`phase`, `epoch`, `epochs`, `batch`, `batches`, `createdAt`) | yes |',
  '| `metric` | an `EpochMetrics` row, as in `GET /v1/fine-tunes/{id}/metrics` | yes |',
  '| `end` | the final `FineTune`; the server then closes the stream | no |',
  '',
  'Ids are decimal integers increasing in the order things happened. Send the last one you saw as `Last-Event-ID` to resume: ',
  'the server replays what followed from the database, then goes live, with no gap and no duplicate. Without it the stream starts ',
  'at the job\'s first message. A comment line (`: keep-alive`) is sent when nothing else has been for a while. A job that has ',
  'already ended replays and sends `end` at once.',
].join('\n');

/**
 * `GET /v1/fine-tunes/:id/events` with `Accept: text/event-stream`: the job's feed as Server-Sent
 * Events. Order of work, so that nothing is missed or sent twice across a reconnect:
 *   1. join the hub (the job's channel is subscribed: every row committed from now on reaches us);
 *   2. replay from Postgres every row after `Last-Event-ID`, while the hub's deliveries wait in a buffer;
 *   3. send the buffer minus what the replay already sent (by seq), then go live.
 * The job's status is read before the replay: when it is final, the replay holds everything and
 * the stream ends (`end`, then close).
 */
import { GraftError, type StreamMessageType } from '@graft/contracts';
import { feed, fineTunes, type FineTuneRow } from '@graft/db';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isTerminal, type FeedWatcher } from '../../../plugins/feed-hub.ts';
import { eventOut, fineTuneOut, metricOut, progressOut } from '../../../serializers.ts';

type FeedEntry = feed.FeedEntry;

const REPLAY_PAGE = 500;
/** A client this far behind is dropped; it reconnects with Last-Event-ID and replays from the database. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

export function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').toLowerCase().includes('text/event-stream');
}

/**
 * `Last-Event-ID`: the `id:` of the last message seen (a decimal integer) or, for clients that only
 * keep event ids (the JSON list's cursors), the id of the last event seen (`ev_…`).
 */
async function resumeAfter(app: FastifyInstance, request: FastifyRequest, fineTuneId: string): Promise<bigint> {
  const raw = request.headers['last-event-id'];
  const value = (Array.isArray(raw) ? raw[0] : raw)?.trim();
  if (!value) return 0n;
  if (/^\d{1,19}$/.test(value)) return BigInt(value);
  const seq = await feed.eventSeq(app.db, fineTuneId, value);
  if (seq === null) throw new GraftError('invalid_request', 'Last-Event-ID must be the id of a message of this stream (a decimal integer) or of an event of this job (ev_…).', 'Last-Event-ID');
  return seq;
}

function format(type: StreamMessageType, data: unknown, id?: bigint): string {
  return `${id !== undefined ? `id: ${id}\n` : ''}event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

function entryMessage(e: FeedEntry): string {
  switch (e.kind) {
    case 'event':
      return format('event', eventOut(e.row), e.seq);
    case 'progress':
      return format('progress', progressOut(e.row), e.seq);
    case 'metric':
      return format('metric', metricOut(e.row), e.seq);
  }
}

export async function streamEvents(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, id: string): Promise<void> {
  const log = request.log.child({ jobId: id });
  const job = await fineTunes.getFineTune(app.db, id, request.tenantId);
  if (!job) throw new GraftError('fine_tune_not_found', `No fine-tune job ${id}.`);
  let lastSent = await resumeAfter(app, request, id);

  const res = reply.raw;
  let replaying = true;
  let buffered: FeedEntry[] = [];
  let pendingEnd: { job: FineTuneRow | null } | null = null;
  let closed = false;
  let lastWrite = Date.now();
  let leave = () => {};
  let heartbeat: NodeJS.Timeout | undefined;

  const write = (chunk: string) => {
    if (closed) return;
    lastWrite = Date.now();
    res.write(chunk);
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      log.warn({ buffered: res.writableLength }, 'event stream client too slow; closing (it resumes with Last-Event-ID)');
      finish(null, false);
    }
  };
  const send = (entries: FeedEntry[]) => {
    for (const e of entries) {
      if (e.seq <= lastSent) continue;
      write(entryMessage(e));
      lastSent = e.seq;
    }
  };
  const finish = (final: FineTuneRow | null, sendEnd: boolean) => {
    if (closed) return;
    if (sendEnd && final) write(format('end', fineTuneOut(final)));
    closed = true;
    clearInterval(heartbeat);
    leave();
    res.end();
  };
  const watcher: FeedWatcher = {
    deliver: (entries) => (replaying ? buffered.push(...entries) : send(entries)),
    end: (final) => (replaying ? (pendingEnd = { job: final }) : finish(final, true)),
    abort: () => finish(null, false),
  };

  leave = await app.feedHub.watch(id, watcher);
  if (closed) {
    leave();
    throw new GraftError('not_ready', 'The server is shutting down; connect again.');
  }
  reply.hijack();
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no', // nginx: do not buffer the stream
  });
  res.flushHeaders();
  res.write('retry: 2000\n\n');
  heartbeat = setInterval(() => {
    if (Date.now() - lastWrite >= app.config.SSE_HEARTBEAT_MS) write(': keep-alive\n\n');
  }, Math.max(50, Math.floor(app.config.SSE_HEARTBEAT_MS / 2)));
  request.raw.on('close', () => finish(null, false));

  try {
    // Read before the replay: a final status means the replay below holds every row.
    const before = await fineTunes.getFineTune(app.db, id, request.tenantId);
    for (;;) {
      if (closed) return;
      const entries = await feed.listFeed(app.db, id, lastSent, REPLAY_PAGE);
      send(entries);
      if (entries.length < REPLAY_PAGE) break;
    }
    replaying = false;
    send(buffered);
    buffered = [];
    // Set by the hub while the replay ran (TypeScript cannot see the callback assign it).
    const ended = pendingEnd as { job: FineTuneRow | null } | null;
    if (ended) finish(ended.job, true);
    else if (!before || isTerminal(before.status)) finish(before, true);
  } catch (err) {
    log.error({ err }, 'event stream replay failed');
    finish(null, false);
  }
}

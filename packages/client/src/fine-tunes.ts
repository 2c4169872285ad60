/**
 * Fine-tune jobs: create (with an Idempotency-Key made for the caller), read, list, cancel, delete;
 * their events (a page, or a live stream: Server-Sent Events when the server offers them, else
 * polling), metrics and checkpoints; model downloads; and `waitUntilDone`.
 */
import { GraftConnectionError } from './errors.ts';
import { sleep, type Http } from './http.ts';
import { path, toBlob } from './resources.ts';
import { readSse } from './sse.ts';
import type {
  Checkpoint,
  CreateFineTuneBody,
  EpochMetrics,
  FineTune,
  FineTuneDeleted,
  FineTuneEvent,
  FineTuneStatus,
  FileData,
  Page,
  PageParams,
  PredictionList,
  StreamMessage,
  WebhookDelivery,
} from './types.ts';

export const TERMINAL: readonly FineTuneStatus[] = ['succeeded', 'failed', 'cancelled'];
export const isTerminal = (status: string): boolean => (TERMINAL as readonly string[]).includes(status);

export interface StreamOptions {
  /** Resume after this event id (what the last stream yielded). */
  after?: string;
  signal?: AbortSignal;
  /** `auto` (default): SSE when the server answers `text/event-stream`, else polling. */
  transport?: 'auto' | 'sse' | 'poll';
  /** Polling: time between reads while nothing new happens. Default 1000 ms. */
  pollIntervalMs?: number;
  /** The feed's other messages (progress, metric, end), when it is Server-Sent Events. */
  onMessage?: (message: StreamMessage) => void;
}

export interface WaitOptions {
  /** Called with the job whenever its status, progress or latest metrics change. */
  onProgress?: (job: FineTune) => void;
  /** Called with every event of the job, once each, in order (streams them meanwhile). */
  onEvent?: (event: FineTuneEvent) => void;
  signal?: AbortSignal;
  /** Give up (rejecting with a TimeoutError) after this long. Default: never. */
  timeoutMs?: number;
  /** Without a live feed: time between reads of the job. Default 1000 ms. */
  pollIntervalMs?: number;
  /** `auto` (default): the live feed when the server has one, else polling. */
  transport?: 'auto' | 'sse' | 'poll';
}

export interface Download {
  /** The zip's bytes as they arrive. */
  body: ReadableStream<Uint8Array>;
  /** `content-length`, when the server sent one. */
  size: number | null;
  /** From `content-disposition`, e.g. `ft_….zip`. */
  filename: string;
  /** The whole file in memory. */
  bytes(): Promise<Uint8Array>;
}

/** An idempotency key: a random UUID (Web Crypto: Node ≥ 19, Deno, Bun, browsers). */
export function newIdempotencyKey(): string {
  return `graft-client-${globalThis.crypto.randomUUID()}`;
}

const isEvent = (v: unknown): v is FineTuneEvent =>
  !!v && typeof v === 'object' && typeof (v as FineTuneEvent).id === 'string' && typeof (v as FineTuneEvent).type === 'string' && typeof (v as FineTuneEvent).message === 'string';

export class FineTunes {
  constructor(private readonly http: Http) {}

  /**
   * `POST /v1/fine-tunes`. An Idempotency-Key is made when none is given, so a create retried after
   * a lost connection returns the same job instead of queuing a second one. Pass `idempotencyKey:
   * null` to send none.
   */
  create(body: CreateFineTuneBody, opts: { idempotencyKey?: string | null; signal?: AbortSignal } = {}): Promise<FineTune> {
    const key = opts.idempotencyKey === undefined ? newIdempotencyKey() : opts.idempotencyKey;
    return this.http.json('POST', '/v1/fine-tunes', {
      json: body,
      headers: key ? { 'idempotency-key': key } : {},
      retry: key !== null,
      signal: opts.signal,
    });
  }

  retrieve(id: string, opts: { signal?: AbortSignal } = {}): Promise<FineTune> {
    return this.http.json('GET', path('/v1/fine-tunes', id), { retry: true, signal: opts.signal });
  }

  /** Newest first. */
  list(params: PageParams & { status?: FineTuneStatus } = {}, opts: { signal?: AbortSignal } = {}): Promise<Page<FineTune>> {
    return this.http.json('GET', '/v1/fine-tunes', { query: { ...params }, retry: true, signal: opts.signal });
  }

  /** A queued job is cancelled at once; a running one is asked to stop (it ends `cancelled` within one batch). */
  cancel(id: string, opts: { signal?: AbortSignal } = {}): Promise<FineTune> {
    // Cancelling twice is harmless (a cancelled job answers 200), so it may be retried.
    return this.http.json('POST', path('/v1/fine-tunes', id, 'cancel'), { retry: true, signal: opts.signal });
  }

  /** An ended job, with its events, metrics, checkpoints and model. */
  delete(id: string, opts: { signal?: AbortSignal } = {}): Promise<FineTuneDeleted> {
    return this.http.json('DELETE', path('/v1/fine-tunes', id), { signal: opts.signal });
  }

  /** One page of the job's events, oldest first. */
  events(id: string, params: PageParams = {}, opts: { signal?: AbortSignal } = {}): Promise<Page<FineTuneEvent>> {
    return this.http.json('GET', path('/v1/fine-tunes', id, 'events'), { query: { ...params }, retry: true, signal: opts.signal });
  }

  /** One row per epoch so far. */
  metrics(id: string, opts: { signal?: AbortSignal } = {}): Promise<{ data: EpochMetrics[] }> {
    return this.http.json('GET', path('/v1/fine-tunes', id, 'metrics'), { retry: true, signal: opts.signal });
  }

  /** `GET /v1/fine-tunes/:id/webhook-deliveries`: one delivery per event and target, oldest first, with every attempt. */
  webhookDeliveries(id: string, params: PageParams = {}, opts: { signal?: AbortSignal } = {}): Promise<Page<WebhookDelivery>> {
    return this.http.json('GET', path('/v1/fine-tunes', id, 'webhook-deliveries'), { query: { ...params }, retry: true, signal: opts.signal });
  }

  checkpoints(id: string, opts: { signal?: AbortSignal } = {}): Promise<{ data: Checkpoint[] }> {
    return this.http.json('GET', path('/v1/fine-tunes', id, 'checkpoints'), { retry: true, signal: opts.signal });
  }

  /** The model zip (or a checkpoint's), streamed; presigned redirects are followed. */
  async download(id: string, opts: { checkpoint?: string; signal?: AbortSignal } = {}): Promise<Download> {
    const route = opts.checkpoint ? path('/v1/fine-tunes', id, 'checkpoints', opts.checkpoint, 'model') : path('/v1/fine-tunes', id, 'model');
    const res = await this.http.request('GET', route, { headers: { accept: 'application/zip, application/json' }, retry: true, signal: opts.signal });
    const length = res.headers.get('content-length');
    const disposition = /filename="?([^";]+)"?/.exec(res.headers.get('content-disposition') ?? '');
    const body = res.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    return {
      body,
      size: length === null ? null : Number(length),
      filename: disposition?.[1] ?? `${opts.checkpoint ? `${id}-${opts.checkpoint}` : id}.zip`,
      bytes: async () => new Uint8Array(await new Response(body).arrayBuffer()),
    };
  }

  /**
   * `POST /v1/fine-tunes/:id/predict` (or a checkpoint's): predictions in input order. Images
   * (bytes or Blobs) are sent as multipart parts, texts as JSON; at most 32 inputs a request.
   */
  predict(id: string, inputs: readonly (string | FileData)[], opts: { topK?: number; checkpoint?: string; signal?: AbortSignal } = {}): Promise<PredictionList> {
    const route = opts.checkpoint ? path('/v1/fine-tunes', id, 'checkpoints', opts.checkpoint, 'predict') : path('/v1/fine-tunes', id, 'predict');
    if (inputs.every((i) => typeof i === 'string')) {
      return this.http.json('POST', route, { json: { inputs, ...(opts.topK !== undefined ? { topK: opts.topK } : {}) }, signal: opts.signal });
    }
    const form = new FormData();
    inputs.forEach((input, i) => {
      if (typeof input === 'string') form.append('text', input);
      else {
        const { blob, name } = toBlob(input, undefined, `input-${i}`);
        form.append('image', blob, name);
      }
    });
    if (opts.topK !== undefined) form.append('topK', String(opts.topK));
    return this.http.json('POST', route, { form, signal: opts.signal });
  }

  /**
   * The job's live feed, message by message: `event`, `progress`, `metric`, then `end` with the final
   * job, over Server-Sent Events. A dropped connection is resumed with Last-Event-ID (no gap, no
   * duplicate); `after` resumes after a message id (or an event id, `ev_…`). Throws
   * `SseUnavailable` when the server answers the route without an event stream (an older server).
   */
  async *feed(id: string, opts: { after?: string; signal?: AbortSignal } = {}): AsyncGenerator<StreamMessage> {
    let last = opts.after;
    let failures = 0;
    let connected = false;
    for (;;) {
      let res: Response;
      try {
        res = await this.http.request('GET', path('/v1/fine-tunes', id, 'events'), {
          headers: { accept: 'text/event-stream', 'cache-control': 'no-cache', ...(last ? { 'last-event-id': last } : {}) },
          retry: true,
          signal: opts.signal,
        });
      } catch (err) {
        if (!connected || !(err instanceof GraftConnectionError) || ++failures > 5) throw err;
        await sleep(Math.min(500 * 2 ** failures, 15_000), opts.signal);
        continue;
      }
      if (!res.headers.get('content-type')?.startsWith('text/event-stream') || !res.body) {
        await res.body?.cancel().catch(() => undefined);
        throw new SseUnavailable(`GET /v1/fine-tunes/${id}/events did not answer text/event-stream`);
      }
      connected = true;
      let retryMs = 1000;
      try {
        for await (const message of readSse(res.body, opts.signal)) {
          failures = 0;
          if (message.retry !== undefined) retryMs = message.retry;
          const type = message.event as StreamMessage['type'];
          const data = parseJson(message.data);
          if (data === undefined || !STREAM_TYPES.has(type)) continue; // a type this client does not know yet
          const own = type === 'end' ? null : (message.id ?? null);
          if (own) last = own;
          yield { type, id: own, data } as StreamMessage;
          if (type === 'end') return;
        }
      } catch (err) {
        if (opts.signal?.aborted || ++failures > 5) throw err;
      }
      // Closed before `end`: a dropped connection (or a restarting API). Resume where it stopped.
      await sleep(retryMs, opts.signal);
    }
  }

  /**
   * Every event of the job, once each and in order, until the job has ended and its last event has
   * been yielded: from the live feed (Server-Sent Events) when the server has one, else by polling
   * the events list. `after` resumes after an event id.
   */
  async *stream(id: string, opts: StreamOptions = {}): AsyncGenerator<FineTuneEvent> {
    if (opts.transport !== 'poll') {
      try {
        for await (const m of this.feed(id, { after: opts.after, signal: opts.signal })) {
          if (m.type === 'event') yield m.data;
          else opts.onMessage?.(m);
        }
        return;
      } catch (err) {
        if (!(err instanceof SseUnavailable) || opts.transport === 'sse') throw err;
      }
    }
    yield* this.pollEvents(id, opts.after, opts.signal, opts.pollIntervalMs ?? 1000);
  }

  /** Reads the events list after `last` until the job has ended and the list is drained. */
  private async *pollEvents(id: string, last: string | undefined, signal: AbortSignal | undefined, intervalMs: number): AsyncGenerator<FineTuneEvent> {
    for (;;) {
      // Read the status first: the event of a job's last transition is written with it, so once a
      // terminal status is seen, one more read of the list holds every event.
      const ended = isTerminal((await this.retrieve(id, { signal })).status);
      let page: Page<FineTuneEvent>;
      do {
        page = await this.events(id, { limit: 100, ...(last ? { after: last } : {}) }, { signal });
        for (const event of page.data) {
          last = event.id;
          yield event;
        }
      } while (page.hasMore);
      if (ended) return;
      await sleep(intervalMs, signal);
    }
  }

  /**
   * Resolves with the job once it has ended (succeeded, failed or cancelled: check `status`),
   * calling `onProgress` with the job as it changes (status, progress within an epoch, latest
   * metrics) and `onEvent` for each event. Follows the live feed when the server has one, else
   * polls the job every `pollIntervalMs`.
   */
  async waitUntilDone(id: string, opts: WaitOptions = {}): Promise<FineTune> {
    const signal = AbortSignal.any([opts.signal, opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : undefined].filter((s): s is AbortSignal => !!s));
    let job = await this.retrieve(id, { signal });
    opts.onProgress?.(job);
    if (opts.transport !== 'poll') {
      try {
        for await (const m of this.feed(id, { signal })) {
          if (m.type === 'end') {
            job = m.data;
            opts.onProgress?.(job);
            return job;
          }
          if (m.type === 'event') {
            opts.onEvent?.(m.data);
            // A status change is an event; the job row has the rest (startedAt, error, result).
            if (m.data.type === 'status') {
              job = await this.retrieve(id, { signal });
              opts.onProgress?.(job);
            }
          } else if (m.type === 'progress') {
            const { createdAt: _, ...progress } = m.data;
            job = { ...job, status: job.status === 'queued' ? 'running' : job.status, progress };
            opts.onProgress?.(job);
          } else {
            job = { ...job, metrics: m.data };
            opts.onProgress?.(job);
          }
        }
        // The feed ends only with `end`; reaching here means the job ended between reads.
        return await this.retrieve(id, { signal });
      } catch (err) {
        if (!(err instanceof SseUnavailable) || opts.transport === 'sse') throw err;
      }
    }
    return this.pollUntilDone(id, job, opts, signal);
  }

  /** `waitUntilDone` without a live feed: the job read every `pollIntervalMs`, events polled alongside. */
  private async pollUntilDone(id: string, first: FineTune, opts: WaitOptions, outer: AbortSignal): Promise<FineTune> {
    const interval = opts.pollIntervalMs ?? 1000;
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, outer]);
    let streaming: Promise<void> | null = null;
    if (opts.onEvent) {
      const onEvent = opts.onEvent;
      streaming = (async () => {
        for await (const event of this.pollEvents(id, undefined, signal, interval)) onEvent(event);
      })();
      streaming.catch(() => undefined); // surfaced below, once the job has ended
    }
    try {
      let job = first;
      let previous = JSON.stringify([job.status, job.progress, job.metrics?.epoch ?? null]);
      while (!isTerminal(job.status)) {
        await sleep(interval, signal);
        job = await this.retrieve(id, { signal });
        const seen = JSON.stringify([job.status, job.progress, job.metrics?.epoch ?? null]);
        if (seen !== previous) {
          previous = seen;
          opts.onProgress?.(job);
        }
      }
      if (streaming) await streaming;
      return job;
    } finally {
      stop.abort();
    }
  }
}

/** The server has no event stream on this route (an older graft): the client polls instead. */
export class SseUnavailable extends Error {
  override readonly name = 'SseUnavailable';
}

const STREAM_TYPES = new Set<string>(['event', 'progress', 'metric', 'end']);

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A small Server-Sent Events reader for tests (parsing per the WHATWG rules that matter here). */
import { waitFor } from './processes.ts';

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

export class SseConnection {
  readonly messages: SseMessage[] = [];
  comments = 0;
  /** The `id:` of the last message that had one (what a browser sends as Last-Event-ID). */
  lastEventId: string | null = null;
  done = false;
  readonly finished: Promise<void>;
  private readonly controller = new AbortController();

  private constructor(
    readonly status: number,
    readonly contentType: string | null,
    body: ReadableStream<Uint8Array>,
  ) {
    this.finished = this.read(body).finally(() => (this.done = true));
  }

  static async open(url: string, opts: { lastEventId?: string | null } = {}): Promise<SseConnection> {
    const controller = new AbortController();
    const res = await fetch(url, {
      headers: { accept: 'text/event-stream', ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}) },
      signal: controller.signal,
    });
    if (!res.body) throw new Error(`no body (status ${res.status})`);
    const conn = new SseConnection(res.status, res.headers.get('content-type'), res.body);
    conn.controller.signal.addEventListener('abort', () => controller.abort());
    return conn;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let text = '';
    let fields: { id: string | null; event: string; data: string[] } = { id: null, event: 'message', data: [] };
    try {
      for await (const chunk of body) {
        text += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = text.search(/\r\n|\n|\r/)) >= 0) {
          const line = text.slice(0, nl);
          text = text.slice(nl + (text.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (fields.data.length) {
              this.messages.push({ id: fields.id, event: fields.event, data: fields.data.join('\n') });
              if (fields.id !== null) this.lastEventId = fields.id;
            }
            fields = { id: null, event: 'message', data: [] };
          } else if (line.startsWith(':')) {
            this.comments++;
          } else {
            const colon = line.indexOf(':');
            const name = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (name === 'id') fields.id = value;
            else if (name === 'event') fields.event = value;
            else if (name === 'data') fields.data.push(value);
          }
        }
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
  }

  /** Messages of these types, their data parsed. */
  of<T = unknown>(event: string): (T & { _id: string | null })[] {
    return this.messages.filter((m) => m.event === event).map((m) => ({ ...(JSON.parse(m.data) as T), _id: m.id }));
  }

  until(what: string, fn: (c: SseConnection) => boolean, timeoutMs = 30_000): Promise<true> {
    return waitFor(what, async () => fn(this), timeoutMs, 10);
  }

  close(): void {
    this.controller.abort();
  }
}

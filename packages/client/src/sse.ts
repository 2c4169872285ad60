/**
 * A Server-Sent Events reader over a fetch body, after the WHATWG "event stream interpretation":
 * `field: value` lines, a blank line dispatches, `data` lines joined by newlines, `id` remembered
 * (the Last-Event-ID of a reconnect), comments (`: heartbeat`) ignored, CR, LF or CRLF line ends.
 */
export interface SseMessage {
  /** The `event` field; `message` when absent. */
  event: string;
  data: string;
  /** The last `id` seen so far in the stream (it carries over to later messages, as in EventSource). */
  id: string | undefined;
  /** A `retry` field: the reconnection delay the server asks for, in ms. */
  retry: number | undefined;
}

export async function* readSse(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let lastId: string | undefined;
  let retry: number | undefined;
  let finished = false;
  const onAbort = () => void reader.cancel(signal?.reason).catch(() => undefined);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (signal?.aborted) throw signal.reason;
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // Keep a trailing CR: it may be the first half of a CRLF split across chunks.
      let cut: number;
      while ((cut = lineEnd(buffer, done)) >= 0) {
        const line = buffer.slice(0, cut);
        buffer = buffer.slice(buffer[cut] === '\r' && buffer[cut + 1] === '\n' ? cut + 2 : cut + 1);
        if (line === '') {
          if (data.length) yield { event: event || 'message', data: data.join('\n'), id: lastId, retry };
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id' && !value.includes('\0')) lastId = value;
        else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
      }
      if (done) {
        finished = true;
        return; // an unterminated last message is dropped, as EventSource does
      }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // A consumer that stops early (break, an error) closes the connection.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

function lineEnd(buffer: string, done: boolean): number {
  for (let i = 0; i < buffer.length; i++) {
    const c = buffer[i];
    if (c === '\n') return i;
    if (c === '\r') return i + 1 < buffer.length || done ? i : -1;
  }
  return -1;
}

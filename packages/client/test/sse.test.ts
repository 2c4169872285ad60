/** The Server-Sent Events reader: chunk boundaries anywhere, every line ending, comments, ids, retry. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readSse, type SseMessage } from '@graft/client';

function body(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const s of chunks) c.enqueue(enc.encode(s));
      c.close();
    },
  });
}
async function all(chunks: string[]): Promise<SseMessage[]> {
  const out: SseMessage[] = [];
  for await (const m of readSse(body(chunks))) out.push(m);
  return out;
}

const STREAM =
  ': connected\n\n' +
  'retry: 2000\nid: ev_1\nevent: status\ndata: {"a":1}\n\n' +
  'data: line one\r\ndata: line two\r\n\r\n' + // no id: the last one carries over
  'id: ev_3\rdata:no-space\r\r' +
  ':heartbeat\n\n' +
  'event: end\ndata\n\n' + // a bare `data` field is an empty line of data
  'id: ev_9\ndata: unterminated';

const EXPECTED: SseMessage[] = [
  { event: 'status', data: '{"a":1}', id: 'ev_1', retry: 2000 },
  { event: 'message', data: 'line one\nline two', id: 'ev_1', retry: 2000 },
  { event: 'message', data: 'no-space', id: 'ev_3', retry: 2000 },
  { event: 'end', data: '', id: 'ev_3', retry: 2000 },
];

test('parses a stream sent whole', async () => {
  assert.deepEqual(await all([STREAM]), EXPECTED);
});

test('parses the same stream split at every possible byte', async () => {
  for (let i = 1; i < STREAM.length; i++) {
    assert.deepEqual(await all([STREAM.slice(0, i), STREAM.slice(i)]), EXPECTED, `split at ${i}`);
  }
  assert.deepEqual(await all([...STREAM]), EXPECTED, 'one character per chunk');
});

test('multi-byte characters split across chunks survive', async () => {
  const bytes = new TextEncoder().encode('data: café ☕\n\n');
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (const b of bytes) c.enqueue(new Uint8Array([b]));
      c.close();
    },
  });
  const out: SseMessage[] = [];
  for await (const m of readSse(stream)) out.push(m);
  assert.equal(out[0]!.data, 'café ☕');
});

test('a consumer that stops early cancels the body', async () => {
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(new TextEncoder().encode('data: x\n\n'));
    },
    cancel() {
      cancelled = true;
    },
  });
  for await (const m of readSse(stream)) {
    assert.equal(m.data, 'x');
    break;
  }
  assert.equal(cancelled, true);
});

/**
 * Server-Sent Events with a real worker process: a client follows a training job live, is cut off
 * mid-job, resumes with Last-Event-ID and ends up with every event, progress update and metric of
 * the job exactly once and in order, then `end`.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../helpers/env.ts';
import { startApi, startWorker, type WorkerProcess } from '../helpers/processes.ts';
import { SseConnection, type SseMessage } from '../helpers/sse.ts';

const SAMPLE = fileURLToPath(new URL('../../samples/digits-5-9.zip', import.meta.url));

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;

before(async () => {
  env = await createTestEnv('e2esse');
  api = await startApi(env, { SSE_HEARTBEAT_MS: '1000' });
  worker = await startWorker(env);
});
after(async () => {
  await worker?.stop();
  await api?.close();
});

test('following a training job live across a forced reconnect: every message once, in order, then end', async () => {
  const upload = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', SAMPLE);
  assert.equal(upload.status, 201, JSON.stringify(upload.body));
  const created = await request(api.url).post('/v1/fine-tunes').send({
    baseModel: 'bm_mnist_cnn', dataset: upload.body.id, hyperparameters: { epochs: 6, batchSize: 16 }, earlyStopping: false, seed: 7,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id as string;
  const url = `${api.url}/v1/fine-tunes/${id}/events`;

  // First connection: cut off once the second epoch's metric has arrived (mid-job).
  const first = await SseConnection.open(url);
  await first.until('the second metric', (c) => c.messages.filter((m) => m.event === 'metric').length >= 2 || c.done, 180_000);
  first.close();
  await first.finished;
  assert.ok(!first.messages.some((m) => m.event === 'end'), 'the job was still running when the client was cut off');

  const second = await SseConnection.open(url, { lastEventId: first.lastEventId });
  await second.finished; // the server closes the stream when the job ends
  const all: SseMessage[] = [...first.messages, ...second.messages];

  const end = all.at(-1)!;
  assert.equal(end.event, 'end');
  assert.equal(JSON.parse(end.data).status, 'succeeded');
  const withIds = all.slice(0, -1);
  const ids = withIds.map((m) => BigInt(m.id!));
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `ids increase (${ids[i - 1]} then ${ids[i]})`);

  // Exactly what the job recorded: every event (as listed), every metric, and the progress updates.
  const listed = (await request(api.url).get(`/v1/fine-tunes/${id}/events?limit=100`)).body.data;
  assert.deepEqual(withIds.filter((m) => m.event === 'event').map((m) => JSON.parse(m.data)), listed);
  const metrics = (await request(api.url).get(`/v1/fine-tunes/${id}/metrics`)).body.data;
  assert.equal(metrics.length, 6);
  assert.deepEqual(withIds.filter((m) => m.event === 'metric').map((m) => JSON.parse(m.data)), metrics);
  const progress = withIds.filter((m) => m.event === 'progress').map((m) => JSON.parse(m.data));
  assert.ok(progress.length >= 6, `a progress update at least at the end of each epoch (${progress.length})`);
  assert.ok(progress.some((p) => p.phase === 'head' && p.batch === p.batches && p.epoch === 6));
  // A fresh watcher of the ended job gets the same messages from the database, then end.
  const replay = await SseConnection.open(url);
  await replay.finished;
  assert.deepEqual(replay.messages.map((m) => `${m.id}:${m.event}:${m.event === 'end' ? '' : m.data}`), all.map((m) => `${m.id}:${m.event}:${m.event === 'end' ? '' : m.data}`));
});

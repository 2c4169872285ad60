/**
 * Server-Sent Events of a job, written through the real repositories (as the worker writes them:
 * commit, then a Redis nudge) and read over real HTTP: resuming across forced reconnects sees
 * every row exactly once and in order; 20 watchers share one Redis subscription; heart-beats; the
 * stream ends with the job. The same with a real worker is in test/e2e/event-stream.test.ts.
 */
import { createDb, feed, fineTunes, events, metrics, type Db } from '@graft/db';
import { createRedis, feedChannel, publishFeedUpdate } from '@graft/queue';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { uploadColourDataset } from '../../../test/helpers/fixtures.ts';
import { startApi, waitFor } from '../../../test/helpers/processes.ts';
import { SseConnection } from '../../../test/helpers/sse.ts';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let db: Db;
let redis: Redis;
let datasetId: string;

before(async () => {
  env = await createTestEnv('eventstream');
  // No poll to speak of: live rows must come through the Redis nudges.
  api = await startApi(env, { SSE_HEARTBEAT_MS: '300', FEED_POLL_MS: '600000' });
  db = createDb(env.DATABASE_URL);
  redis = createRedis(env.REDIS_URL);
  datasetId = await uploadColourDataset(api.url, join(env.STORAGE_DIR, 'fx'));
});
after(async () => {
  await api?.close();
  redis?.disconnect();
  await db?.$disconnect();
});

/** A queued job (no worker here) moved to running, as a worker's claim does. */
async function runningJob(): Promise<string> {
  const res = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mnist_cnn', dataset: datasetId, hyperparameters: { epochs: 3 } });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const id = res.body.id as string;
  await api.app.queue.remove(id);
  assert.ok(await fineTunes.transition(db, id, ['queued'], 'running', { startedAt: new Date() }, { level: 'info', type: 'status', message: 'Job started', data: { status: 'running' } }));
  await publishFeedUpdate(redis, env.QUEUE_PREFIX, id);
  return id;
}

/** Writes the i-th row of a job's feed the way the worker does (commit, then nudge). */
async function writeRow(id: string, i: number): Promise<void> {
  if (i % 3 === 0) await events.appendEvent(db, { fineTuneId: id, level: 'info', type: 'note', message: `row ${i}`, data: { i } });
  else if (i % 3 === 1) assert.ok(await fineTunes.recordProgress(db, id, { phase: 'head', epoch: 1, epochs: 3, batch: i, batches: 1000 }));
  else await metrics.recordMetric(db, { fineTuneId: id, epoch: i, phase: 'head', loss: 1 / i, accuracy: i / 1000, valLoss: null, valAccuracy: 0.5, durationMs: i });
  await publishFeedUpdate(redis, env.QUEUE_PREFIX, id);
}

async function endJob(id: string): Promise<void> {
  assert.ok(await fineTunes.transition(db, id, ['running'], 'cancelled', { finishedAt: new Date() }, { level: 'info', type: 'status', message: 'Job cancelled', data: { status: 'cancelled' } }));
  await publishFeedUpdate(redis, env.QUEUE_PREFIX, id);
}

/** What the stream must carry, from the database: (id, type) of every row in order. */
async function expectedFeed(id: string): Promise<string[]> {
  const rows = await feed.listFeed(db, id, 0n, 100_000);
  return rows.map((r) => `${r.seq}:${r.kind}`);
}

const url = (id: string) => `${api.url}/v1/fine-tunes/${id}/events`;
const numsub = async (channel: string) => Number(((await redis.pubsub('NUMSUB', channel)) as [string, number])[1]);

describe('GET /v1/fine-tunes/:id/events as text/event-stream', () => {
  test('a watcher that is cut off again and again resumes with Last-Event-ID: every row once, in order', async () => {
    const id = await runningJob();
    const ROWS = 300;
    // The writer runs on while the watcher connects, reads a little, drops and reconnects.
    const writer = (async () => {
      for (let i = 1; i <= ROWS; i++) {
        await writeRow(id, i);
        if (i % 7 === 0) await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const received: { id: string | null; event: string; data: string }[] = [];
    let lastEventId: string | null = null;
    let connections = 0;
    let writing = true;
    void writer.then(() => (writing = false));
    while (writing) {
      const conn = await SseConnection.open(url(id), { lastEventId });
      connections++;
      assert.equal(conn.status, 200);
      const want = 5 + ((connections * 13) % 40);
      await conn.until(`${want} messages`, (c) => c.messages.length >= want || !writing, 30_000);
      conn.close();
      await conn.finished;
      received.push(...conn.messages);
      lastEventId = conn.lastEventId ?? lastEventId;
    }
    await writer;
    // The last connection sees the rest, then the end of the job.
    const last = await SseConnection.open(url(id), { lastEventId });
    connections++;
    await endJob(id);
    await last.finished;
    received.push(...last.messages);

    const end = received.filter((m) => m.event === 'end');
    assert.equal(end.length, 1);
    assert.equal(JSON.parse(end[0]!.data).status, 'cancelled');
    assert.equal(received.at(-1)!.event, 'end');
    const got = received.filter((m) => m.event !== 'end').map((m) => `${m.id}:${m.event}`);
    assert.deepEqual(got, await expectedFeed(id), 'the stream carries every row of the feed exactly once, in order');
    assert.ok(connections >= 4, `the watcher reconnected (${connections} connections)`);
    const ids = got.map((g) => BigInt(g.split(':')[0]!));
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!);
    // Every kind is there and shaped as in the JSON routes.
    const kinds = new Set(received.map((m) => m.event));
    assert.deepEqual([...kinds].sort(), ['end', 'event', 'metric', 'progress']);
    const listed = await request(api.url).get(`/v1/fine-tunes/${id}/events?limit=100`);
    const firstEvent = received.find((m) => m.event === 'event')!;
    assert.deepEqual(JSON.parse(firstEvent.data), listed.body.data[0]);
    const metricRows = (await request(api.url).get(`/v1/fine-tunes/${id}/metrics`)).body.data;
    assert.deepEqual(received.filter((m) => m.event === 'metric').map((m) => JSON.parse(m.data)), metricRows);
    const progress = JSON.parse(received.find((m) => m.event === 'progress')!.data);
    assert.deepEqual(Object.keys(progress).sort(), ['batch', 'batches', 'createdAt', 'epoch', 'epochs', 'phase']);

    // A job that has ended: replay, `end`, closed at once.
    const replay = await SseConnection.open(url(id));
    await replay.finished;
    assert.deepEqual(replay.messages.map((m) => `${m.id}:${m.event}`), [...got, 'null:end']);
  });

  test('20 watchers of one job share one Redis subscription and all see the same rows', async () => {
    const id = await runningJob();
    const channel = feedChannel(env.QUEUE_PREFIX, id);
    const watchers = await Promise.all(Array.from({ length: 20 }, () => SseConnection.open(url(id))));
    await Promise.all(watchers.map((w) => w.until('the replay', (c) => c.messages.length >= 2)));
    assert.equal(await numsub(channel), 1, 'one subscription for 20 watchers');
    assert.equal(api.app.feedHub.watchedJobs, 1);
    for (let i = 1; i <= 12; i++) await writeRow(id, i);
    const expected = await expectedFeed(id);
    await Promise.all(watchers.map((w) => w.until('12 more rows', (c) => c.messages.length >= expected.length)));
    for (const w of watchers) assert.deepEqual(w.messages.map((m) => `${m.id}:${m.event}`), expected);
    for (const w of watchers.slice(0, 10)) w.close();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await numsub(channel), 1, 'still one while 10 watch');
    await endJob(id);
    await Promise.all(watchers.slice(10).map((w) => w.finished));
    for (const w of watchers.slice(10)) assert.equal(w.messages.at(-1)!.event, 'end');
    await waitFor('the subscription to go', async () => (await numsub(channel)) === 0, 5_000, 50);
    assert.equal(api.app.feedHub.watchedJobs, 0);
  });

  test('heart-beats while nothing happens; the JSON listing is unchanged; bad requests are JSON errors', async () => {
    const id = await runningJob();
    const conn = await SseConnection.open(url(id));
    assert.equal(conn.status, 200);
    assert.match(conn.contentType ?? '', /^text\/event-stream/);
    await conn.until('two heart-beats', (c) => c.comments >= 2, 5_000);
    conn.close();

    const page = await request(api.url).get(`/v1/fine-tunes/${id}/events`);
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'] ?? '', /application\/json/);
    assert.deepEqual(page.body.data.map((e: { message: string }) => e.message), ['Job queued', 'Job started']);

    const missing = await request(api.url).get('/v1/fine-tunes/ft_nope/events').set('accept', 'text/event-stream');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'fine_tune_not_found');
    const bad = await request(api.url).get(`/v1/fine-tunes/${id}/events`).set('accept', 'text/event-stream').set('last-event-id', 'ev_x');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_request');
    assert.equal(bad.body.error.param, 'Last-Event-ID');

    // An event id (what the JSON list pages by) resumes too: after "Job queued" comes "Job started".
    const resumed = await SseConnection.open(url(id), { lastEventId: page.body.data[0].id });
    await resumed.until('the next event', (c) => c.messages.length >= 1);
    resumed.close();
    assert.equal(JSON.parse(resumed.messages[0]!.data).message, 'Job started');
    await endJob(id);
  });
});

/**
 * GET /v1/workers reads the registry workers keep in Redis; POST /v1/fine-tunes states what a job
 * needs (`resources`) and queues it with them. Workers themselves are covered in test/e2e/scale-out.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { estimateTrainingMemoryMB, type Worker } from '@graft/contracts';
import { announceWorker, withdrawWorker } from '@graft/queue';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { uploadColourDataset } from '../../../test/helpers/fixtures.ts';
import { startApi } from '../../../test/helpers/processes.ts';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let datasetId: string;

before(async () => {
  env = await createTestEnv('workers');
  api = await startApi(env);
  datasetId = await uploadColourDataset(api.url, join(env.STORAGE_DIR, 'fx'));
});
after(async () => api.close());

const record = (id: string, accelerator: 'gpu' | 'cpu', running: Worker['running'] = []): Worker => ({
  id,
  object: 'worker',
  hostname: `host-${id}`,
  status: running.length ? 'busy' : 'idle',
  capabilities: {
    backend: accelerator === 'gpu' ? 'node-gpu' : 'wasm',
    accelerator,
    gpus: accelerator === 'gpu' ? [{ name: 'NVIDIA A10G', memoryBytes: 24 * 2 ** 30 }] : [],
    memoryBytes: 16 * 2 ** 30,
    memoryPerJobBytes: 16 * 2 ** 30,
    cpus: 4,
    concurrency: 1,
  },
  running,
  startedAt: new Date().toISOString(),
  lastSeenAt: new Date().toISOString(),
});

describe('GET /v1/workers', () => {
  test('lists the live workers by id with their capabilities and what they run; a withdrawn one is gone', async () => {
    assert.deepEqual((await request(api.url).get('/v1/workers')).body, { data: [], hasMore: false, nextCursor: null });
    const b = record('gpu-b', 'gpu', [{ fineTune: 'ft_x', startedAt: new Date().toISOString() }]);
    const a = record('cpu-a', 'cpu');
    await announceWorker(api.app.redis, env.QUEUE_PREFIX, b);
    await announceWorker(api.app.redis, env.QUEUE_PREFIX, a);
    const res = await request(api.url).get('/v1/workers');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { data: [a, b], hasMore: false, nextCursor: null });
    // /readyz keeps its short form of the same registry.
    const ready = await request(api.url).get('/readyz');
    assert.deepEqual(ready.body.workers.map((w: { id: string; backend: string }) => [w.id, w.backend]), [['cpu-a', 'wasm'], ['gpu-b', 'node-gpu']]);
    await withdrawWorker(api.app.redis, env.QUEUE_PREFIX, 'gpu-b');
    assert.deepEqual((await request(api.url).get('/v1/workers')).body.data.map((w: Worker) => w.id), ['cpu-a']);
    // Records expire with the heartbeat's TTL.
    assert.ok((await api.app.redis.ttl(`${env.QUEUE_PREFIX}:workers:cpu-a`)) > 0);
    await withdrawWorker(api.app.redis, env.QUEUE_PREFIX, 'cpu-a');
  });
});

describe('what a job needs', () => {
  test('by default: the base decides the GPU preference, graft estimates the memory; both travel with the queued job', async () => {
    const res = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mnist_cnn', dataset: datasetId });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const expected = { gpu: 'any', memoryMB: estimateTrainingMemoryMB({ inputShape: [28, 28, 1], featureShape: [800] }, 32, 16), estimated: true };
    assert.deepEqual(res.body.resources, expected);
    const job = await api.app.queue.getJob(res.body.id);
    assert.deepEqual(job?.data, { fineTuneId: res.body.id, resources: expected });
    const big = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mobilenet_v2', dataset: datasetId });
    assert.equal(big.status, 201, JSON.stringify(big.body));
    assert.equal(big.body.resources.gpu, 'preferred');
    assert.ok(big.body.resources.memoryMB > res.body.resources.memoryMB);
  });

  test('a request states them; a bad value is a 400 naming the field', async () => {
    const res = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mnist_cnn', dataset: datasetId, resources: { gpu: 'required', memoryMB: 3000 } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.resources, { gpu: 'required', memoryMB: 3000, estimated: false });
    assert.deepEqual((await request(api.url).get(`/v1/fine-tunes/${res.body.id}`)).body.resources, res.body.resources);
    const bad = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mnist_cnn', dataset: datasetId, resources: { gpu: 'sometimes' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_request');
    assert.match(bad.body.error.param, /^resources/);
  });
});

describe('GET /metrics', () => {
  test('Prometheus text: latency by route pattern and status, queue jobs by state, fine-tunes by status, live workers, process metrics', async () => {
    await request(api.url).get('/v1/fine-tunes/ft_doesnotexist');
    await request(api.url).get('/v1/fine-tunes?limit=1');
    await announceWorker(api.app.redis, env.QUEUE_PREFIX, record('gpu-m', 'gpu'));
    const res = await request(api.url).get('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type']!, /^text\/plain; version=0\.0\.4/);
    const text = res.text;
    assert.match(text, /^graft_http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/v1\/fine-tunes\/:id",status_code="404"\} \d+$/m);
    assert.match(text, /^graft_http_request_duration_seconds_count\{method="GET",route="\/v1\/fine-tunes",status_code="200"\} [1-9]\d*$/m);
    // The jobs this file queued (no worker runs here): waiting in BullMQ, queued in Postgres.
    const queued = Number(/^graft_fine_tunes\{status="queued"\} (\d+)$/m.exec(text)?.[1]);
    assert.ok(queued >= 3, text);
    assert.equal(Number(/^graft_queue_jobs\{state="waiting"\} (\d+)$/m.exec(text)?.[1]), queued);
    assert.match(text, /^graft_fine_tunes\{status="succeeded"\} 0$/m);
    assert.match(text, /^graft_workers\{accelerator="gpu",backend="node-gpu"\} 1$/m);
    assert.match(text, /^process_resident_memory_bytes \d+/m);
    await withdrawWorker(api.app.redis, env.QUEUE_PREFIX, 'gpu-m');
  });
});

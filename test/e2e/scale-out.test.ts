/**
 * Scale-out on S3 storage: the API and two worker processes each with their own, empty local
 * directory (as on separate hosts). Every job runs exactly once, both workers take work, and
 * every model downloads through the API (streamed, or as a redirect to a presigned URL).
 * Routing: worker-a advertises a GPU (WORKER_ACCELERATOR=gpu; this machine has none, so it trains
 * on wasm, but it claims the capability the routing reads), worker-b is a CPU worker; jobs that
 * require or refuse a GPU run only where they should, and one no worker can run waits, then cancels.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import type { Worker } from '@graft/contracts';
import { createTestEnv, s3Settings, type TestEnv } from '../helpers/env.ts';
import { startApi, startWorker, waitFor, type WorkerProcess } from '../helpers/processes.ts';

const SAMPLE = fileURLToPath(new URL('../../samples/digits-5-9.zip', import.meta.url));

let env: TestEnv & Record<string, string>;
let api: Awaited<ReturnType<typeof startApi>>;
const workers: WorkerProcess[] = [];
let datasetId: string;
const dirs = { api: '', a: '', b: '' };

before(async () => {
  const base = await createTestEnv('scaleout');
  env = { ...base, ...s3Settings('scaleout') };
  for (const k of Object.keys(dirs) as (keyof typeof dirs)[]) {
    dirs[k] = join(base.STORAGE_DIR, k);
    mkdirSync(dirs[k]);
  }
  api = await startApi({ ...env, STORAGE_DIR: dirs.api });
  for (const [name, dir, accelerator] of [['worker-a', dirs.a, 'gpu'], ['worker-b', dirs.b, 'cpu']] as const) {
    workers.push(await startWorker({ ...env, STORAGE_DIR: dir }, { WORKER_ID: name, WORKER_METRICS_PORT: '0', WORKER_ACCELERATOR: accelerator }));
  }
  const res = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', SAMPLE);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  datasetId = res.body.id;
});
after(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await api?.close();
});

const get = async (path: string) => (await request(api.url).get(path)).body;
const finished = (id: string) =>
  waitFor(`job ${id} to finish`, async () => {
    const job = await get(`/v1/fine-tunes/${id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : null;
  }, 240_000, 250);
const quickJob = (extra: Record<string, unknown> = {}) => ({
  baseModel: 'bm_mnist_cnn', dataset: datasetId, seed: 7, earlyStopping: false, hyperparameters: { epochs: 2, batchSize: 32 }, ...extra,
});

describe('two workers on S3 storage, each with its own empty directory', () => {
  const ids: string[] = [];

  test('every job runs exactly once and both workers take work', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await request(api.url).post('/v1/fine-tunes').send(quickJob({ metadata: { n: String(i) } }));
      assert.equal(res.status, 201, JSON.stringify(res.body));
      ids.push(res.body.id);
    }
    const ranOn = new Map<string, string>();
    for (const id of ids) {
      const job = await finished(id);
      assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
      const { data: events } = await get(`/v1/fine-tunes/${id}/events?limit=100`);
      const starts = events.filter((e: { type: string; data: { status?: string } }) => e.type === 'status' && e.data?.status === 'running');
      assert.equal(starts.length, 1, `job ${id} started ${starts.length} times`);
      ranOn.set(id, starts[0].data.worker);
    }
    assert.deepEqual(new Set(ranOn.values()), new Set(['worker-a', 'worker-b']), `jobs ran on ${JSON.stringify([...ranOn])}`);
    // Nothing was written to the API's or the workers' directories but staging and caches.
    assert.deepEqual(readdirSync(dirs.api).filter((n) => !['tmp'].includes(n)), []);
    for (const d of [dirs.a, dirs.b]) assert.deepEqual(readdirSync(d).filter((n) => !['tmp', 'pulled', 'cache', 'jobs'].includes(n)), []);
  });

  test('GET /v1/workers lists both with what they advertise and, while a job runs, what they run', async () => {
    const { data } = await get('/v1/workers');
    assert.deepEqual(data.map((w: Worker) => [w.id, w.capabilities.accelerator, w.capabilities.backend]), [['worker-a', 'gpu', 'wasm'], ['worker-b', 'cpu', 'wasm']]);
    for (const w of data as Worker[]) {
      assert.ok(w.capabilities.memoryBytes > 0 && w.capabilities.memoryPerJobBytes === w.capabilities.memoryBytes);
      assert.ok(['idle', 'busy'].includes(w.status));
    }
    const res = await request(api.url).post('/v1/fine-tunes').send(quickJob({ hyperparameters: { epochs: 4, batchSize: 16 } }));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const seen = await waitFor('the job in a worker\'s running list', async () => {
      const { data: now } = await get('/v1/workers');
      return (now as Worker[]).find((w) => w.running.some((r) => r.fineTune === res.body.id) && w.status === 'busy') ?? null;
    }, 60_000, 50);
    const job = await finished(res.body.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    const { data: events } = await get(`/v1/fine-tunes/${res.body.id}/events?limit=100`);
    assert.equal(events.find((e: { type: string; data: { status?: string } }) => e.type === 'status' && e.data?.status === 'running').data.worker, seen.id);
    await waitFor('the worker to be idle again', async () => ((await get('/v1/workers')).data as Worker[]).every((w) => w.running.length === 0), 10_000, 100);
  });

  test('a job that requires a GPU runs only on the GPU worker, one that refuses it only on the CPU worker, each once', async () => {
    const submitted: [string, string][] = [];
    for (const [gpu, expected] of [['required', 'worker-a'], ['never', 'worker-b'], ['required', 'worker-a'], ['never', 'worker-b']] as const) {
      const res = await request(api.url).post('/v1/fine-tunes').send(quickJob({ resources: { gpu } }));
      assert.equal(res.status, 201, JSON.stringify(res.body));
      submitted.push([res.body.id, expected]);
    }
    for (const [id, expected] of submitted) {
      const job = await finished(id);
      assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
      const { data: events } = await get(`/v1/fine-tunes/${id}/events?limit=100`);
      const starts = events.filter((e: { type: string; data: { status?: string } }) => e.type === 'status' && e.data?.status === 'running');
      assert.deepEqual(starts.map((e: { data: { worker: string } }) => e.data.worker), [expected], `${id} (${job.resources.gpu})`);
    }
  });

  test('a job no live worker can run waits in the queue (said once, in an event), and cancels from there', async () => {
    const res = await request(api.url).post('/v1/fine-tunes').send(quickJob({ resources: { gpu: 'required', memoryMB: 1_048_576 } }));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = res.body.id;
    await waitFor('the waiting_for_worker event', async () => {
      const { data: events } = await get(`/v1/fine-tunes/${id}/events?limit=100`);
      return events.some((e: { type: string }) => e.type === 'waiting_for_worker');
    }, 30_000, 200);
    await new Promise((r) => setTimeout(r, 3_000)); // several more hand-backs
    const job = await get(`/v1/fine-tunes/${id}`);
    assert.equal(job.status, 'queued');
    const { data: events } = await get(`/v1/fine-tunes/${id}/events?limit=100`);
    assert.deepEqual(events.map((e: { type: string }) => e.type), ['status', 'waiting_for_worker']);
    assert.match(events[1].message, /a GPU worker with 1048576 MiB per job/);
    const cancel = await request(api.url).post(`/v1/fine-tunes/${id}/cancel`);
    assert.ok([200, 202].includes(cancel.status), JSON.stringify(cancel.body));
    const ended = await finished(id);
    assert.equal(ended.status, 'cancelled');
  });

  test('each worker serves /healthz and Prometheus /metrics on its own port: jobs by outcome, duration, epochs/s and images/s by backend, trainer memory', async () => {
    for (const w of workers) {
      const port = Number(/"port":(\d+)[^\n]*"worker http listening"/.exec(w.output())?.[1]);
      assert.ok(port > 0, 'the worker logs its metrics port');
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(health.status, 200);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
      assert.ok(value(/^graft_worker_jobs_total\{status="succeeded",backend="wasm"\} (\d+)$/m) >= 1, text.slice(0, 2000));
      assert.ok(value(/^graft_job_duration_seconds_count\{status="succeeded",backend="wasm"\} (\d+)$/m) >= 1);
      assert.ok(value(/^graft_training_epochs_total\{backend="wasm",phase="head"\} (\d+)$/m) >= 2);
      assert.ok(value(/^graft_training_epochs_per_second\{backend="wasm"\} ([\d.e+-]+)$/m) > 0);
      assert.ok(value(/^graft_training_examples_per_second\{backend="wasm",unit="images"\} ([\d.e+-]+)$/m) > 0);
      // A training process (Node, tfjs, wasm) peaks well above 50 MB.
      assert.ok(value(/^graft_trainer_peak_resident_memory_bytes\{backend="wasm",unit="images"\} ([\d.e+-]+)$/m) > 50e6);
      assert.match(text, /^graft_worker_running_jobs 0$/m);
    }
  });

  test('models and checkpoints download through the API from the bucket', async () => {
    for (const id of ids) {
      const job = await get(`/v1/fine-tunes/${id}`);
      const res = await request(api.url).get(job.model.url).buffer(true).parse((r, cb) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => cb(null, Buffer.concat(chunks)));
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], 'application/zip');
      assert.equal((res.body as Buffer).length, job.model.bytes);
      assert.equal((res.body as Buffer).subarray(0, 2).toString(), 'PK');
    }
    const { data: cks } = await get(`/v1/fine-tunes/${ids[0]}/checkpoints`);
    assert.ok(cks.length >= 1);
    const ck = await request(api.url).get(`/v1/fine-tunes/${ids[0]}/checkpoints/${cks[0].id}/model`);
    assert.equal(ck.status, 200);
  });

  test('with presigned downloads on, the download answers a redirect to a signed URL that serves the model', async () => {
    const presigning = await startApi({ ...env, STORAGE_DIR: dirs.api }, { S3_PRESIGNED_DOWNLOADS: 'true', S3_PRESIGN_EXPIRES_SECONDS: '120' });
    try {
      const job = await get(`/v1/fine-tunes/${ids[0]}`);
      const res = await fetch(`${presigning.url}${job.model.url}`, { redirect: 'manual' });
      assert.equal(res.status, 302);
      const location = res.headers.get('location')!;
      assert.match(location, new RegExp(`^${env.S3_ENDPOINT}/.*X-Amz-Signature=`));
      const model = await fetch(location);
      assert.equal(model.status, 200);
      assert.equal((await model.arrayBuffer()).byteLength, job.model.bytes);
    } finally {
      await presigning.close();
    }
  });

  test('a fine-tune can be the base of the next job on another host (its model is pulled from the bucket)', async () => {
    const res = await request(api.url).post('/v1/fine-tunes').send(quickJob({ baseModel: ids[0] }));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const job = await finished(res.body.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  });
});

/**
 * The client against the real API (on a port), a worker process, Postgres and Redis: the bundled
 * sample uploaded, a job created, followed to its end with progress and every event, its metrics,
 * checkpoints and model downloaded; typed errors; idempotent creates; deletes.
 */
import assert from 'node:assert/strict';
import { openAsBlob } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Graft, GraftApiError, GraftConnectionError, type FineTune, type FineTuneEvent } from '@graft/client';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { startApi, startWorker, type WorkerProcess } from '../../../test/helpers/processes.ts';
import { zipEntryNames } from '../../../test/helpers/zip-read.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;
let graft: Graft;

before(async () => {
  env = await createTestEnv('client');
  api = await startApi(env);
  worker = await startWorker(env);
  graft = new Graft({ baseUrl: api.url });
});
after(async () => {
  await worker?.stop();
  await api?.close();
});

describe('@graft/client on a real server and worker', () => {
  test('uploads the sample, fine-tunes, follows the job to its end and downloads the model', async () => {
    const dataset = await graft.datasets.upload({ task: 'image-classification', file: await openAsBlob(SAMPLE), filename: 'digits-5-9.zip' });
    assert.equal(dataset.task, 'image-classification');
    assert.equal(dataset.name, 'digits-5-9.zip');
    assert.deepEqual(dataset.classes.map((c) => c.name), ['eight', 'five', 'nine', 'seven', 'six']);
    assert.equal((await graft.datasets.retrieve(dataset.id)).id, dataset.id);
    assert.ok((await graft.datasets.list({ limit: 5 })).data.some((d) => d.id === dataset.id));

    const bases = await graft.baseModels.list({ limit: 100 });
    assert.ok(bases.data.some((b) => b.id === 'bm_mnist_cnn'));
    assert.equal((await graft.baseModels.retrieve('bm_mnist_cnn')).task, 'image-classification');

    const job = await graft.fineTunes.create({
      baseModel: 'bm_mnist_cnn', dataset: dataset.id, seed: 7, earlyStopping: false, hyperparameters: { epochs: 4, batchSize: 16, learningRate: 0.003 },
    });
    assert.equal(job.status, 'queued');
    assert.equal(job.hyperparameters.epochs, 4);

    // Followed over the live feed; a second follower polls (what an older server allows).
    const progress: FineTune[] = [];
    const events: FineTuneEvent[] = [];
    const polled: FineTuneEvent[] = [];
    const [done, donePolling] = await Promise.all([
      graft.fineTunes.waitUntilDone(job.id, { onProgress: (j) => progress.push(j), onEvent: (e) => events.push(e), timeoutMs: 180_000 }),
      graft.fineTunes.waitUntilDone(job.id, { transport: 'poll', onEvent: (e) => polled.push(e), pollIntervalMs: 200, timeoutMs: 180_000 }),
    ]);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(donePolling, done);
    assert.deepEqual(done, await graft.fineTunes.retrieve(job.id));
    assert.ok(progress.length >= 2, `progress reported ${progress.length} times`);
    assert.equal(progress.at(-1)!.status, 'succeeded');
    // Progress within epochs (batches), not only per epoch, and the latest metrics as they come.
    assert.ok(progress.some((j) => j.status === 'running' && j.progress.batch > 0), 'batch progress');
    assert.deepEqual([...new Set(progress.filter((j) => j.metrics).map((j) => j.metrics!.epoch))], [1, 2, 3, 4]);

    // Every event once, in order: the same list the API pages through.
    const listed: FineTuneEvent[] = [];
    let after: string | undefined;
    do {
      const page = await graft.fineTunes.events(job.id, { limit: 7, after });
      listed.push(...page.data);
      after = page.nextCursor ?? undefined;
    } while (after);
    assert.deepEqual(events.map((e) => e.id), listed.map((e) => e.id));
    assert.deepEqual(polled.map((e) => e.id), listed.map((e) => e.id));
    assert.equal(events[0]!.message, 'Job queued');
    assert.match(events.at(-1)!.message, /^Job succeeded/);
    assert.equal(events.filter((e) => e.type === 'epoch').length, 4);

    // A second stream of the ended job replays what follows a given event, then ends.
    const tail: string[] = [];
    for await (const e of graft.fineTunes.stream(job.id, { after: events[2]!.id })) tail.push(e.id);
    assert.deepEqual(tail, events.slice(3).map((e) => e.id));

    // A feed cut after a few messages resumes with Last-Event-ID: every event once, in order.
    let cuts = 0;
    const flaky = new Graft({
      baseUrl: api.url,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (!res.headers.get('content-type')?.startsWith('text/event-stream') || cuts >= 3) return res;
        // Cut mid-message after 600, 1200, 1800 bytes.
        let budget = 600 * ++cuts;
        const reader = res.body!.getReader();
        const body = new ReadableStream<Uint8Array>({
          async pull(c) {
            const { done, value } = await reader.read();
            if (done) return c.close();
            c.enqueue(value.subarray(0, budget));
            budget -= value.length;
            if (budget <= 0) {
              await reader.cancel();
              c.error(new TypeError('terminated', { cause: { code: 'ECONNRESET' } }));
            }
          },
        });
        return new Response(body, { status: res.status, headers: res.headers });
      },
    });
    const resumed: string[] = [];
    const messages: string[] = [];
    for await (const m of flaky.fineTunes.feed(job.id)) {
      messages.push(`${m.type}:${m.id}`);
      if (m.type === 'event') resumed.push(m.data.id);
    }
    assert.equal(cuts, 3);
    assert.deepEqual(resumed, listed.map((e) => e.id));
    assert.equal(new Set(messages).size, messages.length, 'no message twice');
    assert.equal(messages.at(-1), 'end:null');

    const { data: metrics } = await graft.fineTunes.metrics(job.id);
    assert.deepEqual(metrics.map((m) => m.epoch), [1, 2, 3, 4]);
    const { data: checkpoints } = await graft.fineTunes.checkpoints(job.id);
    assert.equal(checkpoints.length, 4);
    assert.equal(checkpoints.filter((c) => c.isBest).length >= 1, true);

    const model = await graft.fineTunes.download(job.id);
    assert.equal(model.filename, `${job.id}.zip`);
    const bytes = await model.bytes();
    assert.equal(bytes.length, done.model!.bytes);
    assert.equal(model.size, bytes.length);
    assert.equal(Buffer.from(bytes.subarray(0, 4)).toString('latin1'), 'PK\x03\x04');
    const ck = await graft.fineTunes.download(job.id, { checkpoint: checkpoints[0]!.id });
    // A head-phase checkpoint is stored as head + base reference (`bytes`, uncompressed); its download is the
    // complete model, assembled: the final model's files, no head-checkpoint manifest.
    const ckBytes = await ck.bytes();
    assert.equal(Buffer.from(ckBytes.subarray(0, 4)).toString('latin1'), 'PK\x03\x04');
    const ckNames = await zipEntryNames(ckBytes);
    for (const name of ['model.json', 'labels.json']) assert.ok(ckNames.includes(name), `${name} in ${ckNames.join(', ')}`);
    assert.ok(!ckNames.includes('checkpoint.json'), `assembled: ${ckNames.join(', ')}`);

    assert.ok((await graft.fineTunes.list({ status: 'succeeded' })).data.some((j) => j.id === job.id));

    // Deleting the job, then its dataset.
    assert.deepEqual(await graft.fineTunes.delete(job.id), { id: job.id, object: 'fine_tune', deleted: true });
    await assert.rejects(graft.fineTunes.retrieve(job.id), (e: unknown) => e instanceof GraftApiError && e.status === 404 && e.code === 'fine_tune_not_found');
    assert.deepEqual(await graft.datasets.delete(dataset.id), { id: dataset.id, object: 'dataset', deleted: true });
  });

  test('errors are typed: status, code and the field at fault', async () => {
    const err = await graft.fineTunes.create({ baseModel: 'bm_nope', dataset: 'ds_nope' }).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof GraftApiError);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'base_model_not_found');
    assert.equal(err.param, 'baseModel');
    assert.equal(err.request, 'POST /v1/fine-tunes');

    const bad = await graft.fineTunes.create({ baseModel: 'bm_mnist_cnn', dataset: 'ds_x', hyperparameters: { epochs: 0 } }).then(() => null, (e: unknown) => e);
    assert.ok(bad instanceof GraftApiError);
    assert.deepEqual([bad.status, bad.code, bad.param], [400, 'invalid_request', 'hyperparameters.epochs']);

    const notZip = await graft.datasets.upload({ task: 'image-classification', file: new TextEncoder().encode('not a zip') }).then(() => null, (e: unknown) => e);
    assert.ok(notZip instanceof GraftApiError);
    assert.equal(notZip.code, 'invalid_archive');

    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const offline = new Graft({ baseUrl: `http://127.0.0.1:${port}`, maxRetries: 1 });
    await assert.rejects(offline.fineTunes.list(), (e: unknown) => e instanceof GraftConnectionError && /ECONNREFUSED/.test(e.message));
  });

  test('create sends an Idempotency-Key by default; the same key replays the same job', async () => {
    const dataset = await graft.datasets.upload({ task: 'image-classification', file: await readFile(SAMPLE) });
    assert.equal(dataset.name, 'dataset.zip');
    const body = { baseModel: 'bm_mnist_cnn', dataset: dataset.id, hyperparameters: { epochs: 500, batchSize: 2 } };
    const seen: string[] = [];
    const spy = new Graft({
      baseUrl: api.url,
      fetch: (input, init) => {
        const key = new Headers(init?.headers).get('idempotency-key');
        if (key) seen.push(key);
        return fetch(input, init);
      },
    });
    const a = await spy.fineTunes.create(body);
    const b = await spy.fineTunes.create(body);
    assert.notEqual(a.id, b.id, 'two calls are two jobs');
    assert.equal(seen.length, 2);
    assert.notEqual(seen[0], seen[1]);
    const c = await spy.fineTunes.create(body, { idempotencyKey: 'fixed-key-1' });
    const d = await spy.fineTunes.create(body, { idempotencyKey: 'fixed-key-1' });
    assert.equal(c.id, d.id);
    const reused = await spy.fineTunes.create({ ...body, seed: 3 }, { idempotencyKey: 'fixed-key-1' }).then(() => null, (e: unknown) => e);
    assert.ok(reused instanceof GraftApiError && reused.code === 'idempotency_key_reused' && reused.status === 409);

    // The answer to a create is lost after the server made the job: the retry replays it, no second job.
    let calls = 0;
    const lossy = new Graft({
      baseUrl: api.url,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (++calls === 1) {
          await res.body?.cancel();
          throw new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } });
        }
        return res;
      },
    });
    const before = (await graft.fineTunes.list({ limit: 100 })).data.length;
    const e = await lossy.fineTunes.create(body);
    assert.equal(calls, 2);
    assert.equal((await graft.fineTunes.list({ limit: 100 })).data.length, before + 1);
    assert.equal((await graft.fineTunes.retrieve(e.id)).id, e.id);

    for (const id of [a.id, b.id, c.id, e.id]) {
      const cancelled = await graft.fineTunes.cancel(id);
      assert.ok(['running', 'cancelled'].includes(cancelled.status));
    }
    for (const id of [a.id, b.id, c.id, e.id]) assert.equal((await graft.fineTunes.waitUntilDone(id, { timeoutMs: 60_000, pollIntervalMs: 200 })).status, 'cancelled');
    const refused = await graft.fineTunes.cancel(a.id);
    assert.equal(refused.status, 'cancelled');
  });
});

/**
 * Faults, as a user sees them: a Postgres and a Redis of this test's own (other ports, temporary
 * directories; the shared ones are never touched) are stopped, frozen (SIGSTOP) and restarted
 * without their data while the API answers and worker processes train. Every job ends in a
 * truthful terminal state or goes on; requests that hit a missing dependency answer 503 with
 * Retry-After within a bound; /readyz always answers within 2 s.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor, type WorkerProcess } from '../helpers/processes.ts';
import { FaultStack } from './stack.ts';

/** Short bounds so the suite stays quick; the defaults are the same mechanisms with longer times. */
const BOUNDS = {
  PG_CONNECT_TIMEOUT_MS: '1000',
  PG_STATEMENT_TIMEOUT_MS: '2000',
  REDIS_COMMAND_TIMEOUT_MS: '1000',
  RECONCILE_INTERVAL_MS: '1000',
  JOB_HEARTBEAT_TTL_MS: '2000',
};
/** A request that hits a dead or frozen dependency must be answered within this. */
const ANSWER_WITHIN_MS = 5_000;

const stack = new FaultStack('faults', BOUNDS);
const { pg, redis, workers, call } = stack;
before(() => stack.start());
after(() => stack.destroy());

const job = async (id: string) => (await call('GET', `/v1/fine-tunes/${id}`)).body;
const finished = (id: string, timeoutMs = 120_000) =>
  waitFor(`job ${id} to finish`, async () => {
    const j = await job(id).catch(() => null);
    return j && ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
  }, timeoutMs, 250);
const spec = (extra: Record<string, unknown> = {}) => ({
  baseModel: 'bm_mnist_cnn', dataset: stack.datasetId, seed: 3, earlyStopping: false, hyperparameters: { epochs: 4, batchSize: 8 }, ...extra,
});
const epochsOf = async (id: string) => ((await call('GET', `/v1/fine-tunes/${id}/metrics`)).body.data as { epoch: number }[]).map((m) => m.epoch);
const eventsOf = async (id: string) => (await call('GET', `/v1/fine-tunes/${id}/events?limit=100`)).body.data as { type: string; message: string; data: any }[];

const newWorker = (name: string, extra: Record<string, string> = {}): Promise<WorkerProcess> => stack.newWorker(name, { WORKER_LOCK_MS: '4000', ...extra });

function assertUnavailable(r: Awaited<ReturnType<typeof call>>, what: string) {
  assert.equal(r.status, 503, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
  assert.equal(r.body.error.code, 'service_unavailable');
  assert.ok(Number(r.headers.get('retry-after')) > 0, `${what}: Retry-After`);
  assert.ok(r.ms < ANSWER_WITHIN_MS, `${what}: answered after ${r.ms} ms`);
}

async function assertReadyz(down: 'postgres' | 'redis' | null) {
  const r = await call('GET', '/readyz');
  assert.ok(r.ms <= 2_000, `/readyz took ${r.ms} ms`);
  assert.equal(r.status, down ? 503 : 200, JSON.stringify(r.body));
  if (down) {
    assert.match(r.body.checks[down], /^error/);
    assert.equal(r.body.checks[down === 'postgres' ? 'redis' : 'postgres'], 'ok');
  }
}

describe('dependencies down or frozen: bounded answers', () => {
  test('Postgres stopped, then frozen: data routes answer 503 + Retry-After, /readyz names it within 2 s', async () => {
    await pg.shutdown();
    try {
      assertUnavailable(await call('GET', '/v1/fine-tunes'), 'list (stopped)');
      assertUnavailable(await call('POST', '/v1/fine-tunes', spec(), { 'idempotency-key': 'pg-down' }), 'create (stopped)');
      await assertReadyz('postgres');
    } finally {
      await pg.start();
    }
    assert.equal((await call('GET', '/v1/fine-tunes')).status, 200);
    pg.freeze();
    try {
      assertUnavailable(await call('GET', `/v1/datasets/${stack.datasetId}`), 'get (frozen)');
      await assertReadyz('postgres');
    } finally {
      pg.thaw();
    }
    await waitFor('Postgres to answer again', async () => (await call('GET', '/v1/fine-tunes')).status === 200, 20_000, 250);
    await assertReadyz(null);
  });

  test('Redis stopped, then frozen: a create answers 503 and its Idempotency-Key is not used up', async () => {
    for (const fault of ['stopped', 'frozen'] as const) {
      const key = `redis-${fault}`;
      if (fault === 'stopped') await redis.stop('SIGKILL');
      else redis.freeze();
      try {
        assertUnavailable(await call('POST', '/v1/fine-tunes', spec(), { 'idempotency-key': key }), `create (Redis ${fault})`);
        await assertReadyz('redis');
      } finally {
        if (fault === 'stopped') await redis.start();
        else redis.thaw();
      }
      // The same key, once Redis is back: a new job (201), not a replay of a failed one.
      const again = await waitFor('Redis to take jobs again', async () => {
        const r = await call('POST', '/v1/fine-tunes', spec({ hyperparameters: { epochs: 1, batchSize: 8 } }), { 'idempotency-key': key });
        return r.status === 503 ? null : r;
      }, 20_000, 250);
      assert.equal(again.status, 201, JSON.stringify(again.body));
      assert.equal(again.body.status, 'queued');
      // No worker runs yet: cancel it so later tests start clean.
      assert.equal((await call('POST', `/v1/fine-tunes/${again.body.id}/cancel`)).body.status, 'cancelled');
    }
  });
});

describe('faults during jobs: every job ends truthfully or goes on', () => {
  test('Redis restarted without its data: queued jobs are enqueued again and run', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await call('POST', '/v1/fine-tunes', spec({ hyperparameters: { epochs: 1, batchSize: 16 } }));
      assert.equal(r.status, 201, JSON.stringify(r.body));
      ids.push(r.body.id);
    }
    await redis.restart(); // every key is gone, the queued jobs with them
    await newWorker('worker-a');
    for (const id of ids) {
      const j = await finished(id);
      assert.equal(j.status, 'succeeded', JSON.stringify(j.error));
    }
  });

  test('Postgres stopped for 8 s mid-job: the job succeeds with every epoch and checkpoint recorded', async () => {
    const r = await call('POST', '/v1/fine-tunes', spec({ hyperparameters: { epochs: 6, batchSize: 4 } }));
    const id = r.body.id;
    await waitFor('the first epoch', async () => (await epochsOf(id)).length >= 1, 120_000, 200);
    await pg.shutdown();
    await new Promise((res) => setTimeout(res, 8_000));
    await pg.start();
    const j = await finished(id);
    assert.equal(j.status, 'succeeded', JSON.stringify(j.error));
    assert.deepEqual(await epochsOf(id), [1, 2, 3, 4, 5, 6]);
    const cks = (await call('GET', `/v1/fine-tunes/${id}/checkpoints`)).body.data as { epoch: number }[];
    assert.deepEqual(cks.map((c) => c.epoch).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6]);
    const epochEvents = (await eventsOf(id)).filter((e) => e.type === 'epoch');
    assert.equal(epochEvents.length, 6);
  });

  test('worker SIGKILLed mid-job: the job is re-queued and finishes on another worker', async () => {
    const r = await call('POST', '/v1/fine-tunes', spec({ hyperparameters: { epochs: 3, batchSize: 4 } }));
    const id = r.body.id;
    await waitFor('the job to run', async () => (await job(id)).status === 'running', 60_000, 100);
    const victim = workers.shift()!;
    await victim.stop('SIGKILL');
    await newWorker('worker-b');
    const j = await finished(id);
    assert.equal(j.status, 'succeeded', JSON.stringify(j.error));
    const events = await eventsOf(id);
    assert.ok(events.some((e) => e.type === 'status' && e.data?.status === 'queued' && e.data?.code === 'worker_lost'), 'a re-queued event');
    assert.deepEqual(await epochsOf(id), [1, 2, 3]);
  });

  test('cancel of a running job whose worker is gone reaches cancelled', async () => {
    const r = await call('POST', '/v1/fine-tunes', spec({ hyperparameters: { epochs: 50, batchSize: 4 } }));
    const id = r.body.id;
    await waitFor('the job to run', async () => (await job(id)).status === 'running', 60_000, 100);
    const victim = workers.shift()!;
    await victim.stop('SIGKILL');
    const c = await call('POST', `/v1/fine-tunes/${id}/cancel`);
    assert.equal(c.status, 202, JSON.stringify(c.body));
    const j = await finished(id, 30_000);
    assert.equal(j.status, 'cancelled');
  });

  test('Postgres away longer than the checkpoint deadline: the job fails with checkpoint_unrecorded instead of hanging', async () => {
    await newWorker('worker-c', { CHECKPOINT_RECORD_DEADLINE_MS: '2000' });
    // As many epochs as a job may ask for: training must still be going on when Postgres goes away
    // (an epoch of this sample takes tens of milliseconds once the base's activations are cached).
    const r = await call('POST', '/v1/fine-tunes', spec({ hyperparameters: { epochs: 500, batchSize: 4 } }));
    const id = r.body.id;
    await waitFor('the first epoch', async () => (await epochsOf(id)).length >= 1, 120_000, 200);
    await pg.shutdown();
    await new Promise((res) => setTimeout(res, 10_000));
    await pg.start();
    const j = await finished(id, 60_000).catch(async (err: Error) => {
      const now = await job(id);
      const last = (await eventsOf(id)).slice(-8).map((e) => `${e.type}: ${e.message}`);
      throw new Error(`${err.message}; the job: ${now.status} at epoch ${now.epoch}; its last events: ${last.join(' | ')}`);
    });
    assert.equal(j.status, 'failed');
    assert.equal(j.error.code, 'checkpoint_unrecorded', JSON.stringify(j.error));
    // The epochs trained before the failure are all there (buffered while Postgres was away).
    const epochs = await epochsOf(id);
    assert.deepEqual(epochs, Array.from({ length: epochs.length }, (_, i) => i + 1));
  });

  test('SIGTERM hands the job back: the worker exits 0 within its grace period, the job continues on the next worker', async () => {
    const grace = 4_000;
    for (const w of workers.splice(0)) await w.stop('SIGKILL'); // only these two workers take the job
    const leaving = await newWorker('worker-d', { WORKER_SHUTDOWN_GRACE_MS: String(grace) });
    const r = await call('POST', '/v1/fine-tunes', spec({ hyperparameters: { epochs: 30, batchSize: 4 } }));
    const id = r.body.id;
    await waitFor('the first epoch', async () => (await epochsOf(id)).length >= 1, 120_000, 200);
    const asked = Date.now();
    const code = await leaving.stop('SIGTERM');
    const tookMs = Date.now() - asked;
    workers.splice(workers.indexOf(leaving), 1);
    assert.equal(code, 0, leaving.output().slice(-2000));
    assert.ok(tookMs <= grace + 3_000, `the worker took ${tookMs} ms to leave (grace ${grace} ms)`);
    // Back in the queue, not failed: the row says so and an event says why.
    const back = await job(id);
    assert.equal(back.status, 'queued', JSON.stringify(back));
    const events = await eventsOf(id);
    assert.ok(events.some((e) => e.type === 'status' && e.data?.status === 'queued' && e.data?.code === 'worker_shutdown'), 'a re-queued event');
    // The next worker runs it (shortened so the test stays quick: cancel once it has started again).
    await newWorker('worker-e');
    await waitFor('the job to run again', async () => (await job(id)).status === 'running', 60_000, 100);
    const started = (await eventsOf(id)).filter((e) => e.type === 'status' && e.data?.status === 'running');
    assert.deepEqual(started.map((e) => e.data.worker), ['worker-d', 'worker-e']);
    assert.equal((await call('POST', `/v1/fine-tunes/${id}/cancel`)).status, 202);
    assert.equal((await finished(id, 30_000)).status, 'cancelled');
  });
});

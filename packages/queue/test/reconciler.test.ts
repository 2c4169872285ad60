/**
 * The reconciler, one pass at a time, on the real Postgres and Redis (a database and a key prefix
 * of this test's own): what it does with queued rows the queue lost, running rows whose worker's
 * heartbeat is gone, and cancels nobody could deliver.
 */
import { normalizeFineTune } from '@graft/contracts';
import { createDb, datasets, fineTunes, isDependencyError, retry, transitions, type Db } from '@graft/db';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { createTestEnv } from '../../../test/helpers/env.ts';
import { beatJob, createFineTuneQueue, createRedis, reconcileOnce, type ReconcileReport } from '../src/index.ts';

let db: Db;
let redis: ReturnType<typeof createRedis>;
let queue: ReturnType<typeof createFineTuneQueue>;
let prefix: string;
let datasetId: string;
const TTL = 300;

before(async () => {
  const env = await createTestEnv('reconciler');
  prefix = env.QUEUE_PREFIX;
  db = createDb(env.DATABASE_URL);
  redis = createRedis(env.REDIS_URL, { blocking: true });
  queue = createFineTuneQueue({ redisUrl: env.REDIS_URL, prefix }, redis);
  const ds = await datasets.createDataset(db, {
    name: 'd', task: 'image-classification', storageKey: 'datasets/x.zip', bytes: 10, sha256: 'ab', imageCount: 2,
    classes: [{ name: 'a', images: 1 }, { name: 'b', images: 1 }], skipped: [],
  });
  datasetId = ds.id;
});
after(async () => {
  await queue.close();
  redis.disconnect();
  await db.$disconnect();
});

const deps = () => ({ db, redis, queue, prefix, heartbeatTtlMs: TTL, queuedGraceMs: 0, log: pino({ level: 'silent' }) });
const newJob = async () =>
  (await fineTunes.createFineTune(db, {
    spec: normalizeFineTune({ baseModel: 'bm_mnist_cnn', dataset: datasetId, hyperparameters: { epochs: 1 } }, { id: 'bm_mnist_cnn', featureLayer: 'features' }, 1),
    requestHash: 'h',
  })).id;
const status = async (id: string) => (await fineTunes.getFineTune(db, id, null))?.status;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const has = (report: ReconcileReport, key: keyof ReconcileReport, id: string) => report[key].includes(id);

describe('reconcileOnce', () => {
  test('a queued job missing from the queue is enqueued again; one already waiting is left alone', async () => {
    const lost = await newJob();
    const waiting = await newJob();
    await queue.add('fine-tune', { fineTuneId: waiting }, { jobId: waiting });
    const report = await reconcileOnce(deps());
    assert.ok(has(report, 'enqueued', lost));
    assert.ok(!has(report, 'enqueued', waiting));
    assert.equal(await (await queue.getJob(lost))?.getState(), 'waiting');
    assert.equal(await status(lost), 'queued');
  });

  test('a queued job whose cancel was asked while the queue was away is cancelled', async () => {
    const id = await newJob();
    await fineTunes.requestCancel(db, id);
    const report = await reconcileOnce(deps());
    assert.ok(has(report, 'cancelled', id));
    assert.equal(await status(id), 'cancelled');
    assert.equal(await queue.getJob(id), undefined);
  });

  test('a running job keeps its worker while the heartbeat lives; without it (seen twice) it is re-queued, then failed after 3 attempts', async () => {
    const id = await newJob();
    assert.equal(await transitions.claim(db, id, { worker: 'w1', restarted: false }), true);
    await beatJob(redis, prefix, id, 'w1', TTL);
    assert.ok(!has(await reconcileOnce(deps()), 'requeued', id));
    await sleep(TTL + 50); // heartbeat expired: first look only marks it
    assert.ok(!has(await reconcileOnce(deps()), 'requeued', id));
    assert.equal(await status(id), 'running');
    await sleep(TTL + 50);
    assert.ok(has(await reconcileOnce(deps()), 'requeued', id));
    assert.equal(await status(id), 'queued');
    assert.equal(await (await queue.getJob(id))?.getState(), 'waiting');
    const events = await db.event.findMany({ where: { fineTuneId: id }, orderBy: { seq: 'asc' } });
    assert.deepEqual(events.at(-1)?.data, { status: 'queued', code: 'worker_lost' });

    // Two more attempts lost the same way: the third loss fails it.
    for (const attempt of [2, 3]) {
      assert.equal(await transitions.claim(db, id, { worker: `w${attempt}`, restarted: false }), true);
      await reconcileOnce(deps());
      await sleep(TTL + 50);
      const report = await reconcileOnce(deps());
      assert.ok(has(report, attempt === 3 ? 'failed' : 'requeued', id), `attempt ${attempt}: ${JSON.stringify(report)}`);
    }
    const row = await fineTunes.getFineTune(db, id, null);
    assert.equal(row?.status, 'failed');
    assert.equal((row?.error as { code: string }).code, 'worker_lost');
  });

  test('a running job with no worker whose cancel was asked ends cancelled', async () => {
    const id = await newJob();
    await transitions.claim(db, id, { worker: 'w1', restarted: false });
    await fineTunes.requestCancel(db, id);
    await reconcileOnce(deps());
    await sleep(TTL + 50);
    assert.ok(has(await reconcileOnce(deps()), 'cancelled', id));
    assert.equal(await status(id), 'cancelled');
  });
});

describe('dependency errors and retry', () => {
  test('tells a dependency that did not answer from other errors', () => {
    for (const e of [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      new Error('Query read timeout'),
      new Error('Connection terminated due to connection timeout'),
      Object.assign(new Error("Can't reach database server at 127.0.0.1:5432"), { code: 'P1001' }),
      Object.assign(new Error('Transaction API error: Unable to start a transaction in the given time.'), { code: 'P2028' }),
      new Error('Command timed out'),
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      new Error('wrapped', { cause: Object.assign(new Error('x'), { code: '57P01' }) }),
    ]) assert.equal(isDependencyError(e), true, e.message);
    for (const e of [new Error('Unique constraint failed'), Object.assign(new Error('x'), { code: 'P2002' }), new TypeError('x is undefined')]) {
      assert.equal(isDependencyError(e), false, e.message);
    }
  });

  test('retries a dependency error until it succeeds; gives up on other errors after their attempts', async () => {
    let n = 0;
    const value = await retry(async () => {
      if (++n < 4) throw new Error('Command timed out');
      return 'ok';
    }, { what: 't', firstWaitMs: 5, maxWaitMs: 10 });
    assert.equal(value, 'ok');
    assert.equal(n, 4);
    let m = 0;
    await assert.rejects(retry(async () => {
      m++;
      throw new Error('a bug');
    }, { what: 't', firstWaitMs: 5, otherErrorAttempts: 2 }), /a bug/);
    assert.equal(m, 2);
    await assert.rejects(retry(async () => {
      throw new Error('Command timed out');
    }, { what: 't', firstWaitMs: 20, deadlineMs: 50 }), { name: 'RetryGaveUp' });
  });
});

/**
 * Checkpoint retention on the real Postgres and both storage drivers (a local directory, the run's
 * loopback S3 server): the per-job cap and the pass over ended jobs keep the best and the last,
 * remove the others' rows and files (assembled downloads too), leave running and recent jobs alone,
 * and can run twice, or twice at once, without harm.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { checkpoints, createDb, type Db } from '@graft/db';
import { createStorage, type Storage } from '@graft/storage';
import { loadWorkerConfig } from '../src/config.ts';
import { capJobCheckpoints, pruneEndedJobs } from '../src/retention.ts';
import { createTestEnv, s3Settings, type TestEnv } from '../../../test/helpers/env.ts';

let env: TestEnv;
let db: Db;
const DAY = 24 * 3600_000;

before(async () => {
  env = await createTestEnv('retention');
  db = createDb(env.DATABASE_URL);
  await db.dataset.create({ data: { id: 'ds_r', name: 'r', task: 'image-classification', storageKey: 'datasets/ds_r.zip', bytes: 1n, sha256: 'x', imageCount: 1, classes: [], skipped: [] } });
});
after(async () => {
  await db?.$disconnect();
});

let seq = 0;
async function job(status: 'running' | 'succeeded' | 'failed' | 'cancelled', finishedAgoMs: number | null): Promise<string> {
  const id = `ft_r${++seq}${Math.random().toString(36).slice(2, 6)}`;
  await db.fineTune.create({
    data: {
      id, status, baseModelId: 'bm_mnist_cnn', datasetId: 'ds_r', request: {}, requestHash: id, epochs: 10,
      finishedAt: finishedAgoMs === null ? null : new Date(Date.now() - finishedAgoMs),
    },
  });
  return id;
}

/** Stores a checkpoint file with its resume state (and, when `assembled`, its assembled download) and records its row. */
async function checkpoint(storage: Storage, fineTuneId: string, epoch: number, valLoss: number | null, assembled = false) {
  const id = `ck_${fineTuneId.slice(3)}e${epoch}`;
  const key = `models/${fineTuneId}/checkpoints/${id}.zip`;
  const resumeKey = key.replace(/\.zip$/, '.resume');
  for (const k of assembled ? [key, resumeKey, key.replace(/\.zip$/, '.model.zip')] : [key, resumeKey]) {
    const tmp = storage.tempKey('.zip');
    await storage.writeStream(tmp, Readable.from([Buffer.from(`PK checkpoint ${k}`)]));
    await storage.commit(tmp, k);
  }
  await checkpoints.recordCheckpoint(db, { id, fineTuneId, phase: 'head', epoch, batch: null, valLoss, valAccuracy: null, storageKey: key, bytes: 20, resumeKey });
  // Distinct creation times, in epoch order (the last is the newest).
  await db.checkpoint.update({ where: { id }, data: { createdAt: new Date(Date.now() - 1000 * (100 - epoch)) } });
  return { id, key, resumeKey };
}

const ids = async (fineTuneId: string) => (await checkpoints.listCheckpoints(db, fineTuneId)).map((c) => c.id);
const exists = async (storage: Storage, key: string) => (await storage.size(key)) !== null;

for (const driver of ['local', 's3'] as const) {
  describe(`checkpoint retention (${driver} storage)`, () => {
    let storage: Storage;
    before(async () => {
      const config = loadWorkerConfig({ ...env, STORAGE_DIR: `${env.STORAGE_DIR}/${driver}`, ...(driver === 's3' ? s3Settings(`retention-${driver}`) : {}) });
      storage = createStorage(config);
      await storage.init();
    });

    test('ended jobs past their retention keep their best and their last; files gone, others untouched, twice is harmless', async () => {
      const old = await job('succeeded', 2 * DAY);
      const losses = [0.5, 0.3, 0.4, 0.6, 0.45];
      const cks = [];
      for (const [i, loss] of losses.entries()) cks.push(await checkpoint(storage, old, i + 1, loss, i === 0));
      const failed = await job('failed', 2 * DAY);
      const f1 = await checkpoint(storage, failed, 1, null);
      const f2 = await checkpoint(storage, failed, 2, null);
      const recent = await job('cancelled', 60_000);
      const r = [await checkpoint(storage, recent, 1, 0.2), await checkpoint(storage, recent, 2, 0.3)];
      const running = await job('running', null);
      const run = [await checkpoint(storage, running, 1, 0.2), await checkpoint(storage, running, 2, 0.3), await checkpoint(storage, running, 3, 0.4)];

      const first = await pruneEndedJobs(db, storage, DAY);
      assert.deepEqual(first, { checkpoints: 3 + 1, jobs: 2, resumeStates: 3 });
      assert.deepEqual((await ids(old)).sort(), [cks[1]!.id, cks[4]!.id].sort(), 'the best (0.3) and the last');
      for (const c of [cks[0]!, cks[2]!, cks[3]!]) assert.equal(await exists(storage, c.key), false, `${c.key} removed`);
      assert.equal(await exists(storage, cks[0]!.key.replace(/\.zip$/, '.model.zip')), false, 'its assembled download removed too');
      for (const c of [cks[1]!, cks[4]!]) assert.equal(await exists(storage, c.key), true);
      // An ended job never resumes: the kept checkpoints lose their resume states, the removed ones lost theirs with them.
      for (const c of cks) assert.equal(await exists(storage, c.resumeKey), false, `${c.resumeKey} removed`);
      assert.deepEqual((await checkpoints.listCheckpoints(db, old)).map((c) => c.resumeKey), [null, null]);
      for (const c of [...r, ...run]) assert.equal(await exists(storage, c.resumeKey), true, 'recent and running jobs keep theirs');
      // No validation loss, no best: the last alone.
      assert.deepEqual(await ids(failed), [f2.id]);
      assert.equal(await exists(storage, f1.key), false);
      assert.deepEqual(await ids(recent), r.map((c) => c.id), 'ended too recently: kept');
      assert.deepEqual(await ids(running), run.map((c) => c.id), 'running: kept');

      assert.deepEqual(await pruneEndedJobs(db, storage, DAY), { checkpoints: 0, jobs: 0, resumeStates: 0 }, 'a second pass finds nothing');
      // Two passes at once (two workers): together they remove each checkpoint once, neither fails.
      const again = await job('succeeded', 2 * DAY);
      for (let e = 1; e <= 6; e++) await checkpoint(storage, again, e, 1 - e / 10 + (e === 3 ? -1 : 0));
      const both = await Promise.all([pruneEndedJobs(db, storage, DAY), pruneEndedJobs(db, storage, DAY)]);
      assert.equal(both[0].checkpoints + both[1].checkpoints, 4);
      assert.equal((await ids(again)).length, 2);
    });

    test('the per-job cap keeps the best and the newest, never more than the cap', async () => {
      const id = await job('running', null);
      const made = [];
      for (let e = 1; e <= 7; e++) {
        made.push(await checkpoint(storage, id, e, e === 2 ? 0.1 : 1 - e / 100));
        await capJobCheckpoints(db, storage, id, 3);
        assert.ok((await ids(id)).length <= 3);
      }
      assert.deepEqual((await ids(id)).sort(), [made[1]!.id, made[5]!.id, made[6]!.id].sort(), 'the best (epoch 2) and the two newest');
      for (const c of made.filter((_, i) => ![1, 5, 6].includes(i))) assert.equal(await exists(storage, c.key), false);
      assert.equal(await capJobCheckpoints(db, storage, id, 0), 0, 'cap 0: none');
    });
  });
}

test('MAX_CHECKPOINTS_PER_JOB of 1 is refused (the best and the newest both need a place)', () => {
  assert.throws(() => loadWorkerConfig({ MAX_CHECKPOINTS_PER_JOB: '1' }), /MAX_CHECKPOINTS_PER_JOB/);
});

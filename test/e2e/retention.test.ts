/**
 * Checkpoint retention through a real worker: a job checkpointing every batch keeps no more than
 * MAX_CHECKPOINTS_PER_JOB (the best and the newest among them); once it has ended for
 * CHECKPOINT_RETENTION_MS, the scheduled pass leaves only its best and its last, rows and files,
 * and both still download as models.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../helpers/env.ts';
import { startApi, startWorker, waitFor, type WorkerProcess } from '../helpers/processes.ts';

const SAMPLE = fileURLToPath(new URL('../../samples/digits-5-9.zip', import.meta.url));
const CAP = 4;

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess | undefined;

before(async () => {
  env = await createTestEnv('retention');
  api = await startApi(env);
});
after(async () => {
  await worker?.stop();
  await api?.close();
});

const get = async (path: string) => (await request(api.url).get(path)).body;
interface Ck { id: string; isBest: boolean; epoch: number; batch: number | null; createdAt: string; url: string }
const listCks = async (id: string): Promise<Ck[]> => (await get(`/v1/fine-tunes/${id}/checkpoints`)).data;
/** The checkpoint files in storage (a checkpoint is `ck_….zip`; its assembled download `ck_….model.zip`). */
const storedIds = async (id: string) => {
  const dir = join(env.STORAGE_DIR, 'models', id, 'checkpoints');
  const names = existsSync(dir) ? await readdir(dir) : [];
  return [...new Set(names.filter((n) => n.startsWith('ck_')).map((n) => n.split('.')[0]!))].sort();
};

describe('checkpoint retention', () => {
  test('a job checkpointing every batch keeps at most the cap; after its retention only the best and the last remain, and they download', async () => {
    worker = await startWorker(env, { MAX_CHECKPOINTS_PER_JOB: String(CAP), CHECKPOINT_RETENTION_MS: '0' });
    const ds = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', SAMPLE);
    assert.equal(ds.status, 201, JSON.stringify(ds.body));
    const created = await request(api.url).post('/v1/fine-tunes').send({
      baseModel: 'bm_mnist_cnn', dataset: ds.body.id, seed: 7, earlyStopping: false, checkpointEvery: 1,
      hyperparameters: { epochs: 3, batchSize: 32, learningRate: 0.003 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id: string = created.body.id;
    const job = await waitFor(`job ${id} to end`, async () => {
      const j = await get(`/v1/fine-tunes/${id}`);
      return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
    }, 300_000, 250);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));

    // Every batch was checkpointed (3 epochs of 8 batches), but the job holds only the cap: the best and the newest.
    const capped = await listCks(id);
    assert.equal(capped.length, CAP, JSON.stringify(capped));
    assert.equal(capped.filter((c) => c.isBest).length, 1);
    assert.equal(capped.at(-1)!.epoch, 3, 'the newest checkpoint is kept');
    assert.ok(capped.every((c) => c.batch !== null), 'taken every batch');
    assert.deepEqual(await storedIds(id), capped.map((c) => c.id).sort(), 'no file outlives its row');
    await worker.stop();

    // A worker with retention on prunes the ended job on its scheduled pass.
    worker = await startWorker(env, { MAX_CHECKPOINTS_PER_JOB: String(CAP), CHECKPOINT_RETENTION_MS: '1', RETENTION_INTERVAL_MS: '500', CHECKPOINT_MIN_INTERVAL_MS: '600000' });
    const kept = await waitFor('retention to prune the ended job', async () => {
      const cks = await listCks(id);
      return cks.length < CAP ? cks : null;
    }, 120_000, 250);
    const best = capped.find((c) => c.isBest)!;
    const last = capped.at(-1)!;
    assert.deepEqual(kept.map((c) => c.id).sort(), [...new Set([best.id, last.id])].sort());
    assert.deepEqual(await storedIds(id), kept.map((c) => c.id).sort(), 'the pruned checkpoints\' files are gone');
    for (const c of kept) {
      const res = await request(api.url).get(`/v1/fine-tunes/${id}/checkpoints/${c.id}/model`).buffer(true).parse((r, cb) => {
        const chunks: Buffer[] = [];
        r.on('data', (d: Buffer) => chunks.push(d));
        r.on('end', () => cb(null, Buffer.concat(chunks)));
      });
      assert.equal(res.status, 200);
      assert.equal((res.body as Buffer).subarray(0, 2).toString(), 'PK', 'a zip');
    }
    const pruned = capped.filter((c) => !kept.some((k) => k.id === c.id));
    for (const c of pruned) assert.equal((await request(api.url).get(`/v1/fine-tunes/${id}/checkpoints/${c.id}/model`)).status, 404);
    // The final model is untouched.
    assert.equal((await request(api.url).get(`/v1/fine-tunes/${id}/model`)).status, 200);

    // CHECKPOINT_MIN_INTERVAL_MS: batch checkpoints closer than it to the previous one are not even written.
    const spaced = await request(api.url).post('/v1/fine-tunes').send({
      baseModel: 'bm_mnist_cnn', dataset: ds.body.id, seed: 7, earlyStopping: false, checkpointEvery: 1,
      hyperparameters: { epochs: 2, batchSize: 32, learningRate: 0.003 },
    });
    assert.equal(spaced.status, 201, JSON.stringify(spaced.body));
    const spacedJob = await waitFor('the spaced job to end', async () => {
      const j = await get(`/v1/fine-tunes/${spaced.body.id}`);
      return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
    }, 300_000, 250);
    assert.equal(spacedJob.status, 'succeeded', JSON.stringify(spacedJob.error));
    const only = await listCks(spaced.body.id);
    assert.equal(only.length, 1, 'one checkpoint (the first batch) in 16 batches');
    assert.deepEqual([only[0]!.epoch, only[0]!.batch], [1, 1]);
  });
});

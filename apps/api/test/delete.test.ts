/**
 * DELETE of datasets, registered bases and fine-tunes, without a worker (jobs stay queued, so
 * "in use" is exact): refused with 409 while a job uses them, then the files are gone and the id
 * answers 404. A succeeded job's files are covered end to end in test/e2e.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { colourEntries, writeZip } from '../../../test/helpers/fixtures.ts';
import { startApi } from '../../../test/helpers/processes.ts';

const MNIST_BASE = fileURLToPath(new URL('../../../models/mnist-cnn-0-4/', import.meta.url));

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let fx: string;

before(async () => {
  env = await createTestEnv('delete');
  api = await startApi(env);
  fx = join(env.STORAGE_DIR, 'fx');
  await mkdir(fx, { recursive: true });
});
after(async () => api.close());

async function dataset(name: string): Promise<string> {
  const path = join(fx, `${name}.zip`);
  await writeZip(path, colourEntries(4));
  const res = await request(api.url).post('/v1/datasets').field('task', 'image-classification').field('name', name).attach('file', path);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id;
}
const job = async (body: object) => {
  const res = await request(api.url).post('/v1/fine-tunes').send(body);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id as string;
};
const del = (path: string) => request(api.url).delete(path);
const cancel = async (id: string) => assert.equal((await request(api.url).post(`/v1/fine-tunes/${id}/cancel`)).status, 200);

describe('DELETE /v1/datasets/:id', () => {
  test('is refused while a queued job uses it (as dataset or test set), then removes the archive', async () => {
    const ds = await dataset('train');
    const testSet = await dataset('test');
    const other = await dataset('other');
    const ft = await job({ baseModel: 'bm_mnist_cnn', dataset: ds, testDataset: testSet });
    for (const id of [ds, testSet]) {
      const busy = await del(`/v1/datasets/${id}`);
      assert.equal(busy.status, 409, JSON.stringify(busy.body));
      assert.equal(busy.body.error.code, 'resource_in_use');
      assert.match(busy.body.error.message, new RegExp(ft));
    }
    await cancel(ft);
    const archive = join(env.STORAGE_DIR, 'datasets', `${ds}.zip`);
    assert.ok(existsSync(archive));
    const gone = await del(`/v1/datasets/${ds}`);
    assert.equal(gone.status, 200, JSON.stringify(gone.body));
    assert.deepEqual(gone.body, { id: ds, object: 'dataset', deleted: true });
    assert.equal(existsSync(archive), false);

    assert.equal((await request(api.url).get(`/v1/datasets/${ds}`)).body.error.code, 'dataset_not_found');
    assert.equal((await del(`/v1/datasets/${ds}`)).status, 404);
    const list = await request(api.url).get('/v1/datasets');
    assert.ok(!list.body.data.some((d: { id: string }) => d.id === ds));
    // Newest first: other, testSet, (ds). A deleted dataset is skipped, and still places a cursor.
    const page = await request(api.url).get(`/v1/datasets?after=${other}`);
    assert.deepEqual(page.body.data.map((d: { id: string }) => d.id), [testSet]);
    const fromDeleted = await request(api.url).get(`/v1/datasets?after=${ds}`);
    assert.equal(fromDeleted.status, 200);
    assert.deepEqual(fromDeleted.body.data, []);
    const refused = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mnist_cnn', dataset: ds });
    assert.equal(refused.status, 404);
    assert.deepEqual([refused.body.error.code, refused.body.error.param], ['dataset_not_found', 'dataset']);
    // The job that used it keeps its record.
    assert.equal((await request(api.url).get(`/v1/fine-tunes/${ft}`)).body.dataset, ds);
  });
});

describe('DELETE /v1/base-models/:id', () => {
  test('refuses catalog bases and fine-tunes, and a registered base while a job uses it; then removes its files', async () => {
    const catalog = await del('/v1/base-models/bm_mnist_cnn');
    assert.equal(catalog.status, 409);
    assert.equal(catalog.body.error.code, 'base_model_not_deletable');
    assert.equal((await del('/v1/base-models/ft_0123456789abcdefghjkmnpqrs')).body.error.code, 'base_model_not_deletable');
    assert.equal((await del('/v1/base-models/bm_nope')).body.error.code, 'base_model_not_found');

    const zip = join(fx, 'base.zip');
    await writeZip(zip, ['model.json', 'weights.bin'].map((name) => ({ name, data: readFileSync(join(MNIST_BASE, name)) })));
    const spec = { name: 'digits', featureLayer: 'features', preprocessing: { height: 28, width: 28, channels: 1, scale: 1 / 255, offset: 0 } };
    const reg = await request(api.url).post('/v1/base-models').field('spec', JSON.stringify(spec)).attach('file', zip);
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const base = reg.body.id as string;
    const dir = join(env.STORAGE_DIR, 'base-models', base);
    assert.ok(existsSync(join(dir, 'model.json')));

    const ft = await job({ baseModel: base, dataset: await dataset('for-base') });
    const busy = await del(`/v1/base-models/${base}`);
    assert.equal(busy.status, 409);
    assert.equal(busy.body.error.code, 'resource_in_use');
    await cancel(ft);
    const gone = await del(`/v1/base-models/${base}`);
    assert.deepEqual(gone.body, { id: base, object: 'base_model', deleted: true });
    assert.equal(existsSync(dir), false);
    assert.equal((await request(api.url).get(`/v1/base-models/${base}`)).status, 404);
    const listed = await request(api.url).get('/v1/base-models?limit=100');
    assert.ok(!listed.body.data.some((b: { id: string }) => b.id === base));
    const refused = await request(api.url).post('/v1/fine-tunes').send({ baseModel: base, dataset: await dataset('after') });
    assert.deepEqual([refused.status, refused.body.error.code, refused.body.error.param], [404, 'base_model_not_found', 'baseModel']);
  });
});

describe('DELETE /v1/fine-tunes/:id', () => {
  test('is refused until the job has ended, then removes the job, its events and its files', async () => {
    const ft = await job({ baseModel: 'bm_mnist_cnn', dataset: await dataset('job') });
    const busy = await del(`/v1/fine-tunes/${ft}`);
    assert.equal(busy.status, 409);
    assert.equal(busy.body.error.code, 'job_not_finished');
    await cancel(ft);
    // Files a job leaves under its directories (checkpoints, attempts) go with it.
    const leftover = join(env.STORAGE_DIR, 'models', ft, 'checkpoints', 'ck_x.zip');
    await mkdir(join(leftover, '..'), { recursive: true });
    await writeFile(leftover, 'x');
    const gone = await del(`/v1/fine-tunes/${ft}`);
    assert.equal(gone.status, 200, JSON.stringify(gone.body));
    assert.deepEqual(gone.body, { id: ft, object: 'fine_tune', deleted: true });
    assert.equal(existsSync(join(env.STORAGE_DIR, 'models', ft)), false);
    for (const path of [`/v1/fine-tunes/${ft}`, `/v1/fine-tunes/${ft}/events`, `/v1/fine-tunes/${ft}/metrics`]) {
      assert.equal((await request(api.url).get(path)).body.error.code, 'fine_tune_not_found', path);
    }
    assert.equal((await del(`/v1/fine-tunes/${ft}`)).status, 404);
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { colourEntries, writeZip } from '../../../test/helpers/fixtures.ts';
import { startApi } from '../../../test/helpers/processes.ts';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let dir: string;

before(async () => {
  env = await createTestEnv('datasets');
  api = await startApi(env);
  dir = join(env.STORAGE_DIR, 'fixtures');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
});
after(async () => api.close());

async function zip(name: string, entries: { name: string; data: Buffer | string }[]) {
  const path = join(dir, name);
  await writeZip(path, entries);
  return path;
}

const upload = (path: string, fields: Record<string, string> = { task: 'image-classification' }) => {
  let r = request(api.url).post('/v1/datasets');
  for (const [k, v] of Object.entries(fields)) r = r.field(k, v);
  return r.attach('file', path);
};

describe('POST /v1/datasets', () => {
  test('accepts a zip of class folders and reports what it holds', async () => {
    const path = await zip('ok.zip', [
      ...colourEntries(5),
      { name: 'README.txt', data: 'about this dataset' },
      { name: 'red/notes.txt', data: 'not an image' },
      { name: '__MACOSX/red/._0.png', data: 'resource fork' },
    ]);
    const res = await upload(path, { task: 'image-classification', name: 'colours' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const ds = res.body;
    assert.match(ds.id, /^ds_/);
    assert.equal(ds.name, 'colours');
    assert.equal(ds.imageCount, 10);
    assert.deepEqual(ds.classes.map((c: { name: string; images: number; index: number }) => [c.name, c.images, c.index]), [['blue', 5, 0], ['red', 5, 1]]);
    assert.equal(ds.bytes, readFileSync(path).length);
    assert.equal(ds.sha256, createHash('sha256').update(readFileSync(path)).digest('hex'));
    assert.deepEqual(ds.balance, { imbalanceRatio: 1, imbalanced: false });
    const reasons = Object.fromEntries(ds.skipped.map((s: { path: string; reason: string }) => [s.path, s.reason]));
    assert.equal(reasons['README.txt'], 'not inside a class folder');
    assert.match(reasons['red/notes.txt'], /not a JPEG or PNG/);
    assert.equal(reasons['__MACOSX/red/._0.png'], 'macOS resource fork');

    const got = await request(api.url).get(`/v1/datasets/${ds.id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, ds);
  });

  test('looks through one wrapping folder and flags imbalance', async () => {
    const entries = [
      ...colourEntries(8, { red: [200, 0, 0] }).map((e) => ({ ...e, name: `colours/${e.name}` })),
      ...colourEntries(2, { blue: [0, 0, 200] }).map((e) => ({ ...e, name: `colours/${e.name}` })),
    ];
    const res = await upload(await zip('wrapped.zip', entries));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.classes.map((c: { name: string }) => c.name), ['blue', 'red']);
    assert.deepEqual(res.body.balance, { imbalanceRatio: 4, imbalanced: true });
  });

  const rejects: [string, () => Promise<request.Response>, number, string, string | undefined, RegExp?][] = [
    ['a file that is not a zip', async () => upload(await writeFile('not.zip', 'hello, I am text')), 400, 'invalid_archive', 'file'],
    ['a zip without images', async () => upload(await zip('noimg.zip', [{ name: 'a/readme.txt', data: 'x' }])), 422, 'no_images', 'file'],
    ['a single class', async () => upload(await zip('one.zip', colourEntries(3, { red: [255, 0, 0] }))), 422, 'too_few_classes', 'file'],
    [
      'an unreadable image',
      async () => upload(await zip('bad.zip', [...colourEntries(2), { name: 'red/broken.png', data: Buffer.from('\x89PNG but not really') }])),
      422, 'unreadable_entry', 'file', /red\/broken\.png/,
    ],
    ['a missing task', async () => upload(await zip('t1.zip', colourEntries(2)), {}), 400, 'invalid_request', 'task'],
    ['an unknown task', async () => upload(await zip('t2.zip', colourEntries(2)), { task: 'speech' }), 400, 'invalid_request', 'task', /image-classification/],
    ['a missing file', async () => request(api.url).post('/v1/datasets').field('task', 'image-classification'), 400, 'invalid_request', 'file'],
    ['a JSON body', async () => request(api.url).post('/v1/datasets').send({ task: 'image-classification' }), 415, 'unsupported_media_type', undefined],
  ];
  for (const [what, send, status, code, param, message] of rejects) {
    test(`rejects ${what} with ${status} ${code}`, async () => {
      const res = await send();
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.error.code, code);
      assert.equal(res.body.error.param, param);
      assert.equal(typeof res.body.error.message, 'string');
      if (message) assert.match(res.body.error.message, message);
    });
  }

  test('answers 413 beyond the size limit and keeps nothing of the upload', async () => {
    const small = await startApi(env, { MAX_UPLOAD_BYTES: '4096' });
    try {
      const path = await zip('big.zip', colourEntries(40));
      assert.ok(readFileSync(path).length > 4096);
      const res = await request(small.url).post('/v1/datasets').field('task', 'image-classification').attach('file', path);
      assert.equal(res.status, 413, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'payload_too_large');
      assert.equal(res.body.error.param, 'file');
      assert.deepEqual(readdirSync(join(env.STORAGE_DIR, 'tmp')), []);
    } finally {
      await small.close();
    }
  });

  async function writeFile(name: string, data: string) {
    const path = join(dir, name);
    writeFileSync(path, data);
    return path;
  }
});

describe('GET /v1/datasets', () => {
  test('pages newest first with limit and after', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await upload(await zip(`p${i}.zip`, colourEntries(2)))).body.id);
    const first = await request(api.url).get('/v1/datasets?limit=2');
    assert.equal(first.status, 200);
    assert.equal(first.body.data.length, 2);
    assert.deepEqual(first.body.data.map((d: { id: string }) => d.id), [ids[2], ids[1]]);
    assert.equal(first.body.hasMore, true);
    assert.equal(first.body.nextCursor, ids[1]);
    const second = await request(api.url).get(`/v1/datasets?limit=2&after=${first.body.nextCursor}`);
    assert.equal(second.body.data[0].id, ids[0]);
  });

  test('rejects bad page parameters and unknown ids', async () => {
    for (const q of ['limit=0', 'limit=101', 'limit=abc']) {
      const res = await request(api.url).get(`/v1/datasets?${q}`);
      assert.equal(res.status, 400, q);
      assert.equal(res.body.error.param, 'limit');
    }
    const missing = await request(api.url).get('/v1/datasets/ds_nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'dataset_not_found');
  });
});


/** Registering bases: an uploaded tfjs model zip, or a hosted model fetched by URL (served locally). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { baseModels } from '@graft/db';
import type { TextBaseModel } from '@graft/contracts';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { colourEntries, writeZip } from '../../../test/helpers/fixtures.ts';
import { listenOnLoopback } from '../../../test/helpers/loopback.ts';
import { startApi } from '../../../test/helpers/processes.ts';

const MNIST_BASE = fileURLToPath(new URL('../../../models/mnist-cnn-0-4/', import.meta.url));
const SPEC = {
  name: 'my digits CNN',
  featureLayer: 'features',
  preprocessing: { height: 28, width: 28, channels: 1, scale: 1 / 255, offset: 0 },
  license: 'MIT',
  pretrainedOn: 'MNIST 0-4',
};

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let fx: string;
let server: Server;
let serverUrl: string;

before(async () => {
  env = await createTestEnv('bases');
  // A "hosted" model on loopback: the same files a CDN would serve (allow-listed, as a local mirror would be).
  server = createServer((req, res) => {
    const name = (req.url ?? '').split('/').pop() ?? '';
    if (!['model.json', 'weights.bin'].includes(name)) return void res.writeHead(404).end();
    res.writeHead(200).end(readFileSync(join(MNIST_BASE, name)));
  });
  const { port, url } = await listenOnLoopback(server);
  serverUrl = url;
  api = await startApi(env, { OUTBOUND_ALLOWLIST: `127.0.0.1:${port}` });
  fx = join(env.STORAGE_DIR, 'fx');
  await mkdir(fx, { recursive: true });
});
after(async () => {
  server.close();
  await api.close();
});

async function modelZip(name: string, files: Record<string, Buffer | string>) {
  const path = join(fx, name);
  await writeZip(path, Object.entries(files).map(([n, data]) => ({ name: n, data })));
  return path;
}
const mnistFiles = () => ({ 'model.json': readFileSync(join(MNIST_BASE, 'model.json')), 'weights.bin': readFileSync(join(MNIST_BASE, 'weights.bin')) });
const upload = (path: string, spec: unknown) => request(api.url).post('/v1/base-models').field('spec', typeof spec === 'string' ? spec : JSON.stringify(spec)).attach('file', path);

describe('POST /v1/base-models', () => {
  test('registers an uploaded model after loading it, lists it, and fine-tunes can use it', async () => {
    const res = await upload(await modelZip('ok.zip', mnistFiles()), SPEC);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const base = res.body;
    assert.match(base.id, /^bm_/);
    assert.equal(base.format, 'tfjs-layers');
    assert.deepEqual(base.inputShape, [28, 28, 1]);
    assert.deepEqual(base.featureShape, [800]);
    assert.equal(base.source, 'upload');
    assert.equal(base.pretrainedOn, 'MNIST 0-4');

    const list = await request(api.url).get('/v1/base-models?limit=100');
    const ids = list.body.data.map((b: { id: string }) => b.id);
    assert.ok(ids.includes('bm_mnist_cnn') && ids.includes(base.id));
    assert.deepEqual((await request(api.url).get(`/v1/base-models/${base.id}`)).body, base);

    const dsPath = join(fx, 'ds.zip');
    await writeZip(dsPath, colourEntries(3));
    const ds = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', dsPath);
    const ft = await request(api.url).post('/v1/fine-tunes').send({ baseModel: base.id, dataset: ds.body.id });
    assert.equal(ft.status, 201, JSON.stringify(ft.body));
    assert.equal(ft.body.baseModel, base.id);
    assert.equal(ft.body.cutLayer, 'features');
  });

  test('pages the catalog and registered bases together', async () => {
    const first = await request(api.url).get('/v1/base-models?limit=1');
    assert.equal(first.body.data.length, 1);
    assert.equal(first.body.hasMore, true);
    const all: string[] = [];
    let after: string | null = null;
    do {
      const page: { body: { data: { id: string }[]; nextCursor: string | null } } = await request(api.url).get(`/v1/base-models?limit=2${after ? `&after=${after}` : ''}`);
      all.push(...page.body.data.map((b) => b.id));
      after = page.body.nextCursor;
    } while (after);
    const full = (await request(api.url).get('/v1/base-models?limit=100')).body.data.map((b: { id: string }) => b.id);
    assert.deepEqual(all, full);
  });

  test('registers a hosted model by URL (fetched once and stored)', async () => {
    const res = await request(api.url).post('/v1/base-models').send({ ...SPEC, name: 'hosted', url: `${serverUrl}/m/model.json` });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.match(res.body.source, /^hosted: http:\/\/127\.0\.0\.1/);
    const missing = await request(api.url).post('/v1/base-models').send({ ...SPEC, url: `${serverUrl}/m/nothing.json` });
    assert.equal(missing.status, 422);
    assert.equal(missing.body.error.code, 'invalid_base_model');
    assert.match(missing.body.error.message, /cannot be fetched: it answered HTTP 404/);
  });

  const bad: [string, () => Promise<request.Response>, number, string, string | undefined, RegExp?][] = [
    ['an unknown feature layer', async () => upload(await modelZip('l.zip', mnistFiles()), { ...SPEC, featureLayer: 'nope' }), 422, 'invalid_base_model', undefined, /nope/],
    ['a preprocessing that does not fit the input', async () => upload(await modelZip('p.zip', mnistFiles()), { ...SPEC, preprocessing: { ...SPEC.preprocessing, height: 32, width: 32 } }), 422, 'invalid_base_model', undefined, /28/],
    ['a zip without model.json', async () => upload(await modelZip('n.zip', { 'readme.txt': 'hi' }), SPEC), 422, 'invalid_base_model', undefined, /model\.json/],
    ['missing weights', async () => upload(await modelZip('w.zip', { 'model.json': readFileSync(join(MNIST_BASE, 'model.json')) }), SPEC), 422, 'invalid_base_model', undefined],
    ['a spec that is not JSON', async () => upload(await modelZip('j.zip', mnistFiles()), '{name:'), 400, 'invalid_request', 'spec'],
    ['a spec with a bad field', async () => upload(await modelZip('f.zip', mnistFiles()), { ...SPEC, preprocessing: { ...SPEC.preprocessing, channels: 2 } }), 400, 'invalid_request', 'preprocessing.channels'],
    ['a JSON body without url', async () => request(api.url).post('/v1/base-models').send(SPEC), 400, 'invalid_request', 'url'],
    ['a JSON body with an unknown field', async () => request(api.url).post('/v1/base-models').send({ ...SPEC, url: `${serverUrl}/m/model.json`, extra: 1 }), 400, 'invalid_request', 'extra'],
  ];
  for (const [what, send, status, code, param, message] of bad) {
    test(`rejects ${what} (${status} ${code})`, async () => {
      const res = await send();
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.error.code, code);
      if (param !== undefined) assert.equal(res.body.error.param, param);
      if (message) assert.match(res.body.error.message, message);
    });
  }
});

describe('text bases in the base-model answers', () => {
  const text: TextBaseModel = {
    id: 'bm_text_contract_check',
    object: 'base_model',
    name: 'a text encoder',
    task: 'text-classification',
    description: '',
    format: 'onnx',
    inputShape: [128],
    featureLayer: 'last_hidden_state',
    featureShape: [128],
    preprocessing: { tokenizer: { kind: 'wordpiece', files: ['tokenizer.json', 'tokenizer_config.json'], vocabSize: 8000, lowercase: true }, maxLength: 128, pooling: 'mean' },
    source: 'upload',
    license: 'MIT',
    pretrainedOn: 'English text',
  };

  test('a text base row is listed and answered with its tokenizer, length and pooling; image bases keep their shape', async () => {
    await baseModels.createUserBase(api.app.db, { model: text, storageKey: 'base-models/none', sha256: '', bytes: 1 });
    const one = await request(api.url).get(`/v1/base-models/${text.id}`);
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.deepEqual(one.body, text);
    const list = (await request(api.url).get('/v1/base-models?limit=100')).body.data as { id: string; task: string }[];
    assert.deepEqual(list.find((b) => b.id === text.id), text);
    const mnist = list.find((b) => b.id === 'bm_mnist_cnn') as unknown as Record<string, unknown>;
    assert.equal(mnist.task, 'image-classification');
    assert.deepEqual(mnist.preprocessing, { height: 28, width: 28, channels: 1, resize: 'bilinear', scale: 1 / 255, offset: 0 });

    // An image dataset on a text base is a task mismatch, said up front.
    const dsPath = join(fx, 'ds-text.zip');
    await writeZip(dsPath, colourEntries(3));
    const ds = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', dsPath);
    const ft = await request(api.url).post('/v1/fine-tunes').send({ baseModel: text.id, dataset: ds.body.id });
    assert.equal(ft.status, 422, JSON.stringify(ft.body));
    assert.equal(ft.body.error.code, 'task_mismatch');
  });

  test('the OpenAPI document describes both kinds of base', async () => {
    const doc = (await request(api.url).get('/openapi.json')).body;
    const ref = doc.paths['/v1/base-models/{id}'].get.responses['200'].content['application/json'].schema.$ref;
    assert.equal(ref, '#/components/schemas/BaseModel');
    const kinds = doc.components.schemas.BaseModel.anyOf.map((k: { $ref: string }) => k.$ref.split('/').at(-1));
    assert.deepEqual(kinds, ['ImageBaseModel', 'TextBaseModel']);
    const schema = JSON.stringify([...kinds, 'TextPreprocessing'].map((k) => doc.components.schemas[k]));
    for (const field of ['image-classification', 'text-classification', 'pooling', 'maxLength', 'tokenizer', 'onnx']) assert.ok(schema.includes(field), field);
  });

  test('a text registration spec is checked field by field', async () => {
    const res = await request(api.url)
      .post('/v1/base-models')
      .send({ name: 'x', task: 'text-classification', pooling: 'max', url: 'http://127.0.0.1:1/m/' });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'invalid_request');
    assert.equal(res.body.error.param, 'pooling');
    const featureLayer = await request(api.url).post('/v1/base-models').send({ name: 'x', task: 'text-classification', featureLayer: 'f', url: 'http://127.0.0.1:1/m/' });
    assert.equal(featureLayer.status, 400);
    assert.equal(featureLayer.body.error.param, 'featureLayer');
  });
});

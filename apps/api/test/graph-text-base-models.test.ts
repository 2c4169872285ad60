/**
 * Registering a Universal-Sentence-Encoder-style TensorFlow.js graph by URL through the real API:
 * the engine test's graph (indices/values in, one vector per text out) and its vocab.json served on
 * loopback (allow-listed for the outbound guard), fetched once, opened and run in the inspector
 * child, stored; the refusals with the field at fault; then a fine-tune on it through a worker
 * process, which reads the stored folder (the host is gone by then).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { FIXTURE_DIM, FIXTURE_VOCAB, writeUseFixture } from '../../../packages/engine/test/text-use-fixture.ts';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { listenOnLoopback } from '../../../test/helpers/loopback.ts';
import { startApi, startWorker, waitFor, type WorkerProcess } from '../../../test/helpers/processes.ts';

const SPEC = { name: 'USE-style graph', task: 'text-classification', format: 'tfjs-graph', license: 'MIT', pretrainedOn: 'nothing (fixed weights)' };

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess | undefined;
let fx: string;
let server: Server;
let serverUrl: string;
const requests: string[] = [];

before(async () => {
  env = await createTestEnv('graphbases');
  fx = join(env.STORAGE_DIR, 'fx');
  await writeUseFixture(join(fx, 'use'));
  await writeUseFixture(join(fx, 'wrong'), { inputName: 'ids' });
  // /use/<file>: the graph; /wrong/<file>: one whose ids input is misnamed.
  server = createServer((req, res) => {
    const path = req.url ?? '';
    requests.push(path);
    const m = /^\/(use|wrong)\/([\w.-]+)$/.exec(path);
    if (!m) return void res.writeHead(404).end();
    let body: Buffer;
    try {
      body = readFileSync(join(fx, m[1]!, m[2]!));
    } catch {
      return void res.writeHead(404).end();
    }
    res.writeHead(200).end(body);
  });
  const { port, url } = await listenOnLoopback(server);
  serverUrl = url;
  // The loopback host is a local mirror the operator allows (the outbound guard refuses loopback otherwise).
  api = await startApi(env, { OUTBOUND_ALLOWLIST: `127.0.0.1:${port}` });
});
after(async () => {
  server.close();
  await worker?.stop();
  await api.close();
});

const register = (body: object) => request(api.url).post('/v1/base-models').send(body);
let baseId = '';

describe('POST /v1/base-models (text-classification, tfjs-graph)', () => {
  test('model.json and vocab.json by URL: fetched, run on two texts, described from what was measured, stored', async () => {
    requests.length = 0;
    const res = await register({ ...SPEC, url: `${serverUrl}/use/model.json`, vocabUrl: `${serverUrl}/use/vocab.json`, maxLength: 64 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const base = res.body;
    baseId = base.id;
    assert.match(base.id, /^bm_/);
    assert.match(base.source, /^hosted: http:\/\/127\.0\.0\.1:\d+\/use\/model\.json .*; vocabulary http:\/\/127\.0\.0\.1:\d+\/use\/vocab\.json$/);
    assert.deepEqual(
      { ...base, id: undefined, source: undefined },
      {
        id: undefined,
        source: undefined,
        object: 'base_model',
        name: 'USE-style graph',
        task: 'text-classification',
        description: '',
        format: 'tfjs-graph',
        inputShape: [64],
        featureLayer: 'Encoder/embeddings',
        featureShape: [FIXTURE_DIM],
        preprocessing: { tokenizer: { kind: 'unigram', files: ['vocab.json'], vocabSize: FIXTURE_VOCAB.length, lowercase: false }, maxLength: 64, pooling: 'none' },
        license: 'MIT',
        pretrainedOn: 'nothing (fixed weights)',
      },
    );
    assert.deepEqual(requests, ['/use/model.json', '/use/group1-shard1of1.bin', '/use/vocab.json']);
    assert.deepEqual((await request(api.url).get(`/v1/base-models/${base.id}`)).body, base);
    const stored = join(env.STORAGE_DIR, 'base-models', base.id);
    // source.json: the hosted fetcher's note of where the graph came from.
    assert.deepEqual(readdirSync(stored).sort(), ['group1-shard1of1.bin', 'model.json', 'source.json', 'vocab.json']);
  });

  const url = () => `${serverUrl}/use/model.json`;
  const vocabUrl = () => `${serverUrl}/use/vocab.json`;
  const bad: [string, () => object, number, string, string, RegExp][] = [
    ['no vocabUrl', () => ({ ...SPEC, url: url() }), 400, 'invalid_request', 'vocabUrl', /vocabUrl/],
    ['a vocabUrl on an ONNX base', () => ({ ...SPEC, format: 'onnx', url: url(), vocabUrl: vocabUrl() }), 400, 'invalid_request', 'vocabUrl', /tfjs-graph/],
    ['pooling on a graph', () => ({ ...SPEC, url: url(), vocabUrl: vocabUrl(), pooling: 'cls' }), 400, 'invalid_request', 'pooling', /one vector per text/],
    ['a model.json that is not there', () => ({ ...SPEC, url: `${serverUrl}/use/nothing.json`, vocabUrl: vocabUrl() }), 422, 'invalid_base_model', 'url', /HTTP 404/],
    ['a vocabulary that is not there', () => ({ ...SPEC, url: url(), vocabUrl: `${serverUrl}/use/nothing.json` }), 422, 'invalid_base_model', 'url', /cannot be fetched/],
    ['a graph without the values input', () => ({ ...SPEC, url: `${serverUrl}/wrong/model.json`, vocabUrl: `${serverUrl}/wrong/vocab.json` }), 422, 'invalid_base_model', 'url', /no "values" input/],
    ['an output node the graph does not have', () => ({ ...SPEC, url: url(), vocabUrl: vocabUrl(), outputName: 'nope' }), 422, 'invalid_base_model', 'url', /nope/],
    ['a host the outbound guard refuses', () => ({ ...SPEC, url: 'http://127.0.0.2:9/model.json', vocabUrl: vocabUrl() }), 422, 'invalid_base_model', 'url', /cannot be fetched/],
  ];
  for (const [what, body, status, code, param, message] of bad) {
    test(`refuses ${what} (${status} ${code}, param ${param})`, async () => {
      const res = await register(body());
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.error.code, code);
      assert.equal(res.body.error.param, param);
      assert.match(res.body.error.message, message);
    });
  }

  test('nothing is left behind by refused registrations', () => {
    assert.equal(readdirSync(join(env.STORAGE_DIR, 'base-models')).length, 1);
    assert.deepEqual(readdirSync(join(env.STORAGE_DIR, 'tmp')), []);
  });

  test('a fine-tune on it through a worker: frozen features from the stored graph, succeeds', async () => {
    server.close(); // the job reads the stored folder, not the URLs
    worker = await startWorker(env);
    const a = ['the whale is big', 'the whale', 'a whale is big', 'the big whale', 'whale is the whale'];
    const b = ['the sea', 'seas', 'a sea is the sea', 'the seas', 'sea is a sea'];
    const rows: [string, string][] = [...a.flatMap((t) => Array.from({ length: 6 }, (): [string, string] => [t, 'whale'])), ...b.flatMap((t) => Array.from({ length: 6 }, (): [string, string] => [t, 'sea']))];
    await mkdir(fx, { recursive: true });
    const csv = join(fx, 'texts.csv');
    await writeFile(csv, `text,label\r\n${rows.map(([t, l]) => `${t},${l}\r\n`).join('')}`);
    const ds = await request(api.url).post('/v1/datasets').field('task', 'text-classification').attach('file', csv);
    assert.equal(ds.status, 201, JSON.stringify(ds.body));
    const created = await request(api.url).post('/v1/fine-tunes').send({ baseModel: baseId, dataset: ds.body.id, seed: 3, earlyStopping: false, hyperparameters: { epochs: 3, batchSize: 16 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const job = await waitFor(`job ${created.body.id}`, async () => {
      const j = (await request(api.url).get(`/v1/fine-tunes/${created.body.id}`)).body;
      return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
    }, 240_000, 250);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.deepEqual(job.result.classes, ['sea', 'whale']);
    assert.equal(typeof job.result.valAccuracy, 'number');
  });
});

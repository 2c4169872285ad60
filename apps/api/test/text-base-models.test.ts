/**
 * Registering ONNX text encoders through the real API: a zip of the folder (the tiny BERT fixture,
 * in Hugging Face's layout with extra files), a URL of the folder or of a zip on a local HTTP
 * server, the descriptor measured by the inspector child, what is stored, and the refusals with
 * the field at fault.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { writeZip } from '../../../test/helpers/fixtures.ts';
import { listenOnLoopback } from '../../../test/helpers/loopback.ts';
import { startApi } from '../../../test/helpers/processes.ts';

const TINY_BERT = fileURLToPath(new URL('../../../models/text/tiny-bert/', import.meta.url));
const read = (name: string) => readFileSync(join(TINY_BERT, name));

/** The folder as Hugging Face lays out a repository: the model under onnx/, with a README and a quantized variant beside it. */
const hfFiles = (): Record<string, Buffer | string> => ({
  'config.json': read('config.json'),
  'tokenizer.json': read('tokenizer.json'),
  'tokenizer_config.json': read('tokenizer_config.json'),
  'onnx/model.onnx': read('model.onnx'),
  'onnx/model_quantized.onnx': read('model.onnx'),
  'README.md': '# tiny bert\n',
});

const SPEC = { name: 'tiny BERT', task: 'text-classification', license: 'MIT', pretrainedOn: 'nothing (random weights)' };

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let fx: string;
let server: Server;
let serverUrl: string;
const requests: string[] = [];

async function zipOf(name: string, files: Record<string, Buffer | string>) {
  const path = join(fx, name);
  await writeZip(path, Object.entries(files).map(([n, data]) => ({ name: n, data })));
  return path;
}

before(async () => {
  env = await createTestEnv('textbases');
  fx = join(env.STORAGE_DIR, 'fx');
  await mkdir(fx, { recursive: true });
  const zipped = await zipOf('served.zip', Object.fromEntries(Object.entries(hfFiles()).map(([k, v]) => [`tiny-bert/${k}`, v])));
  // A model host on loopback: /hf/<file> serves the folder, /zip/tiny-bert.zip a zip of it.
  server = createServer((req, res) => {
    const path = req.url ?? '';
    requests.push(path);
    if (path === '/zip/tiny-bert.zip') return void res.writeHead(200).end(readFileSync(zipped));
    const files = hfFiles();
    const name = path.replace(/^\/hf\//, '');
    if (path.startsWith('/hf/') && name in files) return void res.writeHead(200).end(files[name]);
    res.writeHead(404).end();
  });
  const { port, url } = await listenOnLoopback(server);
  serverUrl = url;
  // The loopback host is a local mirror the operator allows (the outbound guard refuses loopback otherwise).
  api = await startApi(env, { OUTBOUND_ALLOWLIST: `127.0.0.1:${port}` });
});
after(async () => {
  server.close();
  await api.close();
});

const upload = (path: string, spec: unknown) => request(api.url).post('/v1/base-models').field('spec', JSON.stringify(spec)).attach('file', path);

describe('POST /v1/base-models (text-classification, ONNX)', () => {
  test('a zip of the folder: checked, described from what was measured, stored reduced to what the base needs', async () => {
    const res = await upload(await zipOf('hf.zip', hfFiles()), SPEC);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const base = res.body;
    assert.match(base.id, /^bm_/);
    assert.deepEqual(
      { ...base, id: undefined },
      {
        id: undefined,
        object: 'base_model',
        name: 'tiny BERT',
        task: 'text-classification',
        description: '',
        format: 'onnx',
        inputShape: [128],
        featureLayer: 'last_hidden_state',
        featureShape: [32],
        preprocessing: { tokenizer: { kind: 'wordpiece', files: ['tokenizer.json', 'tokenizer_config.json'], vocabSize: 2000, lowercase: true }, maxLength: 128, pooling: 'mean' },
        source: 'upload',
        license: 'MIT',
        pretrainedOn: 'nothing (random weights)',
      },
    );
    assert.deepEqual((await request(api.url).get(`/v1/base-models/${base.id}`)).body, base);
    const listed = (await request(api.url).get('/v1/base-models?limit=100')).body.data as { id: string }[];
    assert.ok(listed.some((b) => b.id === base.id));
    // Stored: onnx/model.onnx moved to the root; the README and the variant left out.
    const stored = join(env.STORAGE_DIR, 'base-models', base.id);
    assert.deepEqual(readdirSync(stored).sort(), ['config.json', 'model.onnx', 'tokenizer.json', 'tokenizer_config.json']);
    assert.deepEqual(readFileSync(join(stored, 'model.onnx')), read('model.onnx'));
  });

  test('pooling, maxLength and modelFile as asked', async () => {
    const res = await upload(await zipOf('cls.zip', hfFiles()), { ...SPEC, pooling: 'cls', maxLength: 64, modelFile: 'onnx/model_quantized.onnx' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.inputShape, [64]);
    assert.equal(res.body.preprocessing.maxLength, 64);
    assert.equal(res.body.preprocessing.pooling, 'cls');
    // More than the model's 128 positions: lowered to its limit.
    const long = await upload(await zipOf('long.zip', hfFiles()), { ...SPEC, maxLength: 512 });
    assert.equal(long.status, 201, JSON.stringify(long.body));
    assert.deepEqual(long.body.inputShape, [128]);
  });

  test('by URL: the folder (files fetched relative to it) or a zip of it', async () => {
    requests.length = 0;
    const folder = await request(api.url).post('/v1/base-models').send({ ...SPEC, url: `${serverUrl}/hf` });
    assert.equal(folder.status, 201, JSON.stringify(folder.body));
    assert.match(folder.body.source, /^hosted: http:\/\/127\.0\.0\.1:\d+\/hf/);
    assert.deepEqual(folder.body.featureShape, [32]);
    assert.deepEqual(requests, ['/hf/config.json', '/hf/tokenizer.json', '/hf/tokenizer_config.json', '/hf/onnx/model.onnx', '/hf/onnx/model.onnx_data']);
    const zip = await request(api.url).post('/v1/base-models').send({ ...SPEC, url: `${serverUrl}/zip/tiny-bert.zip`, pooling: 'cls' });
    assert.equal(zip.status, 201, JSON.stringify(zip.body));
    assert.equal(zip.body.preprocessing.pooling, 'cls');
    assert.deepEqual(readdirSync(join(env.STORAGE_DIR, 'base-models', zip.body.id)).sort(), ['config.json', 'model.onnx', 'tokenizer.json', 'tokenizer_config.json']);
  });

  const { 'tokenizer.json': _t, ...noTokenizer } = hfFiles();
  const { 'onnx/model.onnx': _m, 'onnx/model_quantized.onnx': _q, ...noModel } = hfFiles();
  const wrongHidden = () => ({ ...hfFiles(), 'config.json': JSON.stringify({ ...JSON.parse(read('config.json').toString()), hidden_size: 64 }) });
  const bad: [string, () => Promise<request.Response>, number, string, string, RegExp][] = [
    ['a zip without tokenizer.json', async () => upload(await zipOf('nt.zip', noTokenizer), SPEC), 422, 'invalid_base_model', 'file', /no tokenizer\.json/],
    ['a zip without an ONNX model', async () => upload(await zipOf('nm.zip', noModel), SPEC), 422, 'invalid_base_model', 'file', /no ONNX model \(looked for onnx\/model\.onnx, model\.onnx\)/],
    ['a file that is not ONNX', async () => upload(await zipOf('garbage.zip', { ...hfFiles(), 'onnx/model.onnx': 'not a model' }), SPEC), 422, 'invalid_base_model', 'file', /cannot be loaded by ONNX Runtime/],
    ['a hidden size that is not config.json’s', async () => upload(await zipOf('h.zip', wrongHidden()), SPEC), 422, 'invalid_base_model', 'file', /32 features per token but config\.json says hidden_size 64/],
    ['an output the graph does not have', async () => upload(await zipOf('o.zip', hfFiles()), { ...SPEC, outputName: 'pooler_output' }), 422, 'invalid_base_model', 'outputName', /no output "pooler_output"/],
    ['a modelFile the folder does not have', async () => upload(await zipOf('mf.zip', hfFiles()), { ...SPEC, modelFile: 'onnx/model_fp16.onnx' }), 422, 'invalid_base_model', 'modelFile', /looked for onnx\/model_fp16\.onnx/],
    ['a URL whose folder has no config.json', async () => request(api.url).post('/v1/base-models').send({ ...SPEC, url: `${serverUrl}/nothing/` }), 422, 'invalid_base_model', 'url', /config\.json.*HTTP 404/],
    ['a spec field of the image kind', async () => upload(await zipOf('s.zip', hfFiles()), { ...SPEC, featureLayer: 'x' }), 400, 'invalid_request', 'featureLayer', /featureLayer/],
  ];
  for (const [what, send, status, code, param, message] of bad) {
    test(`refuses ${what} (${status} ${code}, param ${param})`, async () => {
      const res = await send();
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.error.code, code);
      assert.equal(res.body.error.param, param);
      assert.match(res.body.error.message, message);
      assert.doesNotMatch(res.body.error.message, new RegExp(env.STORAGE_DIR.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    });
  }

  test('nothing is left behind by refused registrations', () => {
    const dirs = readdirSync(join(env.STORAGE_DIR, 'base-models'));
    // Only the five registered above.
    assert.equal(dirs.length, 5);
    assert.deepEqual(readdirSync(join(env.STORAGE_DIR, 'tmp')), []);
  });
});

/** `url` bases: fetched from a local HTTP server (127.0.0.1) into the disk cache, reused offline, checked by sha256. */
import assert from 'node:assert/strict';
import { readFile, readdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/backend.ts';
import { MOBILENET_V2_MID_FEATURE_NODE } from '../src/bases/catalog.ts';
import { TrainingError } from '../src/errors.ts';
import { fetchHostedModel, hostedCacheDir, sha256Hex, weightUrl } from '../src/bases/hosted-cache.ts';
import { openBase } from '../src/bases/open-base.ts';
import { saveModelDir, tinyCnn, tinyDescriptor, writeNsfwjsModelDir } from './bases-fixtures.ts';

let root: string;
let served: string;
let server: Server;
let origin: string;
const requests: string[] = [];
let reference: tf.LayersModel;

async function startServer(port = 0): Promise<void> {
  server = createServer(async (req, res) => {
    requests.push(req.url!);
    const path = normalize(decodeURIComponent(new URL(req.url!, 'http://x').pathname)).replace(/^\/+/, '');
    if (path.startsWith('..')) return void res.writeHead(403).end();
    try {
      const data = await readFile(join(served, path));
      res.writeHead(200, { 'content-type': path.endsWith('.json') ? 'application/json' : 'application/octet-stream' }).end(data);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
const stopServer = () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });

before(async () => {
  await initBackend();
  root = await mkdtemp(join(tmpdir(), 'graft-hosted-'));
  served = join(root, 'www');
  reference = tinyCnn();
  await saveModelDir(reference, join(served, 'models', 'tiny'), { shards: 3, shardDir: 'shards' });
  // A model.json naming a weight file outside its directory.
  const evil = JSON.parse(await readFile(join(served, 'models', 'tiny', 'model.json'), 'utf8')) as tf.io.ModelJSON;
  evil.weightsManifest[0]!.paths = ['../../secret.bin'];
  await writeFile(join(served, 'models', 'tiny', 'evil.json'), JSON.stringify(evil));
  await writeNsfwjsModelDir('mobilenet_v2_mid', join(served, 'models', 'mid'));
  await startServer();
});
after(async () => {
  if (server.listening) await stopServer();
  reference.dispose();
  await rm(root, { recursive: true, force: true });
});

const isCode = (code: string, pattern?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof TrainingError, `expected a TrainingError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (pattern) assert.match(err.message, pattern);
  return true;
};

test('weight URLs are relative to model.json and keep its query string (TF Hub\'s ?tfjs-format=file)', () => {
  assert.equal(weightUrl('https://h/a/b/model.json', 'group1-shard1of2.bin'), 'https://h/a/b/group1-shard1of2.bin');
  assert.equal(weightUrl('https://h/a/model.json?tfjs-format=file', 'shards/x.bin'), 'https://h/a/shards/x.bin?tfjs-format=file');
});

test('a url base is fetched once into <cacheDir>/hosted/<sha256(url)>/, then loads from the cache with the server stopped', async () => {
  const cacheDir = join(root, 'cache');
  const url = `${origin}/models/tiny/model.json?v=1`;
  const base = { descriptor: tinyDescriptor({ id: 'bm_tiny_hosted', source: `hosted: ${url}` }), source: { kind: 'url' as const, url } };
  requests.length = 0;
  const opened = await openBase(base, { cacheDir });
  assert.deepEqual(requests, ['/models/tiny/model.json?v=1', '/models/tiny/shards/group1-shard1of3.bin?v=1', '/models/tiny/shards/group1-shard2of3.bin?v=1', '/models/tiny/shards/group1-shard3of3.bin?v=1']);
  const dir = hostedCacheDir(cacheDir, url);
  assert.equal(dir, join(cacheDir, 'hosted', sha256Hex(url)));
  const source = JSON.parse(await readFile(join(dir, 'source.json'), 'utf8')) as { url: string; modelJsonSha256: string };
  assert.equal(source.url, url);
  assert.equal(source.modelJsonSha256, sha256Hex(await readFile(join(served, 'models', 'tiny', 'model.json'))));
  assert.deepEqual((await readdir(join(cacheDir, 'hosted'))).filter((n) => n.startsWith('.tmp')), []);
  const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 2);
  const diff = tf.tidy(() => (opened.layers!.predict(x) as tf.Tensor).sub(reference.predict(x) as tf.Tensor).abs().max().dataSync()[0]!);
  assert.equal(diff, 0);
  opened.dispose();

  const port = Number(new URL(origin).port);
  await stopServer();
  try {
    requests.length = 0;
    const offline = await openBase(base, { cacheDir });
    assert.deepEqual(requests, []);
    const again = tf.tidy(() => (offline.layers!.predict(x) as tf.Tensor).sub(reference.predict(x) as tf.Tensor).abs().max().dataSync()[0]!);
    assert.equal(again, 0);
    offline.dispose();
    // The right sha256 is checked against the cached model.json (no network needed)...
    const sha = sha256Hex(await readFile(join(served, 'models', 'tiny', 'model.json')));
    (await openBase({ ...base, source: { ...base.source, sha256: sha } }, { cacheDir })).dispose();
    // ...and a wrong one fails, offline, saying so.
    await assert.rejects(openBase({ ...base, source: { ...base.source, sha256: 'ab'.repeat(32) } }, { cacheDir }), isCode('base_model_unavailable', /cached model\.json .* has sha256 [0-9a-f]{64}, not the expected abab/));
    // Nothing cached for another URL, and no server: the worker has no network.
    const other = `${origin}/models/tiny/model.json?v=2`;
    await assert.rejects(
      openBase({ ...base, source: { kind: 'url', url: other } }, { cacheDir }),
      isCode('base_model_unavailable', /cannot be fetched: GET .* failed \(.*ECONNREFUSED.*\)\. The worker needs network access .* upload them as a zip with POST \/v1\/base-models/),
    );
    assert.deepEqual((await readdir(join(cacheDir, 'hosted'))).filter((n) => n.startsWith('.tmp')), []);
  } finally {
    x.dispose();
    await startServer(port);
  }
});

test('sha256 of model.json is verified on download; a mismatch caches nothing', async () => {
  const cacheDir = join(root, 'cache-sha');
  const url = `${origin}/models/tiny/model.json`;
  const actual = sha256Hex(await readFile(join(served, 'models', 'tiny', 'model.json')));
  await assert.rejects(
    fetchHostedModel(url, { cacheDir, sha256: '0'.repeat(64) }),
    isCode('base_model_unavailable', new RegExp(`has sha256 ${actual}, not the expected 0{64}: the hosted model changed or the download is corrupt`)),
  );
  await assert.rejects(stat(hostedCacheDir(cacheDir, url)), /ENOENT/);
  const ok = await fetchHostedModel(url, { cacheDir, sha256: actual.toUpperCase() });
  assert.equal(ok.fromCache, false);
  assert.equal((await fetchHostedModel(url, { cacheDir, sha256: actual })).fromCache, true);
  await assert.rejects(fetchHostedModel(url, { cacheDir, sha256: 'xyz' }), isCode('base_model_unavailable', /not 64 hex digits/));
});

test('HTTP errors, unsafe weight paths and oversized models are refused; cacheDir null leaves nothing behind', async () => {
  const cacheDir = join(root, 'cache-errors');
  await assert.rejects(fetchHostedModel(`${origin}/models/none/model.json`, { cacheDir }), isCode('base_model_unavailable', /answered HTTP 404/));
  await assert.rejects(fetchHostedModel(`${origin}/models/tiny/evil.json`, { cacheDir }), isCode('base_model_unavailable', /"\.\.\/\.\.\/secret\.bin", which is not a plain relative path/));
  await assert.rejects(fetchHostedModel(`${origin}/models/tiny/model.json`, { cacheDir, limits: { maxTotalBytes: 2000 } }), isCode('base_model_unavailable', /larger than graft accepts/));
  assert.deepEqual(await readdir(join(cacheDir, 'hosted')), []);

  const temp = await fetchHostedModel(`${origin}/models/tiny/model.json`, { cacheDir: null });
  assert.ok((await stat(join(temp.dir, 'model.json'))).isFile());
  await temp.release();
  await assert.rejects(stat(temp.dir), /ENOENT/);
  const opened = await openBase({ descriptor: tinyDescriptor(), source: { kind: 'url', url: `${origin}/models/tiny/model.json` } }, { cacheDir: null });
  opened.dispose();
});

test('a hosted graph model (nsfwjs\' mobilenet_v2_mid served locally) opens as a frozen feature extractor', async () => {
  const cacheDir = join(root, 'cache-graph');
  const url = `${origin}/models/mid/model.json`;
  const descriptor = tinyDescriptor({ id: 'bm_mid_hosted', format: 'tfjs-graph', inputShape: [224, 224, 3], featureLayer: MOBILENET_V2_MID_FEATURE_NODE, featureShape: [1792] });
  const opened = await openBase({ descriptor, source: { kind: 'url', url } }, { cacheDir });
  assert.equal(opened.format, 'tfjs-graph');
  const f = tf.tidy(() => opened.graphFeatures!(tf.zeros([1, 224, 224, 3]) as tf.Tensor4D));
  assert.deepEqual(f.shape, [1, 1792]);
  f.dispose();
  opened.dispose();
});

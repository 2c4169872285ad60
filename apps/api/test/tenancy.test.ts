/**
 * API keys and tenants, end to end: keys made by the admin CLI, an API with AUTH=keys, a worker
 * that trains tenant A's job (checkpoints, a model, webhook deliveries to a loopback receiver), and
 * tenant B, who gets 404 on every id of A's, empty lists, and none of A's webhook events. Also: 401
 * in the error shape with `WWW-Authenticate`, revocation, idempotency keys per tenant, the CLI client
 * with GRAFT_API_KEY, public routes without a key, and development mode refused off loopback.
 */
import { baseModels } from '@graft/db';
import type { TextBaseModel } from '@graft/contracts';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { buildApp } from '../src/app.ts';
import { loadApiConfig } from '../src/config.ts';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { startApi, startWorker, waitFor, type WorkerProcess } from '../../../test/helpers/processes.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;
let receiver: Server;
let hooks: string;
const received: { path: string; body: string }[] = [];
const keys = { a: '', b: '' };
/** Tenant A's objects (and B's tenant id), filled in by `before`. */
const a = { tenant: '', tenantB: '', endpoint: '', dataset: '', base: '', job: '', checkpoint: '' };

/** The admin CLI, as an operator runs it (exit code, stdout parsed as JSON when it is). */
function admin(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'apps/api/src/admin/cli.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: env.DATABASE_URL },
    encoding: 'utf8',
    timeout: 120_000,
  });
  let json: any = null;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    /* text output */
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

const as = (key: string) => ({
  get: (path: string) => request(api.url).get(path).set('authorization', `Bearer ${key}`),
  post: (path: string) => request(api.url).post(path).set('authorization', `Bearer ${key}`),
  delete: (path: string) => request(api.url).delete(path).set('authorization', `Bearer ${key}`),
});

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  hooks = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  env = await createTestEnv('tenancy');
  // Keys are required although the API listens on loopback; verified keys are not cached, so a revocation shows at once.
  api = await startApi(env, { AUTH: 'keys', AUTH_CACHE_MS: '0', OUTBOUND_ALLOWLIST: '127.0.0.1' });
  worker = await startWorker(env, { OUTBOUND_ALLOWLIST: '127.0.0.1', WEBHOOK_DISPATCH_POLL_MS: '500' });

  const tenantA = admin('tenants', 'create', 'Team A', '--json');
  const tenantB = admin('tenants', 'create', 'Team B', '--json');
  assert.equal(tenantA.status, 0, tenantA.stderr);
  assert.match(tenantA.json.id, /^tn_/);
  a.tenant = tenantA.json.id;
  a.tenantB = tenantB.json.id;
  keys.a = admin('keys', 'create', '--tenant', a.tenant, '--name', 'ci', '--json').json.key;
  keys.b = admin('keys', 'create', '--tenant', a.tenantB, '--json').json.key;

  // Tenant A: a webhook endpoint, a dataset, a registered base, a job trained to the end with checkpoints.
  const endpoint = await as(keys.a).post('/v1/webhook-endpoints').send({ url: `${hooks}/a` });
  assert.equal(endpoint.status, 201, JSON.stringify(endpoint.body));
  a.endpoint = endpoint.body.id;
  const endpointB = await as(keys.b).post('/v1/webhook-endpoints').send({ url: `${hooks}/b` });
  assert.equal(endpointB.status, 201, JSON.stringify(endpointB.body));
  const ds = await as(keys.a).post('/v1/datasets').field('task', 'image-classification').attach('file', SAMPLE);
  assert.equal(ds.status, 201, JSON.stringify(ds.body));
  a.dataset = ds.body.id;
  const base: TextBaseModel = {
    id: 'bm_tenant_a_text', object: 'base_model', name: "A's encoder", task: 'text-classification', description: '', format: 'onnx', inputShape: [16],
    featureLayer: 'last_hidden_state', featureShape: [16], preprocessing: { tokenizer: { kind: 'wordpiece', files: ['tokenizer.json'], vocabSize: 100, lowercase: true }, maxLength: 16, pooling: 'mean' },
    source: 'upload', license: 'MIT', pretrainedOn: 'text',
  };
  await baseModels.createUserBase(api.app.db, { tenantId: a.tenant, model: base, storageKey: 'base-models/none', sha256: '', bytes: 1 });
  a.base = base.id;
  const job = await as(keys.a)
    .post('/v1/fine-tunes')
    .set('idempotency-key', 'same-key')
    .send({ baseModel: 'bm_mnist_cnn', dataset: a.dataset, seed: 3, earlyStopping: false, hyperparameters: { epochs: 2, batchSize: 16 } });
  assert.equal(job.status, 201, JSON.stringify(job.body));
  a.job = job.body.id;
  const done = await waitFor('A\'s job to end', async () => {
    const r = await as(keys.a).get(`/v1/fine-tunes/${a.job}`);
    return ['succeeded', 'failed', 'cancelled'].includes(r.body.status) ? r.body : null;
  }, 300_000, 500);
  assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  const cks = await as(keys.a).get(`/v1/fine-tunes/${a.job}/checkpoints`);
  assert.ok(cks.body.data.length > 0, 'the job wrote checkpoints');
  a.checkpoint = cks.body.data[0].id;
});
after(async () => {
  await worker?.stop();
  await api?.close();
  receiver?.close();
});

describe('API keys', () => {
  test('no key, a bad key, a malformed header: 401 unauthorized in the error shape, with WWW-Authenticate: Bearer', async () => {
    const none = await request(api.url).get('/v1/datasets');
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'unauthorized');
    assert.match(String(none.headers['www-authenticate']), /^Bearer realm="graft"$/);
    for (const header of ['Bearer gk_live_' + 'x'.repeat(43), 'Bearer nonsense', `Basic ${Buffer.from('a:b').toString('base64')}`, 'Bearer']) {
      const r = await request(api.url).get('/v1/fine-tunes').set('authorization', header);
      assert.equal(r.status, 401, header);
      assert.equal(r.body.error.code, 'unauthorized');
      assert.match(String(r.headers['www-authenticate']), /^Bearer/);
    }
    // An upload without a key is refused before its body is read.
    const upload = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', SAMPLE);
    assert.equal(upload.status, 401);
    assert.equal((await as(keys.a).get('/v1/datasets')).status, 200);
  });

  test('health, readiness, metrics, the OpenAPI document, /docs and the dashboard need no key', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs/']) {
      const r = await request(api.url).get(path);
      assert.ok(r.status === 200 || (path === '/readyz' && r.status === 503), `${path}: ${r.status}`);
    }
    const page = await request(api.url).get('/');
    assert.ok(page.status === 200 || page.status === 404, `dashboard: ${page.status}`); // 404 when the dashboard was not built
    assert.notEqual(page.status, 401);
  });

  test('the admin CLI lists keys by prefix (never the secret), records their use, and revokes them', async () => {
    const extra = admin('keys', 'create', '--tenant', a.tenant, '--name', 'to revoke', '--json');
    assert.equal(extra.status, 0, extra.stderr);
    assert.match(extra.json.key, /^gk_live_[A-Za-z0-9_-]{43}$/);
    assert.equal(extra.json.prefix, extra.json.key.slice(0, 16));
    assert.equal((await as(extra.json.key).get('/v1/fine-tunes')).status, 200);

    const listed = admin('keys', 'list', '--tenant', a.tenant, '--json');
    assert.equal(listed.status, 0, listed.stderr);
    assert.ok(!listed.stdout.includes(extra.json.key), 'the secret is never listed');
    const row = listed.json.find((k: { id: string }) => k.id === extra.json.id);
    assert.equal(row.prefix, extra.json.prefix);
    assert.equal(row.name, 'to revoke');
    await waitFor('the key\'s use to be recorded', async () => admin('keys', 'list', '--json').json.find((k: { id: string; lastUsedAt: string | null }) => k.id === extra.json.id)?.lastUsedAt, 30_000, 200);
    const text = admin('keys', 'list');
    assert.match(text.stdout, new RegExp(`${extra.json.prefix}…`));

    const revoked = admin('keys', 'revoke', extra.json.id);
    assert.equal(revoked.status, 0, revoked.stderr);
    const after = await as(extra.json.key).get('/v1/fine-tunes');
    assert.equal(after.status, 401);
    assert.equal(after.body.error.code, 'unauthorized');
    assert.ok(admin('keys', 'list', '--json').json.find((k: { id: string }) => k.id === extra.json.id).revokedAt);

    assert.equal(admin('keys', 'revoke', 'key_nope').status, 3);
    assert.equal(admin('keys', 'create', '--tenant', 'tn_nope').status, 3);
    assert.equal(admin('keys', 'create').status, 2);
    const tenants = admin('tenants', 'list', '--json').json.map((t: { id: string }) => t.id);
    assert.deepEqual([...tenants].sort(), ['default', a.tenant, a.tenantB].sort());
  });
});

describe('tenant B and tenant A\'s objects', () => {
  test('A sees its own objects on every route', async () => {
    const A = as(keys.a);
    for (const path of [
      `/v1/datasets/${a.dataset}`, `/v1/datasets/${a.dataset}/samples`, `/v1/fine-tunes/${a.job}`, `/v1/fine-tunes/${a.job}/events`, `/v1/fine-tunes/${a.job}/metrics`,
      `/v1/fine-tunes/${a.job}/checkpoints`, `/v1/fine-tunes/${a.job}/webhook-deliveries`, `/v1/fine-tunes/${a.job}/model`,
      `/v1/fine-tunes/${a.job}/checkpoints/${a.checkpoint}/model`, `/v1/base-models/${a.base}`, `/v1/base-models/${a.job}`, `/v1/webhook-endpoints/${a.endpoint}`,
    ]) {
      const r = await A.get(path);
      assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.body)}`);
    }
  });

  test('every id of A answers 404 to B, as if it did not exist', async () => {
    const B = as(keys.b);
    const gets: [string, string][] = [
      [`/v1/datasets/${a.dataset}`, 'dataset_not_found'],
      [`/v1/datasets/${a.dataset}/samples`, 'dataset_not_found'],
      [`/v1/fine-tunes/${a.job}`, 'fine_tune_not_found'],
      [`/v1/fine-tunes/${a.job}/events`, 'fine_tune_not_found'],
      [`/v1/fine-tunes/${a.job}/metrics`, 'fine_tune_not_found'],
      [`/v1/fine-tunes/${a.job}/checkpoints`, 'fine_tune_not_found'],
      [`/v1/fine-tunes/${a.job}/checkpoints/${a.checkpoint}/model`, 'fine_tune_not_found'],
      [`/v1/fine-tunes/${a.job}/model`, 'fine_tune_not_found'],
      [`/v1/fine-tunes/${a.job}/webhook-deliveries`, 'fine_tune_not_found'],
      [`/v1/base-models/${a.base}`, 'base_model_not_found'],
      [`/v1/base-models/${a.job}`, 'base_model_not_found'],
      [`/v1/webhook-endpoints/${a.endpoint}`, 'webhook_endpoint_not_found'],
    ];
    for (const [path, code] of gets) {
      const r = await B.get(path);
      assert.equal(r.status, 404, `${path}: ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, code, path);
    }
    const sse = await B.get(`/v1/fine-tunes/${a.job}/events`).set('accept', 'text/event-stream');
    assert.equal(sse.status, 404);
    assert.equal(sse.body.error.code, 'fine_tune_not_found');
    const predict = await B.post(`/v1/fine-tunes/${a.job}/predict`).send({ inputs: [{ image: 'aGk=' }] });
    assert.equal(predict.status, 404, JSON.stringify(predict.body));
    const predictCk = await B.post(`/v1/fine-tunes/${a.job}/checkpoints/${a.checkpoint}/predict`).send({ inputs: [{ image: 'aGk=' }] });
    assert.equal(predictCk.status, 404, JSON.stringify(predictCk.body));
    assert.equal((await B.post(`/v1/fine-tunes/${a.job}/cancel`)).status, 404);
    for (const path of [`/v1/datasets/${a.dataset}`, `/v1/fine-tunes/${a.job}`, `/v1/base-models/${a.base}`, `/v1/webhook-endpoints/${a.endpoint}`]) {
      const r = await B.delete(path);
      assert.equal(r.status, 404, `DELETE ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    // Nothing of A's was touched.
    for (const path of [`/v1/datasets/${a.dataset}`, `/v1/fine-tunes/${a.job}`, `/v1/base-models/${a.base}`, `/v1/webhook-endpoints/${a.endpoint}`]) {
      assert.equal((await as(keys.a).get(path)).status, 200, path);
    }
  });

  test('B\'s lists hold none of A\'s rows; A\'s ids are no cursor for B', async () => {
    const B = as(keys.b);
    assert.deepEqual((await B.get('/v1/datasets')).body.data, []);
    assert.deepEqual((await B.get('/v1/fine-tunes')).body.data, []);
    const endpoints = (await B.get('/v1/webhook-endpoints')).body.data.map((e: { id: string }) => e.id);
    assert.equal(endpoints.length, 1);
    assert.ok(!endpoints.includes(a.endpoint));
    const bases = (await B.get('/v1/base-models?limit=100')).body.data.map((b: { id: string }) => b.id);
    assert.ok(bases.includes('bm_mnist_cnn'), 'catalog bases are shared');
    assert.ok(!bases.includes(a.base), 'registered bases are per tenant');
    assert.ok((await as(keys.a).get('/v1/base-models?limit=100')).body.data.some((b: { id: string }) => b.id === a.base));
    for (const path of [`/v1/datasets?after=${a.dataset}`, `/v1/fine-tunes?after=${a.job}`, `/v1/webhook-endpoints?after=${a.endpoint}`, `/v1/base-models?after=${a.base}`]) {
      const r = await B.get(path);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.param, 'after');
    }
  });

  test('B cannot train on A\'s dataset or bases (404 naming the field); idempotency keys are per tenant', async () => {
    const B = as(keys.b);
    const own = await B.post('/v1/datasets').field('task', 'image-classification').attach('file', SAMPLE);
    assert.equal(own.status, 201);
    const cases: [object, string, string][] = [
      [{ baseModel: 'bm_mnist_cnn', dataset: a.dataset }, 'dataset_not_found', 'dataset'],
      [{ baseModel: 'bm_mnist_cnn', dataset: own.body.id, testDataset: a.dataset }, 'dataset_not_found', 'testDataset'],
      [{ baseModel: a.job, dataset: own.body.id }, 'base_model_not_found', 'baseModel'],
      [{ baseModel: a.base, dataset: own.body.id }, 'base_model_not_found', 'baseModel'],
    ];
    for (const [body, code, param] of cases) {
      const r = await B.post('/v1/fine-tunes').send(body);
      assert.equal(r.status, 404, JSON.stringify(r.body));
      assert.equal(r.body.error.code, code);
      assert.equal(r.body.error.param, param);
    }
    // The key A used is B's to use too: a new job of B's, not A's replayed (nor a 409).
    const mine = await B.post('/v1/fine-tunes').set('idempotency-key', 'same-key').send({ baseModel: 'bm_mnist_cnn', dataset: own.body.id, hyperparameters: { epochs: 1 } });
    assert.equal(mine.status, 201, JSON.stringify(mine.body));
    assert.notEqual(mine.body.id, a.job);
    const again = await B.post('/v1/fine-tunes').set('idempotency-key', 'same-key').send({ baseModel: 'bm_mnist_cnn', dataset: own.body.id, hyperparameters: { epochs: 1 } });
    assert.equal(again.status, 200);
    assert.equal(again.body.id, mine.body.id);
    assert.equal((await B.post(`/v1/fine-tunes/${mine.body.id}/cancel`)).status < 300, true);

    // The CLI client with GRAFT_API_KEY sees B's jobs only; without a key it exits with the API code (3).
    // (Spawned asynchronously: the API answering it runs in this process.)
    const cli = (key?: string) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['packages/client/bin/graft.mjs', 'jobs', '--json'], { cwd: ROOT, env: { ...process.env, GRAFT_URL: api.url, GRAFT_API_KEY: key ?? '' } });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (status) => resolve({ status, stdout, stderr }));
      });
    const listed = await cli(keys.b);
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout).data.map((j: { id: string }) => j.id), [mine.body.id]);
    const refused = await cli();
    assert.equal(refused.status, 3);
    assert.match(refused.stderr, /unauthorized/);
  });

  test('webhook endpoints receive their own tenant\'s events only', async () => {
    const deliveries = (await as(keys.a).get(`/v1/fine-tunes/${a.job}/webhook-deliveries?limit=100`)).body.data as { endpoint: string | null; url: string }[];
    assert.ok(deliveries.length > 0, 'A\'s job has deliveries');
    assert.ok(deliveries.every((d) => d.url === `${hooks}/a`), JSON.stringify(deliveries.map((d) => d.url)));
    await waitFor('A\'s endpoint to receive its job\'s events', async () => received.some((r) => r.path === '/a' && r.body.includes(a.job)), 60_000, 200);
    assert.ok(!received.some((r) => r.path === '/b' && r.body.includes(a.job)), 'B\'s endpoint got none of A\'s events');
  });
});

describe('development mode', () => {
  test('AUTH=none is refused unless the API listens on loopback; auto asks for keys off loopback', async () => {
    assert.throws(() => loadApiConfig({ ...env, AUTH: 'none', HOST: '0.0.0.0' }), /AUTH=none .*only allowed on a loopback address, and HOST is 0\.0\.0\.0/);
    await assert.rejects(buildApp({ ...loadApiConfig({ ...env }), AUTH: 'none', HOST: '10.1.2.3' }, { logger: false }), /loopback/);
    // The server itself refuses to start, saying why.
    const started = spawnSync(process.execPath, ['--import', 'tsx', 'apps/api/src/main.ts'], {
      cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env, AUTH: 'none', HOST: '0.0.0.0', PORT: '0' },
    });
    assert.notEqual(started.status, 0);
    assert.match(started.stderr, /AUTH=none .*loopback/);

    for (const [HOST, mode] of [['0.0.0.0', 'keys'], ['127.0.0.1', 'none'], ['::1', 'none'], ['localhost', 'none']] as const) {
      const app = await buildApp(loadApiConfig({ ...env, HOST }), { logger: false });
      assert.equal(app.authMode, mode, HOST);
      await app.close();
    }
    // Development mode: no key needed, everything is tenant `default` (none of A's or B's rows).
    const dev = await startApi(env);
    try {
      const r = await request(dev.url).get('/v1/fine-tunes');
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.data, []);
      assert.equal((await request(dev.url).get(`/v1/fine-tunes/${a.job}`)).status, 404);
    } finally {
      await dev.close();
    }
  });
});

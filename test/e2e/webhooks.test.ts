/**
 * Webhooks end to end: the API, a worker process, Postgres, Redis and a receiver on loopback (let
 * in by OUTBOUND_ALLOWLIST). The receiver verifies every signature; the job's own URL answers 500
 * twice, sees the retries (same webhook-id, new timestamp and signature), then 200; a registered
 * endpoint gets every event of the job; one that always fails is given up after its attempts.
 */
import { verifyWebhook, type WebhookPayload } from '@graft/contracts';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../helpers/env.ts';
import { startApi, startWorker, waitFor, type WorkerProcess } from '../helpers/processes.ts';

const SAMPLE = fileURLToPath(new URL('../../samples/digits-5-9.zip', import.meta.url));
const MAX_ATTEMPTS = 3;

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
  answered: number;
}

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;
let receiver: Server;
let base: string;
const received: Received[] = [];
/** How the receiver answers: by path, per webhook-id, the statuses of its first attempts (then 200). */
const script: Record<string, number[]> = { '/job': [500, 500], '/broken': [500, 500, 500, 500, 500] };
const attemptsSeen = new Map<string, number>();

before(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const id = String(req.headers['webhook-id']);
      const n = attemptsSeen.get(`${req.url}:${id}`) ?? 0;
      attemptsSeen.set(`${req.url}:${id}`, n + 1);
      const status = script[req.url ?? '']?.[n] ?? 200;
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now(), answered: status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  env = await createTestEnv('webhooks');
  const allow = { OUTBOUND_ALLOWLIST: '127.0.0.1' };
  api = await startApi(env, allow);
  worker = await startWorker(env, { ...allow, WEBHOOK_RETRY_BASE_MS: '300', WEBHOOK_MAX_ATTEMPTS: String(MAX_ATTEMPTS), WEBHOOK_DISPATCH_POLL_MS: '500' });
});
after(async () => {
  await worker?.stop();
  await api?.close();
  await new Promise((r) => receiver?.close(r));
});

const verified = (secret: string, r: Received): WebhookPayload => verifyWebhook(secret, r.headers, r.body);

test('webhook endpoints: created with a secret shown once, listed without it, URLs checked, deleted', async () => {
  const created = await request(api.url).post('/v1/webhook-endpoints').send({ url: `${base}/tmp`, events: ['fine_tune.succeeded'], description: 'tmp' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.match(created.body.id, /^we_/);
  assert.match(created.body.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  const listed = await request(api.url).get('/v1/webhook-endpoints');
  assert.equal(listed.status, 200);
  const mine = listed.body.data.find((e: { id: string }) => e.id === created.body.id);
  assert.deepEqual(mine, { id: created.body.id, object: 'webhook_endpoint', url: `${base}/tmp`, events: ['fine_tune.succeeded'], description: 'tmp', createdAt: created.body.createdAt });
  assert.equal((await request(api.url).get(`/v1/webhook-endpoints/${created.body.id}`)).body.secret, undefined);

  // Private, loopback-but-another-port? (the allow-list names the address, any port), non-http, unresolvable.
  for (const url of ['http://10.1.2.3/hook', 'http://169.254.169.254/latest', 'ftp://127.0.0.1/x', 'http://nothing.invalid/']) {
    const res = await request(api.url).post('/v1/webhook-endpoints').send({ url });
    assert.equal(res.status, 422, `${url}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, 'invalid_webhook_url');
    assert.equal(res.body.error.param, 'url');
  }
  const badEvent = await request(api.url).post('/v1/webhook-endpoints').send({ url: `${base}/x`, events: ['fine_tune.nope'] });
  assert.equal(badEvent.status, 400);

  const deleted = await request(api.url).delete(`/v1/webhook-endpoints/${created.body.id}`);
  assert.deepEqual(deleted.body, { id: created.body.id, object: 'webhook_endpoint', deleted: true });
  assert.equal((await request(api.url).delete(`/v1/webhook-endpoints/${created.body.id}`)).body.error.code, 'webhook_endpoint_not_found');
});

test('a training job: its own URL retried after two 500s, an endpoint sees every event, a broken one is given up', async () => {
  const all = await request(api.url).post('/v1/webhook-endpoints').send({ url: `${base}/all` });
  assert.equal(all.status, 201);
  const broken = await request(api.url).post('/v1/webhook-endpoints').send({ url: `${base}/broken`, events: ['fine_tune.succeeded'] });
  assert.equal(broken.status, 201);

  const upload = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', SAMPLE);
  assert.equal(upload.status, 201, JSON.stringify(upload.body));
  const created = await request(api.url).post('/v1/fine-tunes').send({
    baseModel: 'bm_mnist_cnn', dataset: upload.body.id, hyperparameters: { epochs: 2, batchSize: 32 }, earlyStopping: false, seed: 3,
    webhookUrl: `${base}/job`, webhookEvents: ['fine_tune.succeeded', 'fine_tune.failed'],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const job = created.body;
  assert.deepEqual({ ...job.webhook, secret: undefined }, { url: `${base}/job`, events: ['fine_tune.succeeded', 'fine_tune.failed'], secret: undefined });
  assert.match(job.webhook.secret, /^whsec_/);
  assert.equal((await request(api.url).get(`/v1/fine-tunes/${job.id}`)).body.webhook.secret, undefined, 'the secret is shown at creation only');

  // The job's URL: 500, 500, then 200 — one delivery, one id, three signed attempts.
  await waitFor('the job URL to get its 200', async () => received.some((r) => r.path === '/job' && r.answered === 200), 240_000, 100);
  const toJob = received.filter((r) => r.path === '/job');
  assert.deepEqual(toJob.map((r) => r.answered), [500, 500, 200]);
  assert.equal(new Set(toJob.map((r) => r.headers['webhook-id'])).size, 1, 'the same webhook-id on every attempt');
  assert.match(String(toJob[0]!.headers['webhook-id']), /^msg_/);
  for (const r of toJob) {
    const payload = verified(job.webhook.secret, r);
    assert.equal(payload.type, 'fine_tune.succeeded');
    assert.equal(payload.data.fineTune, job.id);
    assert.equal(payload.data.status, 'succeeded');
    assert.equal(payload.data.event.type, 'status');
  }
  assert.equal(toJob[0]!.body, toJob[2]!.body, 'the same body on every attempt');
  assert.ok(toJob[1]!.at - toJob[0]!.at >= 250, `first retry after the base delay (${toJob[1]!.at - toJob[0]!.at} ms)`);
  assert.ok(toJob[2]!.at - toJob[1]!.at >= 550, `second retry after twice the base delay (${toJob[2]!.at - toJob[1]!.at} ms)`);
  assert.throws(() => verified(all.body.secret, toJob[0]!), /no matching signature/, 'another secret does not verify');
  assert.throws(() => verifyWebhook(job.webhook.secret, toJob[0]!.headers, toJob[0]!.body.replace('succeeded', 'failed')), /no matching signature/);

  // The endpoint for every event: each event of the job that webhooks carry, once, in order.
  const events = (await request(api.url).get(`/v1/fine-tunes/${job.id}/events?limit=100`)).body.data as { id: string; type: string; level: string }[];
  const carried = events.filter((e) => e.type === 'status' || e.type === 'epoch' || e.level === 'warning');
  await waitFor('every event at /all', async () => received.filter((r) => r.path === '/all' && verified(all.body.secret, r).data.fineTune === job.id).length >= carried.length, 30_000, 100);
  const toAll = received.filter((r) => r.path === '/all').map((r) => verified(all.body.secret, r)).filter((p) => p.data.fineTune === job.id);
  assert.deepEqual(toAll.map((p) => p.data.event.id).sort(), carried.map((e) => e.id).sort());
  const types: string[] = toAll.map((p) => p.type);
  for (const t of ['fine_tune.queued', 'fine_tune.running', 'fine_tune.epoch', 'fine_tune.succeeded']) assert.ok(types.includes(t), `${t} in ${types.join(', ')}`);
  assert.equal(types.filter((t) => t === 'fine_tune.epoch').length, 2);

  // The broken endpoint: MAX_ATTEMPTS attempts, then failed.
  const deliveries = async () => (await request(api.url).get(`/v1/fine-tunes/${job.id}/webhook-deliveries?limit=100`)).body.data as {
    id: string; endpoint: string | null; url: string; type: string; status: string; attempts: { attempt: number; responseStatus: number | null; error: string | null }[]; nextAttemptAt: string | null;
  }[];
  await waitFor('the broken endpoint to be given up', async () => (await deliveries()).some((d) => d.endpoint === broken.body.id && d.status === 'failed'), 30_000, 200);
  const list = await deliveries();
  const own = list.filter((d) => d.endpoint === null);
  assert.equal(own.length, 1);
  assert.equal(own[0]!.id, toJob[0]!.headers['webhook-id']);
  assert.equal(own[0]!.status, 'succeeded');
  assert.deepEqual(own[0]!.attempts.map((a) => [a.attempt, a.responseStatus]), [[1, 500], [2, 500], [3, 200]]);
  assert.equal(own[0]!.attempts[0]!.error, 'the endpoint answered HTTP 500');
  assert.equal(own[0]!.nextAttemptAt, null);
  const gaveUp = list.find((d) => d.endpoint === broken.body.id)!;
  assert.equal(gaveUp.attempts.length, MAX_ATTEMPTS);
  assert.ok(gaveUp.attempts.every((a) => a.responseStatus === 500));
  assert.equal(received.filter((r) => r.path === '/broken').length, MAX_ATTEMPTS, 'no attempt after the last');
  assert.ok(list.filter((d) => d.endpoint === all.body.id).every((d) => d.status === 'succeeded' && d.attempts.length === 1));
});

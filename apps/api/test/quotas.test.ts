/**
 * Per-tenant rate limits and quotas on the real Postgres and Redis, as a client sees them: 429 in
 * the error shape with `Retry-After` and RateLimit headers, buckets per tenant and per kind
 * (reads, writes), allowed again once the bucket refills; the concurrent-jobs quota exact under
 * parallel creates; the storage quota with the figure and the limit in its message; both read
 * per-tenant counters that equal a recount of the rows.
 */
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { createDb, quotas, tenants, type Db } from '@graft/db';
import { createRedis } from '@graft/queue';
import { takeToken } from '../src/plugins/rate-limit.ts';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { colourEntries, writeZip } from '../../../test/helpers/fixtures.ts';
import { startApi } from '../../../test/helpers/processes.ts';

let env: TestEnv;
let db: Db;
let zip: string;
const apis: Awaited<ReturnType<typeof startApi>>[] = [];
const api = async (extra: Record<string, string>) => {
  const a = await startApi(env, extra);
  apis.push(a);
  return a;
};

before(async () => {
  env = await createTestEnv('quotas');
  db = createDb(env.DATABASE_URL);
  mkdirSync(join(env.STORAGE_DIR, 'fx'), { recursive: true });
  zip = join(env.STORAGE_DIR, 'fx', 'd.zip');
  await writeZip(zip, colourEntries(4));
});
after(async () => {
  for (const a of apis) await a.close();
  await db?.$disconnect();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const upload = (url: string) => request(url).post('/v1/datasets').field('task', 'image-classification').attach('file', zip);

describe('rate limits', () => {
  test('per tenant and per kind: 429 rate_limited with Retry-After once the bucket is empty, allowed again after it', async () => {
    const a = await api({ AUTH: 'keys', RATE_LIMIT_READS_PER_MINUTE: '20', RATE_LIMIT_WRITES_PER_MINUTE: '3' });
    const keyA = (await tenants.createApiKey(db, (await tenants.createTenant(db, 'a')).id)).key;
    const keyB = (await tenants.createApiKey(db, (await tenants.createTenant(db, 'b')).id)).key;
    const get = (key: string) => request(a.url).get('/v1/datasets').set('authorization', `Bearer ${key}`);
    const post = (key: string) => request(a.url).post('/v1/fine-tunes').set('authorization', `Bearer ${key}`).send({});

    const first = await get(keyA);
    assert.equal(first.status, 200);
    assert.equal(first.headers['ratelimit-limit'], '20');
    assert.equal(first.headers['ratelimit-remaining'], '19');
    assert.ok(Number(first.headers['ratelimit-reset']) >= 1);
    let ok = 1;
    let refused: request.Response | undefined;
    while (!refused && ok < 200) {
      const res = await get(keyA);
      if (res.status === 429) refused = res;
      else {
        assert.equal(res.status, 200);
        ok++;
      }
    }
    assert.ok(refused, 'the reads bucket ran out');
    assert.ok(ok >= 20, `${ok} reads allowed before the 429 (a burst of 20, plus what refilled meanwhile)`);
    assert.equal(refused.body.error.code, 'rate_limited');
    assert.match(refused.body.error.message, /limit is 20 a minute/);
    const retryAfter = Number(refused.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 3, `Retry-After ${retryAfter} (one token every 3 s)`);
    assert.equal(refused.headers['ratelimit-remaining'], '0');

    // Another tenant, and the same tenant's writes, have buckets of their own.
    assert.equal((await get(keyB)).status, 200);
    const write = await post(keyA);
    assert.equal(write.status, 400, JSON.stringify(write.body));
    assert.equal(write.headers['ratelimit-limit'], '3');

    // Once Retry-After has passed, the tenant's reads go through again.
    await sleep(retryAfter * 1000 + 250);
    assert.equal((await get(keyA)).status, 200);

    // Writes: 3 in the bucket, one used above.
    assert.equal((await post(keyA)).status, 400);
    assert.equal((await post(keyA)).status, 400);
    const w = await post(keyA);
    assert.equal(w.status, 429);
    assert.equal(w.body.error.code, 'rate_limited');
    assert.ok(Number(w.headers['retry-after']) >= 1);
    // A stranger is refused by authentication, before any bucket.
    assert.equal((await request(a.url).get('/v1/datasets')).status, 401);
  });

  test('off in development mode (no keys) unless asked for', async () => {
    const dev = await api({});
    for (let i = 0; i < 30; i++) {
      const res = await request(dev.url).get('/v1/datasets');
      assert.equal(res.status, 200);
      assert.equal(res.headers['ratelimit-limit'], undefined);
    }
    const on = await api({ RATE_LIMIT: 'on', RATE_LIMIT_READS_PER_MINUTE: '2' });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await request(on.url).get('/v1/workers')).status);
    assert.deepEqual(statuses, [200, 200, 429]);
    assert.equal((await request(on.url).get('/healthz')).status, 200, 'health checks are never limited');
  });

  test('a limiter whose Redis does not answer lets the request through (fails open)', async () => {
    const dead = createRedis('redis://127.0.0.1:1', { commandTimeoutMs: 500 });
    dead.on('error', () => {});
    try {
      assert.equal(await takeToken(dead, env.QUEUE_PREFIX, 'default', 'reads', 10), null);
    } finally {
      dead.disconnect();
    }
  });
});

describe('quotas', () => {
  test('concurrent jobs: exactly the limit gets through parallel creates; 429 quota_exceeded with Retry-After; a cancel frees a slot', async () => {
    const q = await api({ MAX_ACTIVE_JOBS_PER_TENANT: '3' });
    const ds = await upload(q.url);
    assert.equal(ds.status, 201, JSON.stringify(ds.body));
    const body = { baseModel: 'bm_mnist_cnn', dataset: ds.body.id };
    const results = await Promise.all(Array.from({ length: 6 }, () => request(q.url).post('/v1/fine-tunes').send(body)));
    const created = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status === 429);
    assert.equal(created.length, 3, results.map((r) => `${r.status} ${JSON.stringify(r.body.error ?? '')}`).join('\n'));
    assert.equal(refused.length, 3);
    for (const r of refused) {
      assert.equal(r.body.error.code, 'quota_exceeded');
      assert.match(r.body.error.message, /has 3 jobs queued or running, its limit is 3/);
      assert.equal(r.headers['retry-after'], '30');
    }
    // A new Idempotency-Key at the limit is refused, and not used up by the refusal.
    const keyed = await request(q.url).post('/v1/fine-tunes').set('Idempotency-Key', 'k1').send(body);
    assert.equal(keyed.status, 429);
    assert.equal((await request(q.url).post(`/v1/fine-tunes/${created[0]!.body.id}/cancel`)).status, 200);
    const again = await request(q.url).post('/v1/fine-tunes').set('Idempotency-Key', 'k1').send(body);
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.equal((await request(q.url).post('/v1/fine-tunes').set('Idempotency-Key', 'k1').send(body)).status, 200, 'a replay at the limit');
    assert.equal((await request(q.url).post('/v1/fine-tunes').send(body)).status, 429);
    // The quota reads a per-tenant counter: it equals a count of the jobs themselves.
    assert.deepEqual(await quotas.counters(db, 'default'), await quotas.recount(db, 'default'));
    assert.equal((await quotas.counters(db, 'default')).activeJobs, 3);
  });

  test('storage: an upload past the limit, and anything new at the limit, answer 429 quota_exceeded with the figure', async () => {
    const size = statSync(zip).size;
    const used = await quotas.storedBytes(db, 'default');
    const roomy = await api({ MAX_STORAGE_BYTES_PER_TENANT: String(used + size + 10) });
    const first = await upload(roomy.url);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(await quotas.storedBytes(db, 'default'), used + size);
    const second = await upload(roomy.url);
    assert.equal(second.status, 429);
    assert.equal(second.body.error.code, 'quota_exceeded');
    assert.match(second.body.error.message, new RegExp(`upload of ${size} bytes .* to ${used + 2 * size} bytes, past its limit of ${used + size + 10}`));
    assert.equal(second.headers['retry-after'], undefined, 'waiting does not free bytes');
    assert.equal(await quotas.storedBytes(db, 'default'), used + size, 'nothing of the refused upload is kept');

    const full = await api({ MAX_STORAGE_BYTES_PER_TENANT: String(used + size) });
    const job = await request(full.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mnist_cnn', dataset: first.body.id });
    assert.equal(job.status, 429);
    assert.match(job.body.error.message, new RegExp(`stores ${used + size} bytes .*its limit is ${used + size} `));
    assert.equal((await upload(full.url)).status, 429);
    // A base to fetch from a URL is refused before anything is fetched.
    const base = await request(full.url).post('/v1/base-models').send({ name: 'b', url: 'https://example.invalid/model.json', featureLayer: 'f' });
    assert.equal(base.status, 429);
    assert.equal(base.body.error.code, 'quota_exceeded');
    // Deleting makes room.
    assert.equal((await request(full.url).delete(`/v1/datasets/${first.body.id}`)).status, 200);
    assert.equal((await upload(full.url)).status, 201);
    assert.deepEqual(await quotas.counters(db, 'default'), await quotas.recount(db, 'default'), 'the bytes counter equals a sum over the rows');
  });
});

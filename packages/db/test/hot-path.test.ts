/**
 * The API's hot queries outside Prisma's query builder (the single-statement job insert, the
 * prepared-statement read) give exactly the rows Prisma gives, refuse what the transaction refused,
 * and fall back to the transaction when webhook deliveries are wanted.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { normalizeFineTune, type FineTuneSpec } from '@graft/contracts';
import { poolOf } from '../src/client.ts';
import { createDb, datasets, dropDatabase, ensureDatabase, fineTunes, migrate, MIGRATIONS_DIR, tenants, type Db } from '../src/index.ts';

const url = new URL(process.env.GRAFT_TEST_TEMPLATE_URL!);
url.pathname = `${url.pathname}_hot${Math.random().toString(36).slice(2, 6)}`;
let db: Db;
let spec: FineTuneSpec;

before(async () => {
  await ensureDatabase(url.toString());
  await migrate(url.toString(), MIGRATIONS_DIR);
  db = createDb(url.toString());
  const ds = await datasets.createDataset(db, {
    name: 'd', task: 'image-classification', storageKey: 'datasets/x.zip', bytes: 10, sha256: 'ab', imageCount: 2,
    classes: [{ name: 'a', images: 1 }, { name: 'b', images: 1 }], skipped: [],
  });
  spec = normalizeFineTune({ baseModel: 'bm_mnist_cnn', dataset: ds.id, hyperparameters: { epochs: 2 } }, { id: 'bm_mnist_cnn', featureLayer: 'features' }, 7);
});
after(async () => {
  await db?.$disconnect();
  await dropDatabase(url.toString());
});

test('the single-statement insert returns the row Prisma reads back, with its queued event and no deliveries', async () => {
  const created = await fineTunes.createQueuedFineTune(db, { spec, requestHash: 'h1', idempotencyKey: 'key-1', resources: { gpu: 'any', memoryMB: 512, estimated: true } });
  assert.equal(created.mayHaveDeliveries, false);
  const prisma = await db.fineTune.findUnique({ where: { id: created.row.id } });
  assert.deepEqual(created.row, prisma);
  const events = await db.event.findMany({ where: { fineTuneId: created.row.id } });
  assert.deepEqual(events.map((e) => [e.level, e.type, e.message, e.data]), [['info', 'status', 'Job queued', { status: 'queued' }]]);
  assert.equal(await db.webhookDelivery.count(), 0);

  assert.deepEqual(await fineTunes.findByIdempotencyKey(db, 'default', 'key-1'), prisma, 'the prepared read by key');
  assert.equal(await fineTunes.findByIdempotencyKey(db, 'another-tenant', 'key-1'), null);

  // The same key again: the unique index refuses it, recognisably.
  await assert.rejects(fineTunes.createFineTune(db, { spec, requestHash: 'h1', idempotencyKey: 'key-1' }), (err) => fineTunes.isUniqueViolation(err));
});

test('the prepared-statement read equals Prisma\'s row once every column is set', async () => {
  const { id } = await fineTunes.createFineTune(db, { spec, requestHash: 'h2' });
  await db.fineTune.update({
    where: { id },
    data: {
      status: 'succeeded', phase: 'head', epoch: 2, batch: 3, batches: 4, latestMetrics: { loss: 0.5 }, result: { classes: ['a', 'b'] },
      error: { code: 'x', message: 'y' }, modelKey: 'models/x.zip', modelBytes: 9_007_199_254_740_993n, attempts: 1,
      startedAt: new Date('2026-01-02T03:04:05.678Z'), finishedAt: new Date(), cancelRequestedAt: new Date(),
      webhookUrl: 'https://example.com/hook', webhookEvents: ['fine_tune.succeeded'], webhookSecret: 'whsec_x',
    },
  });
  const prisma = await db.fineTune.findUnique({ where: { id } });
  assert.deepEqual(await fineTunes.getFineTune(db, id, null), prisma);
  assert.deepEqual(await fineTunes.getFineTune(db, id, 'default'), prisma);
  assert.equal(await fineTunes.getFineTune(db, id, 'another-tenant'), null);
  assert.equal(await fineTunes.getFineTune(db, 'ft_missing', null), null);
});

test('a missing, deleted or other tenant\'s dataset and an unknown fine-tune base are refused as before, naming the field', async () => {
  const other = await tenants.createTenant(db, 'other');
  await assert.rejects(fineTunes.createFineTune(db, { tenantId: other.id, spec, requestHash: 'h' }), { code: 'dataset_not_found', param: 'dataset' });
  const own = await fineTunes.createFineTune(db, { tenantId: other.id, spec: { ...spec, dataset: (await datasets.createDataset(db, {
    tenantId: other.id, name: 'o', task: 'image-classification', storageKey: 'datasets/o.zip', bytes: 10, sha256: 'cd', imageCount: 2,
    classes: [{ name: 'a', images: 1 }, { name: 'b', images: 1 }], skipped: [],
  })).id }, requestHash: 'h' });
  assert.equal(own.tenantId, other.id);
  // A succeeded job of one tenant is no base for another.
  await assert.rejects(fineTunes.createFineTune(db, { spec: { ...spec, baseModel: own.id }, requestHash: 'h' }), { code: 'base_model_not_found', param: 'baseModel' });
  await assert.rejects(fineTunes.createFineTune(db, { spec: { ...spec, dataset: 'ds_missing' }, requestHash: 'h' }), { code: 'dataset_not_found', param: 'dataset' });
  await assert.rejects(fineTunes.createFineTune(db, { spec: { ...spec, testDataset: 'ds_missing' }, requestHash: 'h' }), { code: 'dataset_not_found', param: 'testDataset' });
  await assert.rejects(fineTunes.createFineTune(db, { spec: { ...spec, baseModel: 'ft_missing' }, requestHash: 'h' }), { code: 'base_model_not_found', param: 'baseModel' });
  await db.dataset.update({ where: { id: spec.dataset }, data: { deletedAt: new Date() } });
  try {
    await assert.rejects(fineTunes.createFineTune(db, { spec, requestHash: 'h' }), { code: 'dataset_not_found' });
  } finally {
    await db.dataset.update({ where: { id: spec.dataset }, data: { deletedAt: null } });
  }
});

test('an endpoint that wants fine_tune.queued sends the insert through the transaction, which records its delivery', async () => {
  await db.webhookEndpoint.create({ data: { id: 'we_hot', url: 'https://example.com/all', events: ['fine_tune.queued'], secret: 's' } });
  try {
    const created = await fineTunes.createQueuedFineTune(db, { spec, requestHash: 'h3' });
    assert.equal(created.mayHaveDeliveries, true);
    const deliveries = await db.webhookDelivery.findMany({ where: { fineTuneId: created.row.id } });
    assert.deepEqual(deliveries.map((d) => [d.endpointId, d.type]), [['we_hot', 'fine_tune.queued']]);
  } finally {
    await db.webhookDelivery.deleteMany({});
    await db.webhookEndpoint.delete({ where: { id: 'we_hot' } });
  }
});

test('the active-jobs quota holds on the single-statement path, under concurrent creates', async () => {
  const t = await tenants.createTenant(db, 'quota');
  const ds = await datasets.createDataset(db, {
    tenantId: t.id, name: 'q', task: 'image-classification', storageKey: 'datasets/q.zip', bytes: 10, sha256: 'ef', imageCount: 2,
    classes: [{ name: 'a', images: 1 }, { name: 'b', images: 1 }], skipped: [],
  });
  const outcomes = await Promise.allSettled(
    Array.from({ length: 8 }, () => fineTunes.createFineTune(db, { tenantId: t.id, maxActiveJobs: 3, spec: { ...spec, dataset: ds.id }, requestHash: 'q' })),
  );
  assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 3);
  for (const o of outcomes) if (o.status === 'rejected') assert.equal((o.reason as { code?: string }).code, 'quota_exceeded');
  assert.equal(await db.fineTune.count({ where: { tenantId: t.id } }), 3);
});

test('the prepared dataset read equals Prisma\'s row (image and text), and skips tombstones and other tenants', async () => {
  const text = await datasets.createDataset(db, {
    name: 't', task: 'text-classification', storageKey: 'datasets/t.csv', bytes: 9_007_199_254_740_993, sha256: 'cd', imageCount: 0,
    classes: [{ name: 'a', rows: 1 }], skipped: [], stats: { format: 'csv', rowCount: 1 }, rowsKey: 'datasets/t.rows', fingerprintsKey: 'datasets/t.fp',
  });
  for (const id of [spec.dataset, text.id]) {
    const prisma = await db.dataset.findUnique({ where: { id } });
    assert.deepEqual(await datasets.getDataset(db, id, 'default'), prisma);
    assert.deepEqual(await datasets.getDataset(db, id, null), prisma);
    assert.equal(await datasets.getDataset(db, id, 'another-tenant'), null);
  }
  await db.dataset.update({ where: { id: text.id }, data: { deletedAt: new Date() } });
  assert.equal(await datasets.getDataset(db, text.id, 'default'), null);
});

test('concurrent job reads share statements, each answer its own row, never older than its request', async () => {
  const t = await tenants.createTenant(db, 'readers');
  const mine = await Promise.all(Array.from({ length: 5 }, (_, i) => fineTunes.createFineTune(db, { spec, requestHash: `r${i}` })));
  const ids = [...mine.map((r) => r.id), 'ft_missing'];
  // Count the statements the pool sends (Postgres' own counters are flushed lazily, up to seconds later).
  const pool = poolOf(db)!;
  const query = pool.query.bind(pool);
  let statements = 0;
  pool.query = ((...args: Parameters<typeof query>) => {
    statements++;
    return query(...args);
  }) as typeof pool.query;
  const reads = Array.from({ length: 300 }, (_, i) => ({ id: ids[i % ids.length]!, tenant: i % 3 === 0 ? t.id : i % 3 === 1 ? 'default' : null }));
  let rows: Awaited<ReturnType<typeof fineTunes.getFineTune>>[];
  try {
    rows = await Promise.all(reads.map((r) => fineTunes.getFineTune(db, r.id, r.tenant)));
  } finally {
    pool.query = query;
  }
  for (const [i, r] of reads.entries()) {
    const expected = r.id === 'ft_missing' || r.tenant === t.id ? null : mine.find((m) => m.id === r.id);
    assert.deepEqual(rows[i], expected, `read ${i} (${r.id}, tenant ${r.tenant})`);
  }
  assert.ok(statements >= 1 && statements < 300 / 10, `300 concurrent reads took ${statements} statements`);
  // Each answer is a new object: one caller's changes are not another's.
  const [a, b] = await Promise.all([fineTunes.getFineTune(db, mine[0]!.id, null), fineTunes.getFineTune(db, mine[0]!.id, null)]);
  assert.notEqual(a, b);

  // A read sent after a write has committed sees it, even while earlier reads of the row are out.
  const earlier = Array.from({ length: 50 }, () => fineTunes.getFineTune(db, mine[1]!.id, null));
  await db.fineTune.update({ where: { id: mine[1]!.id }, data: { status: 'cancelled', finishedAt: new Date() } });
  assert.equal((await fineTunes.getFineTune(db, mine[1]!.id, 'default'))?.status, 'cancelled');
  await Promise.all(earlier);
});

test('concurrent reads by Idempotency-Key and of datasets answer each request with its own tenant\'s row only', async () => {
  const a = await tenants.createTenant(db, 'keys-a');
  const b = await tenants.createTenant(db, 'keys-b');
  const dsOf = async (tenantId: string) => (await datasets.createDataset(db, {
    tenantId, name: 'k', task: 'image-classification', storageKey: `datasets/${tenantId}.zip`, bytes: 10, sha256: 'ab', imageCount: 2,
    classes: [{ name: 'a', images: 1 }, { name: 'b', images: 1 }], skipped: [],
  })).id;
  const [dsA, dsB] = [await dsOf(a.id), await dsOf(b.id)];
  // Tenant a holds keys k1 and k2, tenant b only k1: a batch asking (a, k1), (b, k1), (b, k2) fetches (a, k2) too.
  const aK1 = await fineTunes.createFineTune(db, { tenantId: a.id, spec: { ...spec, dataset: dsA }, requestHash: 'x', idempotencyKey: 'k1' });
  const aK2 = await fineTunes.createFineTune(db, { tenantId: a.id, spec: { ...spec, dataset: dsA }, requestHash: 'x', idempotencyKey: 'k2' });
  const bK1 = await fineTunes.createFineTune(db, { tenantId: b.id, spec: { ...spec, dataset: dsB }, requestHash: 'x', idempotencyKey: 'k1' });
  const asks = [[a.id, 'k1', aK1.id], [b.id, 'k1', bK1.id], [b.id, 'k2', null], [a.id, 'k2', aK2.id], [a.id, 'k3', null]] as const;
  const found = await Promise.all(Array.from({ length: 100 }, (_, i) => asks[i % asks.length]!).map(([t, k]) => fineTunes.findByIdempotencyKey(db, t, k)));
  for (const [i, row] of found.entries()) assert.equal(row?.id ?? null, asks[i % asks.length]![2], `ask ${i}`);

  const dsAsks = [[dsA, a.id, dsA], [dsA, b.id, null], [dsB, b.id, dsB], [dsB, null, dsB], ['ds_missing', a.id, null]] as const;
  const sets = await Promise.all(Array.from({ length: 100 }, (_, i) => dsAsks[i % dsAsks.length]!).map(([id, t]) => datasets.getDataset(db, id, t)));
  for (const [i, row] of sets.entries()) assert.equal(row?.id ?? null, dsAsks[i % dsAsks.length]![2], `dataset ask ${i}`);
});

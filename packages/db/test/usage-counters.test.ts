/**
 * The per-tenant quota counters (jobs queued or running, bytes stored) equal what the rows say after
 * every kind of change: job create, claim, failure, cancel, success with its model, checkpoints
 * recorded and pruned by retention, dataset and base deleted, job deleted with its checkpoints, an
 * unqueued job discarded; the migration backfills them from existing rows; and two creates at the
 * quota's edge never both pass, on either insert path. The jobs counter is striped (a row per
 * connection stripe, the count their sum): it stays exact under changes from many connections, and
 * many concurrent creates pass exactly up to the limit, on the fast path far from it, the exact
 * path near it, and when a create falls from one to the other.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { normalizeFineTune, type FineTuneSpec } from '@graft/contracts';
import { setTimeout as sleep } from 'node:timers/promises';
import { baseModels, checkpoints, createDb, datasets, dropDatabase, ensureDatabase, fineTunes, migrate, MIGRATIONS_DIR, quotas, tenants, transitions, type Db } from '../src/index.ts';
import { listMigrations } from '../src/migrate.ts';

const url = new URL(process.env.GRAFT_TEST_TEMPLATE_URL!);
url.pathname = `${url.pathname}_usage${Math.random().toString(36).slice(2, 6)}`;
let db: Db;

const newDataset = (tenantId: string, bytes: number) =>
  datasets.createDataset(db, {
    tenantId, name: 'd', task: 'image-classification', storageKey: `datasets/${Math.random()}.zip`, bytes, sha256: 'ab', imageCount: 2,
    classes: [{ name: 'a', images: 1 }, { name: 'b', images: 1 }], skipped: [],
  });
const specFor = (dataset: string): FineTuneSpec =>
  normalizeFineTune({ baseModel: 'bm_mnist_cnn', dataset, hyperparameters: { epochs: 2 } }, { id: 'bm_mnist_cnn', featureLayer: 'features' }, 7);

/** The counters, checked against a recount of the rows. */
async function assertCounters(tenantId: string, expected: { activeJobs: number; storedBytes: number }, when: string) {
  const counted = await quotas.counters(db, tenantId);
  assert.deepEqual(await quotas.recount(db, tenantId), expected, `recount ${when}`);
  assert.deepEqual(counted, expected, `counters ${when}`);
}

before(async () => {
  await ensureDatabase(url.toString());
  // The migrations before the counters, rows made under them, then the counters' migration: its backfill.
  const older = mkdtempSync(join(tmpdir(), 'graft-migrations-'));
  try {
    for (const m of await listMigrations(MIGRATIONS_DIR)) {
      if (m.name < '20261202000000') cpSync(join(MIGRATIONS_DIR, m.name), join(older, m.name), { recursive: true });
    }
    await migrate(url.toString(), older);
  } finally {
    rmSync(older, { recursive: true, force: true });
  }
  db = createDb(url.toString());
});
after(async () => {
  await db?.$disconnect();
  await dropDatabase(url.toString());
});

test('the migration backfills the counters from the rows that exist', async () => {
  const t = await db.tenant.create({ data: { id: 'tn_old', name: 'old' } });
  const ds = await newDataset(t.id, 1_000);
  await newDataset(t.id, 5).then((d) => db.dataset.update({ where: { id: d.id }, data: { deletedAt: new Date() } }));
  // Written as the code before the counters did (Prisma's create; the job insert now reads a counter).
  const job = (id: string, status: 'queued' | 'running' | 'succeeded' | 'failed', modelBytes: bigint | null) =>
    db.fineTune.create({ data: { id, tenantId: t.id, status, baseModelId: 'bm_mnist_cnn', datasetId: ds.id, request: {}, requestHash: 'h', epochs: 2, modelBytes } });
  await job('ft_old_queued', 'queued', null);
  await job('ft_old_running', 'running', null);
  await job('ft_old_failed', 'failed', null);
  await job('ft_old_done', 'succeeded', 300n);
  await db.checkpoint.create({ data: { id: 'ck_old', fineTuneId: 'ft_old_done', phase: 'head', epoch: 1, storageKey: 'k', bytes: 40n } });
  await db.checkpoint.create({ data: { id: 'ck_old2', fineTuneId: 'ft_old_failed', phase: 'head', epoch: 1, storageKey: 'k2', bytes: 2n } });

  await migrate(url.toString(), MIGRATIONS_DIR);
  await assertCounters(t.id, { activeJobs: 2, storedBytes: 1_342 }, 'after the backfill');
  await assertCounters('default', { activeJobs: 0, storedBytes: 0 }, 'of the default tenant');
  // Striped since: the old row is stripe 0, the others are made empty; the SQL constant is the TS one.
  const [{ stripes }] = await db.$queryRaw<[{ stripes: number }]>`SELECT graft_active_jobs_stripes() AS stripes`;
  assert.equal(stripes, quotas.ACTIVE_JOBS_STRIPES);
  const rows = await db.tenantActiveJobs.findMany({ where: { tenantId: t.id }, orderBy: { stripe: 'asc' } });
  assert.deepEqual(rows.map((r) => [r.stripe, r.jobs]), Array.from({ length: stripes }, (_, i) => [i, i === 0 ? 2 : 0]));
});

test('every change to jobs, checkpoints, datasets and bases keeps the counters equal to the rows', async () => {
  const t = await tenants.createTenant(db, 'life');
  await assertCounters(t.id, { activeJobs: 0, storedBytes: 0 }, 'of a new tenant');
  const ds = await newDataset(t.id, 1_000);
  const spec = specFor(ds.id);
  const [a, b, c] = [
    await fineTunes.createFineTune(db, { tenantId: t.id, spec, requestHash: 'a' }),
    await fineTunes.createFineTune(db, { tenantId: t.id, spec, requestHash: 'b', events: [{ level: 'warning', type: 'leakage', message: 'm' }] }),
    await fineTunes.createFineTune(db, { tenantId: t.id, spec, requestHash: 'c' }),
  ];
  await assertCounters(t.id, { activeJobs: 3, storedBytes: 1_000 }, 'after three creates (both insert paths)');

  assert.ok(await transitions.claim(db, a.id, { worker: 'w', restarted: false }));
  assert.ok(await transitions.claim(db, b.id, { worker: 'w', restarted: false }));
  await assertCounters(t.id, { activeJobs: 3, storedBytes: 1_000 }, 'after claims (running is active)');

  for (const [job, epoch] of [[a, 1], [a, 2], [a, 3], [b, 1]] as const) {
    await checkpoints.recordCheckpoint(db, { fineTuneId: job.id, phase: 'head', epoch, batch: null, valLoss: 1 / epoch, valAccuracy: null, storageKey: `ck/${job.id}/${epoch}`, bytes: 100 * epoch });
  }
  await assertCounters(t.id, { activeJobs: 3, storedBytes: 1_000 + 100 + 200 + 300 + 100 }, 'after checkpoints');

  // a succeeds with its model; b fails; c is cancelled before it starts.
  assert.ok(await transitions.succeed(db, a.id, { result: { valAccuracy: 0.5 } as never, modelKey: 'models/a.zip', modelBytes: 5_000 }));
  assert.ok(await transitions.fail(db, b.id, { code: 'training_failed', message: 'boom' }));
  assert.ok(await transitions.cancelQueued(db, c.id));
  assert.equal(await transitions.succeed(db, a.id, { result: { valAccuracy: 0.5 } as never, modelKey: 'models/a.zip', modelBytes: 5_000 }), false, 'a move that does not apply');
  await assertCounters(t.id, { activeJobs: 0, storedBytes: 1_000 + 700 + 5_000 }, 'after success, failure and cancel');

  // Retention: every checkpoint of the ended jobs but the best and the last.
  const prunable = await checkpoints.prunableOfEndedJobs(db, new Date(Date.now() + 60_000));
  assert.deepEqual(prunable.map((p) => p.storageKey).sort(), [`ck/${a.id}/1`, `ck/${a.id}/2`].sort());
  assert.equal(await checkpoints.deleteCheckpoints(db, prunable.map((p) => p.id)), 2);
  await assertCounters(t.id, { activeJobs: 0, storedBytes: 1_000 + 400 + 5_000 }, 'after retention pruned checkpoints');

  // A requeue and a claim again, and a lost job discarded before it was queued.
  const d = await fineTunes.createFineTune(db, { tenantId: t.id, spec, requestHash: 'd' });
  assert.ok(await transitions.claim(db, d.id, { worker: 'w', restarted: false }));
  assert.ok(await transitions.requeue(db, d.id, { reason: 'lost', code: 'worker_lost' }));
  await assertCounters(t.id, { activeJobs: 1, storedBytes: 6_400 }, 'after a requeue');
  const e = await fineTunes.createFineTune(db, { tenantId: t.id, spec, requestHash: 'e' });
  assert.ok(await fineTunes.discardUnqueued(db, e.id));
  assert.ok(await transitions.cancel(db, d.id, { started: true }));
  await assertCounters(t.id, { activeJobs: 0, storedBytes: 6_400 }, 'after a discard and a cancel');

  // Deleting a job takes its model and its checkpoints (cascaded) out; a dataset and a base, theirs.
  const deleted = await fineTunes.deleteFineTune(db, a.id, t.id);
  assert.ok(deleted.ok);
  await assertCounters(t.id, { activeJobs: 0, storedBytes: 1_000 + 100 }, 'after deleting the job with its model and checkpoints');
  const base = await baseModels.createUserBase(db, {
    tenantId: t.id, storageKey: 'bases/x', sha256: 'ab', bytes: 777,
    model: { id: 'bm_usage', name: 'b', task: 'image-classification', description: '', format: 'tfjs-layers', inputShape: [1], featureLayer: 'f', featureShape: [1], preprocessing: {}, source: 's', license: 'l', pretrainedOn: 'p' } as never,
  });
  await assertCounters(t.id, { activeJobs: 0, storedBytes: 1_877 }, 'after a base is registered');
  assert.ok((await baseModels.deleteUserBase(db, base.id, t.id)).ok);
  assert.ok((await datasets.deleteDataset(db, ds.id, t.id)).ok);
  await assertCounters(t.id, { activeJobs: 0, storedBytes: 100 }, 'after the dataset and the base are deleted');
  assert.ok((await fineTunes.deleteFineTune(db, b.id, t.id)).ok);
  await assertCounters(t.id, { activeJobs: 0, storedBytes: 0 }, 'after the last job is deleted');

  // A write that rolls back leaves the counters as they were.
  await assert.rejects(db.$transaction(async (tx) => {
    await tx.dataset.create({ data: { id: 'ds_rolled', tenantId: t.id, name: 'r', task: 'image-classification', storageKey: 'r', bytes: 9n, sha256: 'x', imageCount: 0, classes: [], skipped: [] } });
    throw new Error('roll back');
  }));
  await assertCounters(t.id, { activeJobs: 0, storedBytes: 0 }, 'after a rolled-back write');
});

test('creates at the quota\'s edge: one of two passes, on the single-statement path and in the transaction', async () => {
  for (const events of [undefined, [{ level: 'warning' as const, type: 'leakage', message: 'm' }]]) {
    const t = await tenants.createTenant(db, 'edge');
    const spec = specFor((await newDataset(t.id, 10)).id);
    for (let i = 0; i < 4; i++) await fineTunes.createFineTune(db, { tenantId: t.id, spec, requestHash: 'x' });
    // Two at once for the last slot, several times over (one statement each, or one transaction each).
    const outcomes = await Promise.allSettled(Array.from({ length: 2 }, () => fineTunes.createFineTune(db, { tenantId: t.id, maxActiveJobs: 5, spec, requestHash: 'y', ...(events ? { events } : {}) })));
    assert.deepEqual(outcomes.map((o) => o.status).sort(), ['fulfilled', 'rejected'], `path ${events ? 'transaction' : 'statement'}`);
    const refusal = outcomes.find((o) => o.status === 'rejected')!.reason as { code?: string; message?: string };
    assert.equal(refusal.code, 'quota_exceeded');
    assert.match(refusal.message ?? '', /has 5 jobs queued or running, its limit is 5/);
    // Many at once against three freed slots: exactly three pass.
    const queued = await db.fineTune.findMany({ where: { tenantId: t.id }, take: 3, select: { id: true } });
    for (const q of queued) assert.ok(await transitions.cancelQueued(db, q.id));
    const burst = await Promise.allSettled(Array.from({ length: 10 }, () => fineTunes.createFineTune(db, { tenantId: t.id, maxActiveJobs: 5, spec, requestHash: 'z', ...(events ? { events } : {}) })));
    assert.equal(burst.filter((o) => o.status === 'fulfilled').length, 3);
    await assertCounters(t.id, { activeJobs: 5, storedBytes: 10 }, 'after the edge');
  }
});

/** A client with more connections than stripes, so concurrent work lands on many stripes. */
async function withWidePool<T>(fn: (wide: Db) => Promise<T>): Promise<T> {
  const wide = createDb(url.toString(), { max: 20 });
  try {
    return await fn(wide);
  } finally {
    await wide.$disconnect();
  }
}

const leakage = [{ level: 'warning' as const, type: 'leakage', message: 'm' }];
const pathOf = (events: unknown) => (events ? 'transaction' : 'statement');

test('the striped counter stays equal to the rows under creates, transitions and deletes from many connections', async () => {
  const t = await tenants.createTenant(db, 'stripes');
  assert.equal(await db.tenantActiveJobs.count({ where: { tenantId: t.id } }), quotas.ACTIVE_JOBS_STRIPES, 'a new tenant has all its stripes');
  const spec = specFor((await newDataset(t.id, 10)).id);
  await withWidePool(async (wide) => {
    // Each of 40 lanes: create (either path, under a quota far away), then claim, end or cancel it, and delete some.
    await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const job = await fineTunes.createFineTune(wide, { tenantId: t.id, maxActiveJobs: 10_000, spec, requestHash: `m${i}`, ...(i % 3 === 0 ? { events: leakage } : {}) });
      if (i % 4 === 0) return;
      if (i % 4 === 1) return void assert.ok(await transitions.cancelQueued(wide, job.id));
      assert.ok(await transitions.claim(wide, job.id, { worker: 'w', restarted: false }));
      if (i % 4 === 2) return;
      assert.ok(await transitions.fail(wide, job.id, { code: 'training_failed', message: 'boom' }));
      if (i % 8 === 3) assert.ok((await fineTunes.deleteFineTune(wide, job.id, t.id)).ok);
    }));
  });
  await assertCounters(t.id, { activeJobs: 20, storedBytes: 10 }, 'after 40 lanes of changes');
  const used = await db.tenantActiveJobs.count({ where: { tenantId: t.id, jobs: { not: 0 } } });
  assert.ok(used > 1, `the changes were counted on several stripes (${used})`);
});

for (const max of [5, 40]) {
  test(`${max} jobs at most: of many concurrent creates from 20 connections exactly ${max} pass, the count never above it`, async () => {
    for (const events of [undefined, leakage]) {
      const t = await tenants.createTenant(db, `burst${max}`);
      const spec = specFor((await newDataset(t.id, 10)).id);
      let sampling = true;
      let highest = 0;
      // A reader beside the creates: what is committed never passes the limit.
      const sampler = (async () => {
        while (sampling) {
          highest = Math.max(highest, (await quotas.recount(db, t.id)).activeJobs, await quotas.activeJobs(db, t.id));
          await sleep(2);
        }
      })();
      // 20 lanes, one per connection (more would queue for the pool, and a transaction waits at most 2 s for one).
      const outcomes = await withWidePool(async (wide) =>
        (await Promise.all(Array.from({ length: 20 }, async (_, lane) => {
          const mine: PromiseSettledResult<unknown>[] = [];
          for (let i = 0; i < (4 * max + 40) / 20; i++) {
            mine.push(...(await Promise.allSettled([fineTunes.createFineTune(wide, { tenantId: t.id, maxActiveJobs: max, spec, requestHash: `b${lane}.${i}`, ...(events ? { events } : {}) })])));
          }
          return mine;
        }))).flat(),
      );
      sampling = false;
      await sampler;
      assert.equal(outcomes.length, 4 * max + 40);
      const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as { code?: string; message?: string }] : []));
      assert.equal(outcomes.length - refused.length, max, `path ${pathOf(events)}: passed`);
      // No other error (a deadlock, the fast path's retry signal): only the quota, with the figure at the limit.
      for (const r of refused) {
        assert.equal(r.code, 'quota_exceeded', `path ${pathOf(events)}: ${r.message}`);
        assert.match(r.message ?? '', new RegExp(`has ${max} jobs queued or running, its limit is ${max}`));
      }
      assert.ok(highest <= max, `path ${pathOf(events)}: the count reached ${highest}`);
      await assertCounters(t.id, { activeJobs: max, storedBytes: 10 }, `after the burst (${pathOf(events)})`);
    }
  });
}

test('creates racing with cancels under a quota of 40: the count never passes it, and every cancel frees a slot', async () => {
  const max = 40;
  const t = await tenants.createTenant(db, 'churn');
  const spec = specFor((await newDataset(t.id, 10)).id);
  let sampling = true;
  let highest = 0;
  const sampler = (async () => {
    while (sampling) {
      highest = Math.max(highest, (await quotas.recount(db, t.id)).activeJobs);
      await sleep(2);
    }
  })();
  let passed = 0;
  let cancelled = 0;
  await withWidePool((wide) =>
    Promise.all(Array.from({ length: 16 }, async (_, lane) => {
      for (let i = 0; i < 12; i++) {
        try {
          const job = await fineTunes.createFineTune(wide, { tenantId: t.id, maxActiveJobs: max, spec, requestHash: `c${lane}.${i}`, ...(i % 2 ? { events: leakage } : {}) });
          passed++;
          // Half of the lanes cancel what they made: slots come back while others create.
          if (lane % 2 && (await transitions.cancelQueued(wide, job.id))) cancelled++;
        } catch (err) {
          assert.equal((err as { code?: string }).code, 'quota_exceeded', (err as Error).message);
        }
      }
    })),
  );
  sampling = false;
  await sampler;
  assert.ok(highest <= max, `the count reached ${highest}`);
  assert.ok(cancelled > 0 && passed > max, `slots were freed and used again (passed ${passed}, cancelled ${cancelled})`);
  await assertCounters(t.id, { activeJobs: passed - cancelled, storedBytes: 10 }, 'after the churn');
  assert.equal(passed - cancelled, max, 'the lanes that keep their jobs filled the quota');
});

test('a create whose stripe lock reveals the tenant near its limit retries with the exact check (both paths)', async () => {
  // The create runs on a one-connection client, so its stripe is known; another transaction holds
  // that stripe while it adds jobs uncommitted. The create's unlocked look sees room for the fast
  // path; once the stripe is its own it sees the new jobs: too near the limit to pass unchecked.
  const one = createDb(url.toString(), { max: 1 });
  try {
    for (const [added, passes] of [[20, true], [32, false]] as const) {
      for (const events of [undefined, leakage]) {
        // Asked each time: the pool replaces a connection that had an error (the retry signal is one).
        const [{ pid }] = await one.$queryRaw<[{ pid: number }]>`SELECT pg_backend_pid() AS pid`;
        const stripe = pid % quotas.ACTIVE_JOBS_STRIPES;
        const t = await tenants.createTenant(db, 'fallback');
        const ds = await newDataset(t.id, 10);
        const spec = specFor(ds.id);
        for (let i = 0; i < 8; i++) await fineTunes.createFineTune(db, { tenantId: t.id, spec, requestHash: 'base' });
        let create: Promise<unknown> | undefined;
        await db.$transaction(async (tx) => {
          await tx.$queryRaw`SELECT 1 FROM tenant_active_jobs WHERE tenant_id = ${t.id} AND stripe = ${stripe}::smallint FOR UPDATE`;
          await tx.fineTune.createMany({
            data: Array.from({ length: added }, (_, i) => ({ id: `ft_fb${t.id}${i}`, tenantId: t.id, status: 'queued' as const, baseModelId: 'bm_mnist_cnn', datasetId: ds.id, request: {}, requestHash: 'h', epochs: 2 })),
          });
          create = fineTunes.createFineTune(one, { tenantId: t.id, maxActiveJobs: 40, spec, requestHash: 'late', ...(events ? { events } : {}) });
          create.catch(() => {});
          // Commit once the create waits for the stripe (it saw 8 jobs, room for the fast path).
          for (let waited = 0; ; waited += 10) {
            // Asked outside this transaction: pg_stat_activity is a snapshot for the whole of one.
            const [w] = await db.$queryRaw<{ waiting: boolean }[]>`SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = ${pid}::int`;
            if (w?.waiting) break;
            assert.ok(waited < 5_000, 'the create waits for the stripe');
            await sleep(10);
          }
        }, { timeout: 10_000 });
        const what = `${added} added, ${pathOf(events)} path`;
        if (passes) {
          await create;
          await assertCounters(t.id, { activeJobs: 8 + added + 1, storedBytes: 10 }, what);
        } else {
          await assert.rejects(create!, (err: { code?: string; message?: string }) => {
            assert.equal(err.code, 'quota_exceeded', `${what}: ${err.message}`);
            assert.match(err.message ?? '', /has 40 jobs queued or running, its limit is 40/);
            return true;
          });
          await assertCounters(t.id, { activeJobs: 40, storedBytes: 10 }, what);
        }
      }
    }
  } finally {
    await one.$disconnect();
  }
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import pg from 'pg';
import { normalizeFineTune } from '@graft/contracts';
import { checkpoints, createDb, dropDatabase, ensureDatabase, fineTunes, datasets, migrate } from '../src/index.ts';

const MIGRATIONS = fileURLToPath(new URL('../../../prisma/migrations', import.meta.url));
const url = new URL(process.env.GRAFT_TEST_TEMPLATE_URL!);
url.pathname = `${url.pathname}_fresh${Math.random().toString(36).slice(2, 6)}`;
const fresh = url.toString();
after(() => dropDatabase(fresh));

test('a fresh database is created and migrated once, with Prisma-compatible bookkeeping', async () => {
  assert.equal(await ensureDatabase(fresh), true);
  assert.equal(await ensureDatabase(fresh), false);
  // Every committed migration, in name (= time) order; new ones join the list by themselves.
  const all = readdirSync(MIGRATIONS, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  assert.deepEqual(all.slice(0, 2), ['20261128000000_init', '20261128010000_engine_options']);
  const first = await migrate(fresh, MIGRATIONS);
  assert.deepEqual(first.applied, all);
  const second = await migrate(fresh, MIGRATIONS);
  assert.deepEqual(second, { applied: [], alreadyApplied: all });

  const client = new pg.Client({ connectionString: fresh });
  await client.connect();
  const rows = (await client.query('SELECT migration_name, checksum, finished_at, applied_steps_count FROM _prisma_migrations')).rows;
  await client.end();
  const sql = readFileSync(`${MIGRATIONS}/20261128000000_init/migration.sql`);
  assert.equal(rows.length, all.length);
  const init = rows.find((r) => r.migration_name === '20261128000000_init');
  assert.equal(init.checksum, createHash('sha256').update(sql).digest('hex'));
  assert.ok(rows.every((r) => r.finished_at && r.applied_steps_count === 1));
});

test('the Prisma client works against the migrated schema, and transitions are guarded', async () => {
  const db = createDb(fresh);
  try {
    const ds = await datasets.createDataset(db, {
      name: 'd', task: 'image-classification', storageKey: 'datasets/x.zip', bytes: 10, sha256: 'ab', imageCount: 2,
      classes: [{ name: 'a', images: 1 }, { name: 'b', images: 1 }], skipped: [],
    });
    const ft = await fineTunes.createFineTune(db, {
      spec: normalizeFineTune({ baseModel: 'bm_mnist_cnn', dataset: ds.id, validationSplit: 0.2, hyperparameters: { epochs: 1 } }, { id: 'bm_mnist_cnn', featureLayer: 'features' }, 1),
      requestHash: 'h',
    });
    const event = { level: 'info' as const, type: 'status', message: 'x' };
    assert.equal(await fineTunes.transition(db, ft.id, ['queued'], 'running', { startedAt: new Date() }, event), true);
    // The same transition again finds the job no longer queued: nothing changes, no event.
    assert.equal(await fineTunes.transition(db, ft.id, ['queued'], 'running', {}, event), false);
    assert.equal(await fineTunes.transition(db, ft.id, ['running'], 'succeeded', { finishedAt: new Date() }, event), true);
    assert.equal(await fineTunes.updateRunning(db, ft.id, { epoch: 3 }), false);
    const events = await db.event.findMany({ where: { fineTuneId: ft.id } });
    assert.equal(events.length, 3); // queued, running, succeeded

    // The best checkpoint is the lowest validation loss over every checkpoint of the job, whichever
    // attempt wrote it: a restarted attempt's first checkpoint does not displace a better earlier one.
    const ck = (epoch: number, valLoss: number | null) =>
      checkpoints.recordCheckpoint(db, { fineTuneId: ft.id, phase: 'head', epoch, batch: null, valLoss, valAccuracy: null, storageKey: `k${epoch}`, bytes: 1 });
    await ck(1, 0.5);
    await ck(2, 0.3);
    await ck(1, 0.6); // restarted attempt
    await ck(2, null);
    await ck(3, 0.2);
    const best = (await checkpoints.listCheckpoints(db, ft.id)).filter((c) => c.isBest).map((c) => c.valLoss);
    assert.deepEqual(best, [0.2]);
  } finally {
    await db.$disconnect();
  }
});

test('an edited migration is refused', async () => {
  const { mkdtempSync, cpSync, appendFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(`${tmpdir()}/graft-mig-`);
  cpSync(MIGRATIONS, dir, { recursive: true });
  appendFileSync(`${dir}/20261128000000_init/migration.sql`, '\n-- edited\n');
  await assert.rejects(migrate(fresh, dir), /edited after it was applied/);
});

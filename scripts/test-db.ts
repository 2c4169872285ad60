/** `create`: the run's template database, migrated. `drop`: it and every clone, and the run's Redis keys. */
import { dropDatabase, ensureDatabase, migrate } from '@graft/db';
import { Redis } from 'ioredis';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const url = process.env.GRAFT_TEST_TEMPLATE_URL;
if (!url) throw new Error('GRAFT_TEST_TEMPLATE_URL is not set (run through `npm test`)');
const migrations = fileURLToPath(new URL('../prisma/migrations', import.meta.url));

if (process.argv[2] === 'create') {
  await ensureDatabase(url);
  await migrate(url, migrations);
} else if (process.argv[2] === 'drop') {
  const name = new URL(url).pathname.slice(1);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  const clones = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${name}%`]);
  await client.end();
  for (const { datname } of clones.rows) {
    const u = new URL(url);
    u.pathname = `/${datname}`;
    await dropDatabase(u.toString());
  }
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${process.env.QUEUE_PREFIX}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
  redis.disconnect();
}

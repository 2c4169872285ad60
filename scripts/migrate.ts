/**
 * `npm run db:migrate` (and compose's one-shot `migrate` service): creates the database when it is
 * missing and applies the committed migrations, then exits. The API and workers started next to it
 * run with MIGRATE_ON_START=false.
 */
import { prepareDatabase } from '@graft/db';

const url = process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/graft';
try {
  const r = await prepareDatabase(url, { migrate: true });
  const applied = r.migrated ? r.applied : [];
  process.stderr.write(`[migrate] ${applied.length ? `applied ${applied.join(', ')}` : 'database up to date'}\n`);
} catch (err) {
  process.stderr.write(`[migrate] failed: ${(err as Error).message}\n`);
  process.exit(1);
}

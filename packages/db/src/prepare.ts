/**
 * What a process does with the database before it starts: apply the pending migrations (the one
 * place that migrates: `npm start`'s parent, `npm run db:migrate`, compose's `migrate` service), or,
 * with MIGRATE_ON_START=false, only check that nothing is pending.
 */
import { fileURLToPath } from 'node:url';
import { ensureDatabase, migrate, pendingMigrations } from './migrate.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../prisma/migrations', import.meta.url));

export type PrepareResult = { migrated: true; applied: string[] } | { migrated: false };

export async function prepareDatabase(url: string, opts: { migrate: boolean; dir?: string }): Promise<PrepareResult> {
  const dir = opts.dir ?? MIGRATIONS_DIR;
  if (opts.migrate) {
    await ensureDatabase(url);
    return { migrated: true, applied: (await migrate(url, dir)).applied };
  }
  const pending = await pendingMigrations(url, dir);
  if (pending.length) {
    throw new Error(
      `the database lacks ${pending.length} migration(s) (${pending.join(', ')}) and MIGRATE_ON_START is false: run \`npm run db:migrate\` (compose: the migrate service) first`,
    );
  }
  return { migrated: false };
}

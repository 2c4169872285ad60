/** Starts the API: validated configuration, pending migrations, then listen. */
import { migrate, ensureDatabase } from '@graft/db';
import { fileURLToPath } from 'node:url';
import { buildApp } from './app.ts';
import { loadApiConfig } from './config.ts';

const MIGRATIONS = fileURLToPath(new URL('../../../prisma/migrations', import.meta.url));

const config = loadApiConfig();
await ensureDatabase(config.DATABASE_URL);
await migrate(config.DATABASE_URL, MIGRATIONS);
const app = await buildApp(config);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'shutting down');
    app.close().then(() => process.exit(0), () => process.exit(1));
  });
}
await app.listen({ port: config.PORT, host: config.HOST });

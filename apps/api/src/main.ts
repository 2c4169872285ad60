/** Starts the API: validated configuration, the database (migrated, or checked with MIGRATE_ON_START=false), then listen. */
import { prepareDatabase } from '@graft/db';
import { buildApp } from './app.ts';
import { loadApiConfig } from './config.ts';

const config = loadApiConfig();
await prepareDatabase(config.DATABASE_URL, { migrate: config.MIGRATE_ON_START });
const app = await buildApp(config);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'shutting down');
    app.close().then(() => process.exit(0), () => process.exit(1));
  });
}
await app.listen({ port: config.PORT, host: config.HOST });

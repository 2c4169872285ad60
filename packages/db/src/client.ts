import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from './generated/prisma/client.ts';

export type Db = PrismaClient;

export interface DbOptions {
  max?: number;
  /** How long opening a connection may take (a stopped or unreachable server fails within it). */
  connectTimeoutMs?: number;
  /**
   * How long one statement may take: enforced by the server (`statement_timeout`) and, for a server
   * that stopped answering (frozen, network gone), by the client too (`query_timeout`).
   */
  statementTimeoutMs?: number;
}

export const DB_DEFAULTS = { connectTimeoutMs: 5_000, statementTimeoutMs: 15_000 } as const;

const pools = new WeakMap<Db, pg.Pool>();

/**
 * The node-postgres pool under a client made by `createDb`: the hottest reads run on it directly
 * as named prepared statements (parsed and planned once per connection, no Prisma query
 * interpretation), sharing its connections and timeouts with everything else.
 */
export const poolOf = (db: Db): pg.Pool | undefined => pools.get(db);

/** Prisma over node-postgres (Prisma 7's driver adapter: no Rust query engine to download). */
export function createDb(connectionString: string, opts: DbOptions = {}): Db {
  const statement = opts.statementTimeoutMs ?? DB_DEFAULTS.statementTimeoutMs;
  const pool = new pg.Pool({
    connectionString,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? DB_DEFAULTS.connectTimeoutMs,
    statement_timeout: statement,
    // The client-side bound fires a little after the server's, so a live server reports its own timeout.
    query_timeout: statement + 1_000,
    idle_in_transaction_session_timeout: statement * 2,
    keepAlive: true,
  });
  // A connection that breaks while idle in the pool is dropped by pg; without a listener its error would crash the process.
  pool.on('error', () => {});
  const adapter = new PrismaPg(pool, { onPoolError: () => {}, onConnectionError: () => {}, disposeExternalPool: true });
  const db = new PrismaClient({ adapter });
  pools.set(db, pool);
  return db;
}

import { PrismaPg } from '@prisma/adapter-pg';
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

/** Prisma over node-postgres (Prisma 7's driver adapter: no Rust query engine to download). */
export function createDb(connectionString: string, opts: DbOptions = {}): Db {
  const statement = opts.statementTimeoutMs ?? DB_DEFAULTS.statementTimeoutMs;
  const adapter = new PrismaPg(
    {
      connectionString,
      max: opts.max ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? DB_DEFAULTS.connectTimeoutMs,
      statement_timeout: statement,
      // The client-side bound fires a little after the server's, so a live server reports its own timeout.
      query_timeout: statement + 1_000,
      idle_in_transaction_session_timeout: statement * 2,
      keepAlive: true,
    },
    // A connection that breaks while idle in the pool is dropped by pg; without a listener its error would crash the process.
    { onPoolError: () => {}, onConnectionError: () => {} },
  );
  return new PrismaClient({ adapter });
}

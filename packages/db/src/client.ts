import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/prisma/client.ts';

export type Db = PrismaClient;

/** Prisma over node-postgres (Prisma 7's driver adapter: no Rust query engine to download). */
export function createDb(connectionString: string, opts: { max?: number } = {}): Db {
  const adapter = new PrismaPg({ connectionString, max: opts.max ?? 10 });
  return new PrismaClient({ adapter });
}

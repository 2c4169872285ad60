/**
 * What a tenant holds, for its quotas: jobs queued or running, and bytes stored. Counted in
 * Postgres, the record of what exists, so a figure never drifts from the rows (no counter to
 * repair after a crash); read only when something is created.
 */
import type { Db } from './client.ts';

type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

/** Jobs of the tenant that are queued or running. */
export function activeJobs(db: Db | Tx, tenantId: string): Promise<number> {
  return db.fineTune.count({ where: { tenantId, status: { in: ['queued', 'running'] } } });
}

/** Bytes the tenant stores: datasets and registered bases (not deleted), models and checkpoints of its jobs. */
export async function storedBytes(db: Db, tenantId: string): Promise<number> {
  const [row] = await db.$queryRaw<{ bytes: bigint | number | null }[]>`
    SELECT (SELECT COALESCE(SUM(bytes), 0) FROM datasets WHERE tenant_id = ${tenantId} AND deleted_at IS NULL)
         + (SELECT COALESCE(SUM(bytes), 0) FROM base_models WHERE tenant_id = ${tenantId} AND deleted_at IS NULL)
         + (SELECT COALESCE(SUM(model_bytes), 0) FROM fine_tunes WHERE tenant_id = ${tenantId})
         + (SELECT COALESCE(SUM(c.bytes), 0) FROM checkpoints c JOIN fine_tunes f ON f.id = c.fine_tune_id WHERE f.tenant_id = ${tenantId})
      AS bytes`;
  return Number(row?.bytes ?? 0);
}

/**
 * Serialises the creates of one tenant's jobs until the transaction ends, so that counting its
 * active jobs and inserting one cannot interleave with another create (the quota holds exactly).
 */
export async function lockTenantJobs(tx: Tx, tenantId: string): Promise<void> {
  await lockJobs(tx, tenantId);
}

/** The statement of `lockTenantJobs`, also for a batch transaction (`db.$transaction([...])`). */
export const lockJobs = (db: Db | Tx, tenantId: string) => db.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${`graft:jobs:${tenantId}`}))`;

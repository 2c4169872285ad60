/**
 * What a tenant holds, for its quotas: jobs queued or running, and bytes stored. Both are counters
 * (`tenant_active_jobs`, `tenant_stored_bytes`) that triggers keep in the same statement as the
 * rows they count (see the migration `tenant_usage`), so a read is a few rows whatever the tenant
 * holds, and a figure cannot drift: a change and its count commit or roll back together. `recount`
 * gives the figures from the rows themselves, to check them.
 */
import { sharedReader } from './batched-reads.ts';
import { poolOf, type Db } from './client.ts';

/**
 * Stripes of a tenant's active-jobs counter (`graft_active_jobs_stripes()` in the migration
 * `active_jobs_stripes`, which must say the same): a change is counted on its connection's stripe,
 * so concurrent creates of one tenant do not queue on one row; the count is their SUM.
 */
export const ACTIVE_JOBS_STRIPES = 16;

/** Jobs of the tenant that are queued or running (as of this statement; a create locks stripes to decide). */
export async function activeJobs(db: Db, tenantId: string): Promise<number> {
  const { _sum } = await db.tenantActiveJobs.aggregate({ where: { tenantId }, _sum: { jobs: true } });
  return _sum.jobs ?? 0;
}

/**
 * Bytes the tenant stores: datasets and registered bases (not deleted), models and checkpoints of
 * its jobs. Read on every job create (batched reads of a prepared statement on the pool when there is one).
 */
export async function storedBytes(db: Db, tenantId: string): Promise<number> {
  const pool = poolOf(db);
  if (!pool) {
    const row = await db.tenantStoredBytes.findUnique({ where: { tenantId }, select: { bytes: true } });
    return Number(row?.bytes ?? 0);
  }
  // Every create reads it: concurrent creates share one statement per round trip (see `BatchedReader`).
  const row = await sharedReader(pool, STORED_BYTES, (r) => r.tenant_id as string, (r) => Number(r.bytes)).get(tenantId);
  return row ?? 0;
}

const STORED_BYTES = { name: 'graft_stored_bytes', text: 'SELECT tenant_id, bytes FROM tenant_stored_bytes WHERE tenant_id = ANY($1::text[])' };

/** The two figures counted and summed over the tenant's rows (O(rows)): what the counters must equal. */
export async function recount(db: Db, tenantId: string): Promise<{ activeJobs: number; storedBytes: number }> {
  const [row] = await db.$queryRaw<{ active: number; bytes: bigint | number | null }[]>`
    SELECT (SELECT count(*) FROM fine_tunes WHERE tenant_id = ${tenantId} AND status IN ('queued', 'running'))::int AS active,
           (SELECT COALESCE(SUM(bytes), 0) FROM datasets WHERE tenant_id = ${tenantId} AND deleted_at IS NULL)
         + (SELECT COALESCE(SUM(bytes), 0) FROM base_models WHERE tenant_id = ${tenantId} AND deleted_at IS NULL)
         + (SELECT COALESCE(SUM(model_bytes), 0) FROM fine_tunes WHERE tenant_id = ${tenantId})
         + (SELECT COALESCE(SUM(c.bytes), 0) FROM checkpoints c JOIN fine_tunes f ON f.id = c.fine_tune_id WHERE f.tenant_id = ${tenantId})
      AS bytes`;
  return { activeJobs: row?.active ?? 0, storedBytes: Number(row?.bytes ?? 0) };
}

/** The counters as stored (for comparing with `recount`). */
export async function counters(db: Db, tenantId: string): Promise<{ activeJobs: number; storedBytes: number }> {
  return { activeJobs: await activeJobs(db, tenantId), storedBytes: await storedBytes(db, tenantId) };
}

/**
 * The tenant's storage quota (MAX_STORAGE_BYTES_PER_TENANT), checked where bytes are added: once
 * an upload's size is known (it would take the tenant past its limit), and before a base is fetched
 * from a URL or a job is created while the tenant is at its limit (a job adds a model and
 * checkpoints). Waiting does not free bytes, so no `Retry-After`: deleting does.
 */
import { GraftError } from '@graft/contracts';
import { quotas } from '@graft/db';
import type { FastifyInstance } from 'fastify';

const MiB = 2 ** 20;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

export async function assertStorageQuota(app: FastifyInstance, tenantId: string, adding = 0): Promise<void> {
  const limit = app.config.MAX_STORAGE_BYTES_PER_TENANT;
  if (limit <= 0) return;
  const used = await quotas.storedBytes(app.db, tenantId);
  if (used >= limit) {
    throw new GraftError('quota_exceeded', `This tenant stores ${used} bytes (${mib(used)}), its limit is ${limit} (${mib(limit)}): delete datasets, bases or jobs to make room.`);
  }
  if (adding > 0 && used + adding > limit) {
    throw new GraftError(
      'quota_exceeded',
      `This upload of ${adding} bytes (${mib(adding)}) would take the tenant to ${used + adding} bytes, past its limit of ${limit} (${mib(limit)}; ${used} used): delete datasets, bases or jobs to make room.`,
    );
  }
}

import type { Redis } from 'ioredis';

/**
 * A running job's own heartbeat: `<prefix>:running:<id>` = the worker's id, refreshed while the
 * worker holds the job. The reconciler treats a `running` row without it as ownerless; unlike
 * BullMQ's lock it is written again within seconds after Redis lost its keys.
 */
export const jobHeartbeatKey = (prefix: string, fineTuneId: string) => `${prefix}:running:${fineTuneId}`;

/** Refreshed every quarter of `ttlMs`, so a few missed beats (Redis restarting) do not lose the job. */
export async function beatJob(redis: Redis, prefix: string, fineTuneId: string, workerId: string, ttlMs: number): Promise<void> {
  await redis.set(jobHeartbeatKey(prefix, fineTuneId), workerId, 'PX', ttlMs);
}

export async function endJobBeat(redis: Redis, prefix: string, fineTuneId: string): Promise<void> {
  await redis.del(jobHeartbeatKey(prefix, fineTuneId));
}

export async function jobOwner(redis: Redis, prefix: string, fineTuneId: string): Promise<string | null> {
  return redis.get(jobHeartbeatKey(prefix, fineTuneId));
}

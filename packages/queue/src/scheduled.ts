/**
 * A periodic task shared by every process that starts it: a BullMQ job scheduler on its own queue
 * hands each run to one of them, and a Redis lock keeps a run that is slower than the interval from
 * overlapping the next. The scheduler is upserted again on every reconnect (a Redis restarted
 * without persistence forgets it). The reconciler and the checkpoint retention pass run on it.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';

export interface ScheduledLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ScheduledTask {
  close(): Promise<void>;
}

export async function startScheduledTask<T>(o: {
  /** Queue and scheduler name (under `prefix`). */
  name: string;
  redisUrl: string;
  /** A connection for the lock (plain commands). */
  redis: Redis;
  prefix: string;
  intervalMs: number;
  run: () => Promise<T>;
  log: ScheduledLog;
}): Promise<ScheduledTask> {
  const connection = new Redis(o.redisUrl, { maxRetriesPerRequest: null });
  connection.on('error', () => {});
  const queue = new Queue(o.name, { connection, prefix: o.prefix });
  queue.on('error', () => {});
  const schedule = () =>
    queue
      .upsertJobScheduler(o.name, { every: o.intervalMs }, { name: o.name, opts: { removeOnComplete: true, removeOnFail: 100 } })
      .catch((err: Error) => o.log.warn({ err: err.message }, `could not schedule ${o.name}`));
  await schedule();
  connection.on('ready', () => void schedule());

  const lockName = `${o.prefix}:${o.name}:lock`;
  const workerConnection = connection.duplicate();
  workerConnection.on('error', () => {});
  const worker = new Worker(
    o.name,
    async () => {
      const token = randomUUID();
      const got = await o.redis.set(lockName, token, 'PX', Math.max(60_000, 2 * o.intervalMs), 'NX');
      if (got !== 'OK') return 'busy';
      try {
        return await o.run();
      } finally {
        if ((await o.redis.get(lockName)) === token) await o.redis.del(lockName);
      }
    },
    { connection: workerConnection, prefix: o.prefix, concurrency: 1 },
  );
  worker.on('error', (err) => o.log.warn({ err: err.message }, `${o.name} worker error`));
  worker.on('failed', (_job, err) => o.log.warn({ err: err.message }, `a ${o.name} run failed (the next one tries again)`));
  return {
    async close() {
      await worker.close();
      await queue.close();
      workerConnection.disconnect();
      connection.disconnect();
    },
  };
}

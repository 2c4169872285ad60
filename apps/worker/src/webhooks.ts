/**
 * Webhook deliveries, in the worker process: the dispatcher moves delivery rows (written with their
 * events, in the same transaction) onto the BullMQ queue; the sender POSTs each one, signed, through
 * the SSRF guard, records the attempt and throws on failure so that BullMQ retries it with
 * exponential backoff until the attempts run out.
 */
import { WEBHOOK_QUEUE, WebhookJobData, parseWith, webhookHeaders } from '@graft/contracts';
import { webhooks, type Db } from '@graft/db';
import { OutboundError, openOutbound } from '@graft/outbound';
import { createWebhookQueue, feedChannelPattern } from '@graft/queue';
import { Worker, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { WorkerConfig } from './config.ts';

const CLAIM_BATCH = 100;

export interface WebhookService {
  close(): Promise<void>;
}

export async function startWebhooks(config: WorkerConfig, db: Db, connection: Redis, subscriber: Redis, log: Logger): Promise<WebhookService> {
  const queue = createWebhookQueue({ redisUrl: config.REDIS_URL, prefix: config.QUEUE_PREFIX }, connection, {
    attempts: config.WEBHOOK_MAX_ATTEMPTS,
    retryBaseMs: config.WEBHOOK_RETRY_BASE_MS,
  });
  queue.on('error', (err) => log.warn({ err: err.message }, 'webhook queue error'));
  const dispatcher = new Dispatcher(db, queue, log);

  const worker = new Worker<WebhookJobData, string>(WEBHOOK_QUEUE, (job) => send(config, db, job, log), {
    connection,
    prefix: config.QUEUE_PREFIX,
    concurrency: config.WEBHOOK_CONCURRENCY,
    name: `${config.WORKER_ID}-webhooks`,
  });
  worker.on('error', (err) => log.error({ err }, 'webhook worker error'));

  // Every write to a job's feed is nudged on its channel: a new event may have deliveries.
  await subscriber.psubscribe(feedChannelPattern(config.QUEUE_PREFIX));
  const onNudge = () => dispatcher.kick();
  subscriber.on('pmessage', onNudge);
  const poll = setInterval(() => dispatcher.kick(), config.WEBHOOK_DISPATCH_POLL_MS);
  await dispatcher.requeueDispatched();
  dispatcher.kick();

  return {
    async close() {
      clearInterval(poll);
      // The subscriber connection is the worker's; it is disconnected by its owner (an awaited
      // PUNSUBSCRIBE with no pattern never resolves in ioredis).
      subscriber.off('pmessage', onNudge);
      await dispatcher.idle();
      await worker.close();
      await queue.close();
    },
  };
}

/** Moves undispatched delivery rows onto the queue; concurrent kicks coalesce into one more pass. */
class Dispatcher {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly db: Db,
    private readonly queue: Queue<WebhookJobData>,
    private readonly log: Logger,
  ) {}

  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          let ids: string[];
          do {
            ids = await webhooks.claimUndispatched(this.db, CLAIM_BATCH);
            await this.add(ids);
          } while (ids.length === CLAIM_BATCH);
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'dispatching webhook deliveries failed; the next poll retries');
        }
      } while (this.again);
    })().finally(() => (this.running = null));
  }

  private async add(ids: string[]): Promise<void> {
    try {
      // The job id is the delivery id: a delivery already on the queue is not added twice.
      await this.queue.addBulk(ids.map((deliveryId) => ({ name: 'deliver', data: { deliveryId }, opts: { jobId: deliveryId } })));
    } catch (err) {
      await webhooks.undispatch(this.db, ids);
      throw err;
    }
  }

  /** After a restart: pending deliveries marked dispatched are added again (a no-op for those the queue holds). */
  async requeueDispatched(): Promise<void> {
    const ids = await webhooks.pendingDispatched(this.db, 10_000);
    if (ids.length) await this.queue.addBulk(ids.map((deliveryId) => ({ name: 'deliver', data: { deliveryId }, opts: { jobId: deliveryId } })));
  }

  async idle(): Promise<void> {
    await this.running;
  }
}

/** One attempt of one delivery. */
async function send(config: WorkerConfig, db: Db, job: Job<WebhookJobData>, log: Logger): Promise<string> {
  const { deliveryId } = parseWith(WebhookJobData, job.data, 'job');
  const d = await webhooks.deliveryToSend(db, deliveryId);
  if (!d || d.status !== 'pending') return d?.status ?? 'missing';
  if (!d.secret) {
    // Its endpoint was deleted after the delivery was written.
    await webhooks.cancelDelivery(db, d.id);
    return 'cancelled';
  }
  const attempt = Math.max(job.attemptsMade + 1, d.attemptsSoFar + 1);
  const started = Date.now();
  let responseStatus: number | null = null;
  let error: string | null = null;
  try {
    const res = await openOutbound(d.url, {
      allow: config.OUTBOUND_ALLOWLIST,
      method: 'POST',
      headers: { ...webhookHeaders(d.secret, d.id, d.body), 'user-agent': 'graft-webhooks/1' },
      body: d.body,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      maxRedirects: 0, // a redirect is an answer that is not 2xx: the URL should be fixed, not followed
      maxBytes: 64 * 1024,
    });
    res.body.destroy(); // the answer's body is not read
    responseStatus = res.status;
    if (res.status < 200 || res.status > 299) error = `the endpoint answered HTTP ${res.status}`;
  } catch (err) {
    error = err instanceof OutboundError ? err.message : `request failed: ${(err as Error).message}`;
  }
  const durationMs = Date.now() - started;
  const last = attempt >= config.WEBHOOK_MAX_ATTEMPTS;
  const status = error === null ? 'succeeded' : last ? 'failed' : 'pending';
  const next = status === 'pending' ? new Date(Date.now() + config.WEBHOOK_RETRY_BASE_MS * 2 ** (attempt - 1)) : null;
  await webhooks.recordAttempt(db, d.id, { attempt, responseStatus, error, durationMs }, status, next);
  log.info({ delivery: d.id, jobId: d.fineTuneId, type: d.type, attempt, responseStatus, status }, 'webhook attempt');
  if (error !== null) throw new Error(error); // BullMQ retries after its backoff, or gives up after the last attempt
  return 'succeeded';
}

/**
 * Webhook endpoints and deliveries. A delivery row is written in the same transaction as the event
 * it carries (an outbox): an event is never committed without its deliveries, and the worker's
 * dispatcher hands rows not yet dispatched to the BullMQ queue that sends and retries them.
 */
import { newId, type WebhookEventType } from '@graft/contracts';
import type { Db } from './client.ts';
import type { Event, Prisma } from './generated/prisma/client.ts';
import { page } from './datasets.ts';
import { DEFAULT_TENANT } from './tenants.ts';

type DbOrTx = Db | Prisma.TransactionClient;

/** The webhook type of a job event, or null when events of its kind are not sent. */
export function webhookTypeOf(e: Pick<Event, 'type' | 'level' | 'data'>): WebhookEventType | null {
  if (e.type === 'status') {
    const status = (e.data as { status?: string } | null)?.status;
    return status && ['queued', 'running', 'succeeded', 'failed', 'cancelled'].includes(status) ? (`fine_tune.${status}` as WebhookEventType) : null;
  }
  if (e.type === 'epoch') return 'fine_tune.epoch';
  if (e.level === 'warning') return 'fine_tune.warning';
  return null;
}

const wants = (events: unknown, type: WebhookEventType) => events === null || events === undefined || (Array.isArray(events) && events.includes(type));

/** Writes the deliveries of one event (its job's URL, every endpoint that wants its type); call inside the event's transaction. */
export async function recordDeliveries(tx: DbOrTx, event: Event): Promise<number> {
  const type = webhookTypeOf(event);
  if (!type) return 0;
  const job = await tx.fineTune.findUnique({ where: { id: event.fineTuneId }, select: { status: true, webhookUrl: true, webhookEvents: true, tenantId: true } });
  if (!job) return 0;
  // Endpoints receive the events of their own tenant's jobs only.
  const endpoints = (await tx.webhookEndpoint.findMany({ where: { tenantId: job.tenantId }, select: { id: true, url: true, events: true } })).filter((e) => wants(e.events, type));
  const targets = [
    ...(job.webhookUrl && wants(job.webhookEvents, type) ? [{ endpointId: null, url: job.webhookUrl }] : []),
    ...endpoints.map((e) => ({ endpointId: e.id, url: e.url })),
  ];
  if (targets.length === 0) return 0;
  const body = JSON.stringify({
    type,
    timestamp: event.createdAt.toISOString(),
    data: {
      fineTune: event.fineTuneId,
      status: job.status,
      event: { id: event.id, level: event.level, type: event.type, message: event.message, data: event.data ?? null, createdAt: event.createdAt.toISOString() },
    },
  });
  await tx.webhookDelivery.createMany({
    data: targets.map((t) => ({ id: newId('webhookDelivery'), fineTuneId: event.fineTuneId, endpointId: t.endpointId, eventId: event.id, url: t.url, type, body })),
  });
  return targets.length;
}

export function createEndpoint(db: Db, e: { tenantId?: string; url: string; events: readonly WebhookEventType[]; description: string; secret: string }) {
  return db.webhookEndpoint.create({
    data: { id: newId('webhookEndpoint'), tenantId: e.tenantId ?? DEFAULT_TENANT, url: e.url, events: [...e.events], description: e.description, secret: e.secret },
  });
}

export function getEndpoint(db: Db, id: string, tenantId: string) {
  return db.webhookEndpoint.findFirst({ where: { id, tenantId } });
}

/** The tenant's endpoints, newest first. */
export async function listEndpoints(db: Db, opts: { tenantId: string; limit: number; after?: string | undefined }) {
  let before: Prisma.WebhookEndpointWhereInput = {};
  if (opts.after) {
    const cursor = await db.webhookEndpoint.findFirst({ where: { id: opts.after, tenantId: opts.tenantId }, select: { id: true, createdAt: true } });
    if (!cursor) return null;
    before = { OR: [{ createdAt: { lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { lt: cursor.id } }] };
  }
  const rows = await db.webhookEndpoint.findMany({ where: { tenantId: opts.tenantId, ...before }, take: opts.limit + 1, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
  return page(rows, opts.limit);
}

/** Deletes an endpoint; its deliveries still pending are cancelled (they stay listed on their jobs). */
export async function deleteEndpoint(db: Db, id: string, tenantId: string): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const owned = await tx.webhookEndpoint.count({ where: { id, tenantId } });
    if (owned === 0) return false;
    await tx.webhookDelivery.updateMany({ where: { endpointId: id, status: 'pending' }, data: { status: 'cancelled', nextAttemptAt: null } });
    const { count } = await tx.webhookEndpoint.deleteMany({ where: { id } });
    return count === 1;
  });
}

/**
 * Marks up to `limit` deliveries not yet handed to the queue as dispatched and returns their ids
 * (rows locked by another dispatcher are skipped). The caller adds them to the queue, whose job id
 * is the delivery id, so adding one twice is harmless.
 */
export async function claimUndispatched(db: Db, limit: number): Promise<string[]> {
  const rows = await db.$queryRaw<{ id: string }[]>`
    UPDATE webhook_deliveries SET dispatched_at = now()
    WHERE id IN (SELECT id FROM webhook_deliveries WHERE dispatched_at IS NULL ORDER BY created_at, id LIMIT ${limit} FOR UPDATE SKIP LOCKED)
    RETURNING id`;
  return rows.map((r) => r.id);
}

/** Hands a claimed delivery back (the queue could not take it). */
export async function undispatch(db: Db, ids: string[]): Promise<void> {
  await db.webhookDelivery.updateMany({ where: { id: { in: ids } }, data: { dispatchedAt: null } });
}

/** Pending deliveries already dispatched (after a restart: re-added to the queue, a no-op for those it holds). */
export async function pendingDispatched(db: Db, limit: number): Promise<string[]> {
  const rows = await db.webhookDelivery.findMany({ where: { status: 'pending', dispatchedAt: { not: null } }, select: { id: true }, orderBy: { createdAt: 'asc' }, take: limit });
  return rows.map((r) => r.id);
}

/** A delivery with what signs it (its endpoint's secret or its job's). */
export async function deliveryToSend(db: Db, id: string) {
  const row = await db.webhookDelivery.findUnique({
    where: { id },
    include: { endpoint: { select: { secret: true } }, fineTune: { select: { webhookSecret: true } }, _count: { select: { attempts: true } } },
  });
  if (!row) return null;
  const secret = row.endpointId ? (row.endpoint?.secret ?? null) : row.fineTune.webhookSecret;
  return { ...row, secret, attemptsSoFar: row._count.attempts };
}

export interface AttemptResult {
  attempt: number;
  responseStatus: number | null;
  error: string | null;
  durationMs: number;
}

/** Records one attempt and the delivery's state after it (`nextAttemptAt` when another will come). */
export async function recordAttempt(db: Db, id: string, a: AttemptResult, status: 'pending' | 'succeeded' | 'failed', nextAttemptAt: Date | null): Promise<void> {
  await db.$transaction([
    db.webhookAttempt.upsert({
      where: { deliveryId_attempt: { deliveryId: id, attempt: a.attempt } },
      create: { deliveryId: id, ...a },
      update: { responseStatus: a.responseStatus, error: a.error, durationMs: a.durationMs },
    }),
    db.webhookDelivery.updateMany({ where: { id, status: 'pending' }, data: { status, nextAttemptAt } }),
  ]);
}

export function cancelDelivery(db: Db, id: string) {
  return db.webhookDelivery.updateMany({ where: { id, status: 'pending' }, data: { status: 'cancelled', nextAttemptAt: null } });
}

/** Oldest first, with their attempts. */
export async function listDeliveries(db: Db, fineTuneId: string, opts: { limit: number; after?: string | undefined }) {
  let later: Prisma.WebhookDeliveryWhereInput = {};
  if (opts.after) {
    const cursor = await db.webhookDelivery.findUnique({ where: { id: opts.after }, select: { id: true, createdAt: true, fineTuneId: true } });
    if (!cursor || cursor.fineTuneId !== fineTuneId) return null;
    later = { OR: [{ createdAt: { gt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { gt: cursor.id } }] };
  }
  const rows = await db.webhookDelivery.findMany({
    where: { fineTuneId, ...later },
    include: { attempts: { orderBy: { attempt: 'asc' } } },
    take: opts.limit + 1,
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
  });
  return page(rows, opts.limit);
}

/**
 * Webhooks: what graft POSTs to a job's `webhookUrl` and to registered endpoints, how it signs it
 * (the Standard Webhooks scheme, https://www.standardwebhooks.com), and the deliveries it records.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { Deleted, Literals, NullableTimestamp, Page, PageFields, Timestamp } from './common.ts';

/**
 * `fine_tune.<status>` on each status change, `fine_tune.epoch` after each epoch (its metrics),
 * `fine_tune.warning` for each warning (imbalance, overfitting, leakage, ...).
 */
export const WEBHOOK_EVENT_TYPES = [
  'fine_tune.queued',
  'fine_tune.running',
  'fine_tune.succeeded',
  'fine_tune.failed',
  'fine_tune.cancelled',
  'fine_tune.epoch',
  'fine_tune.warning',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export const WebhookEventTypes = Type.Array(Literals(WEBHOOK_EVENT_TYPES, { title: 'WebhookEventType' }), {
  minItems: 1,
  uniqueItems: true,
  description: 'Only these event types are sent (default: all of them).',
});

export const WEBHOOK_URL_RULE = 'An http(s) URL whose address is public (not loopback, link-local or private) unless the operator allows it (`OUTBOUND_ALLOWLIST`).';
export const WebhookUrl = Type.String({ minLength: 1, maxLength: 2048, format: 'uri', description: WEBHOOK_URL_RULE });

/** The JSON body of every delivery. `data.event` is the job's event, as `GET /v1/fine-tunes/{id}/events` lists it. */
export const WebhookPayload = Type.Object(
  {
    type: Literals(WEBHOOK_EVENT_TYPES),
    timestamp: Timestamp,
    data: Type.Object({
      fineTune: Type.String({ description: 'The job id.' }),
      status: Type.String({ description: 'The job status after this event.' }),
      event: Type.Object({
        id: Type.String(),
        level: Type.String(),
        type: Type.String(),
        message: Type.String(),
        data: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
        createdAt: Timestamp,
      }),
    }),
  },
  { title: 'WebhookPayload' },
);
export type WebhookPayload = Static<typeof WebhookPayload>;

export const CreateWebhookEndpointBody = Type.Object(
  {
    url: WebhookUrl,
    events: Type.Optional(WebhookEventTypes),
    description: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false, title: 'CreateWebhookEndpointRequest' },
);
export type CreateWebhookEndpointBody = Static<typeof CreateWebhookEndpointBody>;

const EndpointFields = {
  id: Type.String(),
  object: Type.Literal('webhook_endpoint'),
  url: Type.String(),
  events: Type.Array(Literals(WEBHOOK_EVENT_TYPES)),
  description: Type.String(),
  createdAt: Timestamp,
};
export const WebhookEndpoint = Type.Object(EndpointFields, { title: 'WebhookEndpoint', description: 'Receives the events of every job.' });
export type WebhookEndpoint = Static<typeof WebhookEndpoint>;
export const WebhookEndpointCreated = Type.Object(
  { ...EndpointFields, secret: Type.String({ description: 'The signing secret (`whsec_…`). Shown once, in this answer only: keep it.' }) },
  { title: 'WebhookEndpointCreated' },
);
export type WebhookEndpointCreated = Static<typeof WebhookEndpointCreated>;
export const WebhookEndpointList = Page(WebhookEndpoint, 'WebhookEndpointList');
export const WebhookEndpointDeleted = Deleted('webhook_endpoint', 'WebhookEndpointDeleted');
export const WebhookEndpointListQuery = Type.Object(PageFields, { additionalProperties: false });

export const WEBHOOK_DELIVERY_STATUSES = ['pending', 'succeeded', 'failed', 'cancelled'] as const;
export const WebhookAttempt = Type.Object(
  {
    attempt: Type.Integer({ description: '1-based.' }),
    at: Timestamp,
    responseStatus: Type.Union([Type.Integer(), Type.Null()], { description: 'The HTTP status answered; null when there was no answer.' }),
    error: Type.Union([Type.String(), Type.Null()], { description: 'Why it did not succeed (a non-2xx status, no answer, a refused address).' }),
    durationMs: Type.Integer(),
  },
  { title: 'WebhookAttempt' },
);
export const WebhookDelivery = Type.Object(
  {
    id: Type.String({ description: 'The stable delivery id, sent as `webhook-id` on every attempt (receivers de-duplicate by it).' }),
    object: Type.Literal('webhook_delivery'),
    fineTune: Type.String(),
    endpoint: Type.Union([Type.String(), Type.Null()], { description: 'The registered endpoint, or null for the job\'s own `webhookUrl`.' }),
    url: Type.String(),
    type: Literals(WEBHOOK_EVENT_TYPES),
    event: Type.String({ description: 'The job event this delivery carries.' }),
    status: Literals(WEBHOOK_DELIVERY_STATUSES, {
      description: '`pending` until an attempt gets a 2xx (`succeeded`) or the last one fails (`failed`); `cancelled` when its endpoint was deleted.',
    }),
    attempts: Type.Array(WebhookAttempt),
    nextAttemptAt: NullableTimestamp,
    createdAt: Timestamp,
  },
  { title: 'WebhookDelivery' },
);
export type WebhookDelivery = Static<typeof WebhookDelivery>;
export const WebhookDeliveryList = Page(WebhookDelivery, 'WebhookDeliveryList');

/** BullMQ queue of deliveries; the BullMQ job id is the delivery id. */
export const WEBHOOK_QUEUE = 'webhooks';
export const WebhookJobData = Type.Object({ deliveryId: Type.String({ minLength: 1 }) }, { additionalProperties: false });
export type WebhookJobData = Static<typeof WebhookJobData>;

// ---- Signing (Standard Webhooks) ----

/** A new signing secret: `whsec_` + base64 of 32 random bytes (the key is the decoded bytes). */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
}

/** `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`. */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac('sha256', secretKey(secret)).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`;
}

/** The headers of one attempt: the same id every time, this attempt's timestamp and signature. */
export function webhookHeaders(secret: string, id: string, body: string, now = Date.now()): Record<string, string> {
  const timestamp = Math.floor(now / 1000);
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signWebhook(secret, id, timestamp, body),
  };
}

/**
 * What a receiver does: recompute the signature over the raw body and compare it in constant time
 * with each of the `v1,` signatures sent; refuse a timestamp more than `toleranceSeconds` away
 * (replays). Throws with the reason; returns the parsed payload.
 */
export function verifyWebhook(secret: string, headers: Record<string, string | string[] | undefined>, body: string, toleranceSeconds = 300, now = Date.now()): WebhookPayload {
  const one = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = one('webhook-id');
  const timestamp = one('webhook-timestamp');
  const signatures = one('webhook-signature');
  if (!id || !timestamp || !signatures) throw new Error('missing webhook-id, webhook-timestamp or webhook-signature');
  const ts = Number(timestamp);
  if (!Number.isInteger(ts) || Math.abs(now / 1000 - ts) > toleranceSeconds) throw new Error('webhook-timestamp too old or in the future');
  const expected = Buffer.from(signWebhook(secret, id, ts, body).slice(3), 'base64');
  const ok = signatures.split(' ').some((s) => {
    const [version, value] = s.split(',');
    if (version !== 'v1' || !value) return false;
    const got = Buffer.from(value, 'base64');
    return got.length === expected.length && timingSafeEqual(got, expected);
  });
  if (!ok) throw new Error('no matching signature');
  return JSON.parse(body) as WebhookPayload;
}

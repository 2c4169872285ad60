/** `/v1/webhook-endpoints`: URLs that receive the events of every job, each with its signing secret. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  CreateWebhookEndpointBody,
  GraftError,
  IdParams,
  PAGE_LIMIT_DEFAULT,
  WEBHOOK_EVENT_TYPES,
  WebhookEndpoint,
  WebhookEndpointCreated,
  WebhookEndpointDeleted,
  WebhookEndpointList,
  WebhookEndpointListQuery,
  newWebhookSecret,
} from '@graft/contracts';
import { webhooks, type WebhookEndpointRow } from '@graft/db';
import { described, errorResponses } from '../../../route-schemas.ts';
import { checkWebhookUrl } from '../../../webhook-url.ts';

export const endpointOut = (row: WebhookEndpointRow): WebhookEndpoint => ({
  id: row.id,
  object: 'webhook_endpoint',
  url: row.url,
  events: row.events as WebhookEndpoint['events'],
  description: row.description,
  createdAt: row.createdAt.toISOString(),
});

const webhookEndpointRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '',
    {
      schema: {
        operationId: 'createWebhookEndpoint',
        tags: ['webhooks'],
        summary: 'Register a URL that receives the events of every job',
        description:
          'Answers the endpoint with its signing `secret` (`whsec_…`), **shown once**. Each delivery is a POST of a `WebhookPayload`, signed per ' +
          'Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`).',
        body: CreateWebhookEndpointBody,
        response: {
          201: described(WebhookEndpointCreated, 'The endpoint and its secret (not shown again).'),
          ...errorResponses('invalid_request', 'unsupported_media_type', 'invalid_webhook_url'),
        },
      },
    },
    async (request, reply) => {
      const { url, events, description } = request.body;
      const checked = await checkWebhookUrl(url, app.config.OUTBOUND_ALLOWLIST, 'url');
      const secret = newWebhookSecret();
      const row = await webhooks.createEndpoint(app.db, { tenantId: request.tenantId, url: checked, events: events ?? WEBHOOK_EVENT_TYPES, description: description ?? '', secret });
      request.log.info({ endpoint: row.id }, 'webhook endpoint created');
      return reply.status(201).send({ ...endpointOut(row), secret });
    },
  );

  app.get(
    '',
    {
      schema: {
        operationId: 'listWebhookEndpoints',
        tags: ['webhooks'],
        summary: 'List webhook endpoints, newest first (without their secrets)',
        querystring: WebhookEndpointListQuery,
        response: { 200: described(WebhookEndpointList, 'A page of endpoints.'), ...errorResponses('invalid_request') },
      },
    },
    async (request) => {
      const { limit = PAGE_LIMIT_DEFAULT, after } = request.query;
      const page = await webhooks.listEndpoints(app.db, { tenantId: request.tenantId, limit, after });
      if (!page) throw new GraftError('invalid_request', 'Unknown cursor.', 'after');
      return { ...page, data: page.data.map(endpointOut) };
    },
  );

  app.get(
    '/:id',
    {
      schema: {
        operationId: 'getWebhookEndpoint',
        tags: ['webhooks'],
        summary: 'One webhook endpoint (without its secret)',
        params: IdParams,
        response: { 200: described(WebhookEndpoint, 'The endpoint.'), ...errorResponses('invalid_request', 'webhook_endpoint_not_found') },
      },
    },
    async (request) => {
      const row = await webhooks.getEndpoint(app.db, request.params.id, request.tenantId);
      if (!row) throw new GraftError('webhook_endpoint_not_found', `No webhook endpoint ${request.params.id}.`);
      return endpointOut(row);
    },
  );

  app.delete(
    '/:id',
    {
      schema: {
        operationId: 'deleteWebhookEndpoint',
        tags: ['webhooks'],
        summary: 'Delete a webhook endpoint',
        description: 'Its deliveries still pending are cancelled; past deliveries stay listed on their jobs.',
        params: IdParams,
        response: { 200: described(WebhookEndpointDeleted, 'The endpoint is deleted.'), ...errorResponses('invalid_request', 'webhook_endpoint_not_found') },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!(await webhooks.deleteEndpoint(app.db, id, request.tenantId))) throw new GraftError('webhook_endpoint_not_found', `No webhook endpoint ${id}.`);
      request.log.info({ endpoint: id }, 'webhook endpoint deleted');
      return { id, object: 'webhook_endpoint' as const, deleted: true as const };
    },
  );
};

export default webhookEndpointRoutes;

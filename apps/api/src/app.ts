/**
 * Builds the API: plugins (errors, services, openapi, multipart) then routes under /v1.
 * `buildApp` does not listen, so tests drive it with `app.inject` or supertest.
 */
import multipart from '@fastify/multipart';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import addFormatsImport from 'ajv-formats';
import Fastify, { type FastifyServerOptions } from 'fastify';
import { OneLinePerRequest } from './request-log.ts';
import type { ApiConfig } from './config.ts';
import { authModeOf } from './auth-mode.ts';
import auth from './plugins/auth.ts';
import rateLimit from './plugins/rate-limit.ts';
import dashboard from './plugins/dashboard.ts';
import errors, { clientErrorHandler, frameworkErrors } from './plugins/errors.ts';
import inputGuard from './plugins/input-guard.ts';
import feedHub from './plugins/feed-hub.ts';
import openapi from './plugins/openapi.ts';
import predictions from './plugins/predictions.ts';
import services from './plugins/services.ts';
import metrics from './plugins/metrics.ts';
import health from './routes/health.ts';
import baseModelRoutes from './routes/v1/base-models/index.ts';
import datasetRoutes from './routes/v1/datasets/index.ts';
import datasetSampleRoutes from './routes/v1/datasets/samples.ts';
import fineTuneRoutes from './routes/v1/fine-tunes/index.ts';
import predictRoutes from './routes/v1/fine-tunes/predict.ts';
import webhookEndpointRoutes from './routes/v1/webhook-endpoints/index.ts';
import workerRoutes from './routes/v1/workers/index.ts';

const addFormats = addFormatsImport as unknown as (ajv: Ajv) => Ajv;

/**
 * Bodies are validated strictly (no type coercion, unknown fields rejected, not stripped), so a
 * typo such as `"epoch": 5` is an error rather than silently ignored. Query strings and path
 * parameters arrive as text and are coerced.
 */
function validators() {
  const common = { useDefaults: true, removeAdditional: false as const, allErrors: false, strict: false };
  const body = addFormats(new Ajv({ ...common, coerceTypes: false }));
  const text = addFormats(new Ajv({ ...common, coerceTypes: 'array' }));
  return ({ schema, httpPart, contentType }: { schema: object; httpPart?: string; contentType?: string }) => {
    // Multipart bodies are streamed and checked part by part by their handler; the schema documents them.
    if (httpPart === 'body' && contentType?.startsWith('multipart/')) return () => true;
    return (httpPart === 'body' ? body : text).compile(schema);
  };
}

export async function buildApp(config: ApiConfig, opts: { logger?: FastifyServerOptions['logger'] } = {}) {
  authModeOf(config); // a configuration that may not start (AUTH=none off loopback) fails before anything opens
  const app = Fastify({
    logger: opts.logger ?? { level: config.LOG_LEVEL },
    routerOptions: { ignoreTrailingSlash: true },
    bodyLimit: 1024 * 1024, // JSON bodies; uploads are limited by MAX_UPLOAD_BYTES
    genReqId: () => `req_${Math.random().toString(36).slice(2, 12)}`,
    logController: new OneLinePerRequest(),
    // Refusals before routing (bad URLs, oversized headers, bytes that are not HTTP) in the error shape too.
    frameworkErrors,
    clientErrorHandler,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validators());

  await app.register(errors);
  await app.register(inputGuard);
  await app.register(openapi);
  await app.register(services, { config });
  await app.register(auth);
  await app.register(rateLimit);
  await app.register(feedHub);
  await app.register(predictions);
  await app.register(multipart, { limits: { fileSize: config.MAX_UPLOAD_BYTES, files: 1 } });

  await app.register(metrics);
  await app.register(health);
  await app.register(datasetRoutes, { prefix: '/v1/datasets' });
  await app.register(datasetSampleRoutes, { prefix: '/v1/datasets' });
  await app.register(baseModelRoutes, { prefix: '/v1/base-models' });
  await app.register(fineTuneRoutes, { prefix: '/v1/fine-tunes' });
  await app.register(predictRoutes, { prefix: '/v1/fine-tunes' });
  await app.register(webhookEndpointRoutes, { prefix: '/v1/webhook-endpoints' });
  await app.register(workerRoutes, { prefix: '/v1/workers' });
  await app.register(dashboard, { dir: config.DASHBOARD_DIR });
  return app;
}

/**
 * The OpenAPI 3.1 document (`GET /openapi.json`, `/openapi.yaml`) and its interactive reference
 * (`/docs`, Swagger UI served from the package: no CDN), built from the same TypeBox schemas the
 * routes validate with.
 *
 * Schemas named in contracts (a `title`) become `components.schemas` entries and every use a `$ref`:
 * the routes keep their schemas inline (so the type provider and the validators see plain TypeBox),
 * and `hoistNamedSchemas` rewrites the generated document. Two different schemas with one title
 * are a bug and fail the document.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { ERROR_CODES, JOB_ERROR_CODES } from '@graft/contracts';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

const errorTable = Object.entries(ERROR_CODES)
  .map(([code, { status, description }]) => `| \`${code}\` | ${status} | ${description} |`)
  .join('\n');
const jobErrorTable = Object.entries(JOB_ERROR_CODES)
  .map(([code, { description, param }]) => `| \`${code}\` | ${param ? `\`${param}\`` : ''} | ${description} |`)
  .join('\n');

const DESCRIPTION = `Fine-tuning jobs: upload a labelled dataset, fine-tune a pretrained base on it, follow it live, download the model.

Every error is \`{ "error": { "code", "message", "param"? } }\`; each operation lists the codes it can answer per status.
Clients switch on \`code\` (stable), never on \`message\`.

| code | status | meaning |
|---|---|---|
${errorTable}

A job that fails says why in \`error: { code, message, param? }\` (new codes may appear):

| code | param | meaning |
|---|---|---|
${jobErrorTable}`;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A key order independent serialisation, to compare two schemas that claim one name. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isObject(value)) return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  return JSON.stringify(value);
}

/**
 * Replaces every schema with a `title` by a `$ref` to `components.schemas[title]` (innermost first,
 * so named schemas refer to each other by name too).
 */
export function hoistNamedSchemas(doc: Json): Json {
  const named = new Map<string, { schema: Json; key: string }>();
  const visit = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(visit);
    if (!isObject(node)) return node;
    const out: Json = {};
    for (const [k, v] of Object.entries(node)) out[k] = k === 'example' || k === 'examples' || k === 'default' || k === 'const' || k === 'enum' ? v : visit(v);
    const looksLikeSchema = 'type' in out || 'anyOf' in out || 'oneOf' in out || 'allOf' in out || 'enum' in out || 'properties' in out;
    if (typeof out.title !== 'string' || !looksLikeSchema) return out;
    const name = out.title;
    const key = canonical(out);
    const seen = named.get(name);
    if (seen && seen.key !== key) throw new Error(`two different schemas are named ${name} in the OpenAPI document`);
    if (!seen) named.set(name, { schema: out, key });
    return { $ref: `#/components/schemas/${encodeURIComponent(name)}` };
  };
  const paths = visit(doc.paths);
  const components = isObject(doc.components) ? doc.components : {};
  const existing = isObject(components.schemas) ? (visit(components.schemas) as Json) : {};
  const schemas: Json = { ...existing };
  for (const name of [...named.keys()].sort()) schemas[name] = named.get(name)!.schema;
  return { ...doc, paths, components: { ...components, schemas } };
}

export default fp(
  async function openapi(app: FastifyInstance) {
    // Every documented route must say what it is: checked when the route is added, not by a reader later.
    app.addHook('onRoute', (route) => {
      const schema = route.schema as { hide?: boolean; operationId?: string; summary?: string } | undefined;
      if (!schema || schema.hide || route.method === 'HEAD') return;
      if (!schema.operationId || !schema.summary) throw new Error(`route ${route.method} ${route.url} needs an operationId and a summary`);
    });

    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: { title: 'graft', version: '0.1.0', description: DESCRIPTION },
        servers: [{ url: '/', description: 'This server' }],
        tags: [
          { name: 'datasets', description: 'Labelled data to fine-tune on' },
          { name: 'base-models', description: 'Pretrained models graft can start from' },
          { name: 'fine-tunes', description: 'Training jobs, their events, metrics, checkpoints and models' },
          { name: 'webhooks', description: 'Signed deliveries of job events to your URLs (Standard Webhooks)' },
          { name: 'workers', description: 'Live workers, their capabilities and what they run' },
          { name: 'health', description: 'Liveness and readiness' },
        ],
        components: {
          securitySchemes: {
            bearerAuth: {
              type: 'http',
              scheme: 'bearer',
              description:
                'An API key: `Authorization: Bearer gk_live_…` (an operator creates it with `npm run admin -- keys create --tenant <id>`). ' +
                'Every `/v1` route needs one and answers 401 `unauthorized` without a valid key; a development server (AUTH=none, loopback only) needs none.',
            },
          },
        },
        // Every operation needs a key unless it says `security: []` (health).
        security: [{ bearerAuth: [] }],
      },
      transformObject: (doc) => hoistNamedSchemas(('openapiObject' in doc ? doc.openapiObject : doc.swaggerObject) as Json) as never,
    });

    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
    app.get('/openapi.yaml', { schema: { hide: true } }, async (_req, reply) => reply.type('application/yaml').send(app.swagger({ yaml: true })));
    await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true, defaultModelsExpandDepth: 1 } });
  },
  { name: 'openapi' },
);

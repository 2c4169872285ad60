/** The OpenAPI 3 document, built from the same TypeBox schemas the routes validate with. */
import swagger from '@fastify/swagger';
import { ERROR_CODES } from '@graft/contracts';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

const errorTable = Object.entries(ERROR_CODES)
  .map(([code, { status, description }]) => `| \`${code}\` | ${status} | ${description} |`)
  .join('\n');

export default fp(
  async function openapi(app: FastifyInstance) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'graft',
          version: '0.1.0',
          description: `Fine-tuning jobs: upload a labelled dataset, fine-tune a pretrained base on it, download the model.\n\nEvery error is \`{ "error": { "code", "message", "param"? } }\`:\n\n| code | status | meaning |\n|---|---|---|\n${errorTable}`,
        },
        tags: [
          { name: 'datasets', description: 'Labelled data to fine-tune on' },
          { name: 'base-models', description: 'Pretrained models graft can start from' },
          { name: 'fine-tunes', description: 'Training jobs and their results' },
          { name: 'health', description: 'Liveness and readiness' },
        ],
      },
    });
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'openapi' },
);

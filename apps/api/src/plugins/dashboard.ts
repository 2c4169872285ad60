/**
 * The web dashboard (apps/dashboard, built by the set-up into apps/dashboard/dist) at `/`: its
 * hashed assets under `/assets/`, and index.html for `/` and for each of its page paths, named one
 * by one so that the app never answers for /v1, /docs, /openapi.json, /healthz, /readyz or /metrics
 * (an unknown path there stays a JSON 404). index.html is read per request, so a rebuild needs no
 * restart. `DASHBOARD_DIR=` (empty) turns it off.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

/** The dashboard's own paths (its router, apps/dashboard/src/main.ts, knows the same ones). */
export const DASHBOARD_PATHS = ['/', '/jobs/:id', '/datasets', '/datasets/:id', '/new', '/compare', '/try'];

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>graft</title>
<h1>graft</h1><p>The dashboard is not built here: run <code>npm run setup</code> (it builds apps/dashboard), then reload.
The API is at <a href="/docs">/docs</a>.</p>`;

export default fp(
  async function dashboard(app: FastifyInstance, opts: { dir: string }) {
    if (!opts.dir) return;
    const index = join(opts.dir, 'index.html');
    const assets = join(opts.dir, 'assets');
    if (existsSync(assets)) {
      await app.register(fastifyStatic, {
        root: assets,
        prefix: '/assets/',
        decorateReply: false,
        // File names carry a content hash: cache them for good.
        immutable: true,
        maxAge: '365d',
      });
    } else app.log.warn({ dir: opts.dir }, 'dashboard not built (run npm run setup); / answers a note');
    for (const url of DASHBOARD_PATHS) {
      app.get(url, { schema: { hide: true } }, async (_req, reply) => {
        const html = await readFile(index, 'utf8').catch(() => NOT_BUILT);
        return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(html);
      });
    }
  },
  { name: 'dashboard' },
);

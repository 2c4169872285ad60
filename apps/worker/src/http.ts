/**
 * The worker's own small HTTP server (WORKER_METRICS_PORT): `/healthz` for container health checks
 * and `/metrics` for Prometheus. Port 0 takes a free port (several workers on one host); the port
 * is logged in the "worker ready" line.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WorkerHttp {
  port: number;
  close(): Promise<void>;
}

export interface WorkerHttpHandlers {
  /** Why the worker is not healthy, or null when it is. */
  unhealthy(): string | null;
  /** Shown in /healthz: the TensorFlow.js backend and what computes frozen bases' features. */
  info?: { backend: string; frozenRuntime: string };
  /** Prometheus text exposition, and its content type. */
  metrics?(): Promise<{ contentType: string; body: string }>;
}

export async function startWorkerHttp(port: number, host: string, handlers: WorkerHttpHandlers): Promise<WorkerHttp> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const why = handlers.unhealthy();
      res.writeHead(why ? 503 : 200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...(why ? { status: 'unhealthy', reason: why } : { status: 'ok' }), ...handlers.info }));
      return;
    }
    if (path === '/metrics' && handlers.metrics) {
      handlers.metrics().then(
        (m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.body),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.message),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'not_found', message: `no route ${path}` } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

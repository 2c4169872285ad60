/** A test's own HTTP server on a free loopback port (a mirror of a model hub, a webhook receiver). */
import type { Server } from 'node:net';

export async function listenOnLoopback(server: Server): Promise<{ port: number; url: string }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { port, url: `http://127.0.0.1:${port}` };
}

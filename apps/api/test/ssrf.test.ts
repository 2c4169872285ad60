/**
 * POST /v1/base-models {url}: the API fetches only public addresses (or the operator's allow-list),
 * checks every redirect, and answers the same whatever sits at a refused or unreachable address;
 * inspections run in a bounded pool.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type RequestListener } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { startApi } from '../../../test/helpers/processes.ts';

const MNIST_BASE = fileURLToPath(new URL('../../../models/mnist-cnn-0-4/', import.meta.url));
const SPEC = { name: 'hosted', featureLayer: 'features', preprocessing: { height: 28, width: 28, channels: 1, scale: 1 / 255, offset: 0 } };

let env: TestEnv;
const closers: (() => unknown)[] = [];
before(async () => {
  env = await createTestEnv('ssrf');
});
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function serve(handler: RequestListener) {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}` };
}

async function api(extra: Record<string, string> = {}) {
  const a = await startApi(env, extra);
  closers.push(() => a.close());
  return a;
}

const model = (name: string) => readFileSync(join(MNIST_BASE, name));
const register = (apiUrl: string, url: string) => request(apiUrl).post('/v1/base-models').send({ ...SPEC, url });

describe('hosted base URLs', () => {
  test('loopback, metadata, closed, open and non-HTTP ports all answer one message; nothing is fetched', async () => {
    let hits = 0;
    const mirror = await serve((req, res) => {
      hits++;
      if (req.url?.endsWith('model.json')) return void res.end(model('model.json'));
      if (req.url?.endsWith('weights.bin')) return void res.end(model('weights.bin'));
      res.writeHead(404).end('<html>admin console</html>');
    });
    const banner = createTcpServer((s) => s.end('SSH-2.0-OpenSSH_9.2 secret-banner\r\n'));
    await new Promise<void>((r) => banner.listen(0, '127.0.0.1', r));
    closers.push(() => banner.close());
    const closedPort = await new Promise<number>((resolve) => {
      const s = createTcpServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const { url } = await api();
    const targets = [
      `${mirror.url}/m/model.json`, // a real model, but on loopback
      `http://localhost:${mirror.port}/m/model.json`,
      `http://[::1]:${mirror.port}/m/model.json`,
      `http://127.0.0.1:${closedPort}/model.json`,
      `http://127.0.0.1:${(banner.address() as AddressInfo).port}/model.json`,
      'http://169.254.169.254/latest/meta-data/model.json',
      'http://[::ffff:169.254.169.254]/model.json',
      'http://10.0.0.1/model.json',
    ];
    const messages = new Set<string>();
    for (const target of targets) {
      const t0 = Date.now();
      const res = await register(url, target);
      assert.equal(res.status, 422, `${target}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'invalid_base_model');
      messages.add(res.body.error.message.replace(target, '<url>'));
      assert.doesNotMatch(res.body.error.message, /SSH|secret|admin|ECONN|refused|HTTP \d/);
      assert.ok(Date.now() - t0 < 30_000, `${target} took ${Date.now() - t0} ms`);
    }
    // A text encoder's folder by URL goes through the same guard.
    const text = await request(url).post('/v1/base-models').send({ name: 'enc', task: 'text-classification', url: `${mirror.url}/hf/` });
    assert.equal(text.status, 422, JSON.stringify(text.body));
    assert.equal(text.body.error.param, 'url');
    messages.add(text.body.error.message.replace(`${mirror.url}/hf/`, '<url>'));
    assert.equal(messages.size, 1, [...messages].join('\n'));
    assert.match([...messages][0]!, /^The model at <url> cannot be fetched: it gave no usable HTTP answer in time, or it is not a public address/);
    assert.equal(hits, 0, 'the loopback mirror was contacted');
  });

  test('allow-listed mirrors register; a redirect out of the allow-list is refused; the answer never echoes what came back', async () => {
    const secret = await serve((_req, res) => res.end('{"secret":"internal-only"}'));
    const mirror = await serve((req, res) => {
      if (req.url === '/redirect/model.json') return void res.writeHead(302, { location: `${secret.url}/model.json` }).end();
      if (req.url === '/html/model.json') return void res.end('<html>internal dashboard token=abc</html>');
      if (req.url?.endsWith('model.json')) return void res.end(model('model.json'));
      if (req.url?.endsWith('weights.bin')) return void res.end(model('weights.bin'));
      res.writeHead(404).end();
    });
    const { url } = await api({ OUTBOUND_ALLOWLIST: `127.0.0.1:${mirror.port}` });
    const ok = await register(url, `${mirror.url}/m/model.json`);
    assert.equal(ok.status, 201, JSON.stringify(ok.body));

    const redirected = await register(url, `${mirror.url}/redirect/model.json`);
    assert.equal(redirected.status, 422);
    assert.match(redirected.body.error.message, /cannot be fetched: it gave no usable HTTP answer in time, or it is not a public address/);

    const html = await register(url, `${mirror.url}/html/model.json`);
    assert.equal(html.status, 422);
    assert.match(html.body.error.message, /model\.json is not JSON\.$/);
    assert.doesNotMatch(html.body.error.message.replace(`${mirror.url}/html/model.json`, ''), /html|dashboard|token/);
  });

  test('inspections run in a bounded pool: the rest wait, and past the queue answer 503 inspector_busy with Retry-After', async () => {
    let inFlight = 0;
    let peak = 0;
    const slow = await serve((req, res) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      setTimeout(() => {
        inFlight--;
        res.writeHead(404).end();
      }, 1500);
    });
    const { url } = await api({ OUTBOUND_ALLOWLIST: `127.0.0.1:${slow.port}`, INSPECT_CONCURRENCY: '1', INSPECT_QUEUE: '1' });
    const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => register(url, `${slow.url}/${i}/model.json`)));
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [422, 422, 503, 503, 503], JSON.stringify(answers.map((a) => a.body)));
    for (const busy of answers.filter((a) => a.status === 503)) {
      assert.equal(busy.body.error.code, 'inspector_busy');
      assert.equal(busy.headers['retry-after'], '10');
    }
    assert.equal(peak, 1, 'more than one inspection fetched at once');
  });
});

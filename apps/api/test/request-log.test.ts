/**
 * The API writes one log line per request, when it is answered: method, URL, status, time and the
 * request's id together (not a line on arrival and another on completion); errors keep their line.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { before, test } from 'node:test';
import { buildApp } from '../src/app.ts';
import { loadApiConfig } from '../src/config.ts';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';

let env: TestEnv;
before(async () => {
  env = await createTestEnv('request_log');
});

test('one line per request, with what was asked and how it was answered', async () => {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const app = await buildApp(loadApiConfig({ ...env }), { logger: { level: 'info', stream } });
  try {
    const before = lines.length;
    const ok = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(ok.statusCode, 200);
    const missing = await app.inject({ method: 'GET', url: '/v1/fine-tunes/ft_missing' });
    assert.equal(missing.statusCode, 404);
    const logged = lines.slice(before).filter((l) => l.reqId);
    const completed = logged.filter((l) => l.msg === 'request completed');
    assert.equal(completed.length, 2, JSON.stringify(logged));
    assert.ok(!logged.some((l) => l.msg === 'incoming request'));
    const [health, notFound] = completed as { req: { method: string; url: string }; res: { statusCode: number }; responseTime: number; reqId: string }[];
    assert.deepEqual([health!.req.method, health!.req.url, health!.res.statusCode], ['GET', '/healthz', 200]);
    assert.deepEqual([notFound!.req.method, notFound!.req.url, notFound!.res.statusCode], ['GET', '/v1/fine-tunes/ft_missing', 404]);
    assert.ok(typeof health!.responseTime === 'number');
    assert.equal(logged.filter((l) => l.reqId === health!.reqId).length, 1, 'a plain request has that line only');
  } finally {
    await app.close();
  }
});

/**
 * Hostile input answers 4xx in the error shape, from one place (the error plugin, the input guard,
 * Fastify's framework and client error handlers), never 500: NUL and lone surrogates in JSON, ids
 * and cursors; truncated or malformed multipart; malformed URLs; oversized headers and non-HTTP
 * bytes on a real socket. Then a property-based fuzz (fast-check) of every route of the OpenAPI
 * document finds no 5xx and no hang.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { startApi } from '../../../test/helpers/processes.ts';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
before(async () => {
  env = await createTestEnv('input');
  api = await startApi(env);
});
after(async () => api.close());

type Inject = InjectOptions;

/** One request through the real app; it must end within 10 s. */
async function send(req: Inject) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within 10 s: ${JSON.stringify(req).slice(0, 300)}`)), 10_000)));
  try {
    return await Promise.race([api.app.inject(req), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function assertErrorShape(res: { statusCode: number; body: string }, what: string) {
  assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${what}: ${res.statusCode} ${res.body.slice(0, 300)}`);
  const body = JSON.parse(res.body) as { error?: { code?: unknown; message?: unknown } };
  assert.equal(typeof body.error?.code, 'string', `${what}: ${res.body.slice(0, 300)}`);
  assert.equal(typeof body.error?.message, 'string', what);
}

const json = (method: string, url: string, payload: string): Inject => ({ method: method as 'POST', url, payload, headers: { 'content-type': 'application/json' } });

describe('NUL, lone surrogates, bad encodings', () => {
  test('in ids, cursors and JSON bodies: 400 invalid_request naming the field', async () => {
    const cases: [Inject, string | undefined][] = [
      [{ method: 'GET', url: '/v1/datasets/ds_%00' }, 'id'],
      [{ method: 'GET', url: '/v1/fine-tunes/ft_%00/events' }, 'id'],
      [{ method: 'GET', url: '/v1/fine-tunes/ft_x/checkpoints/ck_%00/model' }, 'checkpoint'],
      [{ method: 'DELETE', url: '/v1/base-models/bm_%00' }, 'id'],
      [{ method: 'GET', url: '/v1/datasets?after=%00' }, 'after'],
      [{ method: 'GET', url: '/v1/fine-tunes?after=ft_%00&status=running' }, 'after'],
      [{ method: 'GET', url: '/v1/base-models?after=%00' }, 'after'],
      [json('POST', '/v1/fine-tunes', '{"baseModel":"bm_mnist_cnn","dataset":"ds_\\u0000"}'), 'dataset'],
      [json('POST', '/v1/fine-tunes', '{"baseModel":"bm_mnist_cnn","dataset":"ds_x","metadata":{"note":"a\\u0000b"}}'), 'metadata.note'],
      [json('POST', '/v1/fine-tunes', '{"baseModel":"bm_mnist_cnn","dataset":"ds_x","metadata":{"note":"\\ud800"}}'), 'metadata.note'],
      [json('POST', '/v1/fine-tunes', '{"baseModel":"bm_mnist_cnn","dataset":"ds_x","metadata":{"\\udc00":"x"}}'), 'metadata'],
      [json('POST', '/v1/base-models', '{"name":"\\u0000","featureLayer":"f","preprocessing":{"height":1,"width":1,"channels":1,"scale":1,"offset":0},"url":"https://example.com/m.json"}'), 'name'],
    ];
    for (const [req, param] of cases) {
      const res = await send(req);
      assertErrorShape(res, `${req.method} ${req.url}`);
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(JSON.parse(res.body).error.param, param, res.body);
    }
  });

  test('malformed URLs and JSON', async () => {
    for (const req of [
      { method: 'GET', url: '/v1/datasets/%ED%A0%80' },
      { method: 'GET', url: '/v1/datasets/%' },
      { method: 'GET', url: '/v1/datasets/%C0%80' },
      json('POST', '/v1/fine-tunes', '{"baseModel":'),
      json('POST', '/v1/fine-tunes', '"\\ud800"'),
      json('POST', '/v1/fine-tunes', 'null'),
    ] as Inject[]) {
      assertErrorShape(await send(req), JSON.stringify(req));
    }
  });

  test('NUL in multipart fields and file names', async () => {
    const b = 'B0undary';
    const part = (name: string, value: string, filename?: string) =>
      `--${b}\r\nContent-Disposition: form-data; name="${name}"${filename !== undefined ? `; filename="${filename}"` : ''}\r\n\r\n${value}\r\n`;
    const multipart = (url: string, body: string): Inject => ({ method: 'POST', url, payload: body, headers: { 'content-type': `multipart/form-data; boundary=${b}` } });
    for (const req of [
      multipart('/v1/datasets', `${part('task', 'image-classification')}${part('name', 'a\u0000b')}${part('file', 'PK', 'x.zip')}--${b}--\r\n`),
      multipart('/v1/datasets', `${part('task', 'text-classification')}${part('file', 'text,label\na,b\n', 'x\u0000.csv')}--${b}--\r\n`),
      multipart('/v1/base-models', `${part('spec', '{"name":"\\u0000"}')}${part('file', 'PK', 'm.zip')}--${b}--\r\n`),
    ]) {
      const res = await send(req);
      assertErrorShape(res, String(req.payload).slice(0, 80));
      assert.equal(res.statusCode, 400, res.body);
    }
  });
});

describe('truncated and malformed multipart', () => {
  test('every multipart route answers 4xx', async () => {
    const b = 'XyZ';
    const bodies = [
      `--${b}\r\nContent-Disposition: form-data; name="task"\r\n\r\nimage-classification\r\n--${b}\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\nContent-Type: application/zip\r\n\r\nPK\u0003\u0004abc`,
      'garbage',
      `--${b}\r\nContent-Disposition: form-data; name="spec"\r\n\r\n{"na`,
      `--${b}\r\nno header end`,
      '',
    ];
    for (const url of ['/v1/datasets', '/v1/base-models']) {
      for (const payload of bodies) {
        for (const type of [`multipart/form-data; boundary=${b}`, 'multipart/form-data', 'multipart/form-data; boundary=']) {
          assertErrorShape(await send({ method: 'POST', url, payload, headers: { 'content-type': type } }), `${url} ${type} ${JSON.stringify(payload.slice(0, 40))}`);
        }
      }
    }
  });
});

/** Raw bytes over a real socket; resolves with what the server wrote before closing. */
function raw(bytes: string): Promise<string> {
  const { port } = new URL(api.url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), '127.0.0.1', () => sock.end(bytes));
    let out = '';
    sock.on('data', (d) => (out += d.toString()));
    sock.on('close', () => resolve(out));
    sock.on('error', reject);
    sock.setTimeout(5000, () => sock.destroy(new Error('no answer')));
  });
}

describe('refusals before routing, on a real socket', () => {
  test('oversized headers: 431 headers_too_large in the error shape', async () => {
    const out = await raw(`GET /v1/datasets HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 431 /);
    const body = JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error.code, 'headers_too_large');
  });

  test('bytes that are not HTTP: 400 in the error shape', async () => {
    const out = await raw('\u0000\u0001 not http at all\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.equal(JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)).error.code, 'invalid_request');
  });
});

// ---- the fuzz

interface Operation {
  method: string;
  path: string;
  query: string[];
  bodyTypes: string[];
  bodyFields: string[];
}

async function operations(): Promise<Operation[]> {
  const doc = JSON.parse((await send({ method: 'GET', url: '/openapi.json' })).body) as {
    paths: Record<string, Record<string, { parameters?: { in: string; name: string }[]; requestBody?: { content: Record<string, { schema: { $ref?: string; properties?: object; anyOf?: { $ref?: string; properties?: object }[] } }> } }>>;
    components: { schemas: Record<string, { properties?: object; anyOf?: { $ref?: string; properties?: object }[] }> };
  };
  const resolve = (s: { $ref?: string; properties?: object; anyOf?: { $ref?: string; properties?: object }[] } | undefined): string[] => {
    if (!s) return [];
    if (s.$ref) return resolve(doc.components.schemas[s.$ref.split('/').at(-1)!]);
    return [...Object.keys(s.properties ?? {}), ...(s.anyOf ?? []).flatMap(resolve)];
  };
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    if (!path.startsWith('/v1/') && !['/healthz', '/readyz'].includes(path)) continue;
    for (const [method, op] of Object.entries(methods)) {
      const content = op.requestBody?.content ?? {};
      ops.push({
        method: method.toUpperCase(),
        path,
        query: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
        bodyTypes: Object.keys(content),
        bodyFields: [...new Set(Object.values(content).flatMap((c) => resolve(c.schema)))],
      });
    }
  }
  return ops;
}

/** Percent-encodes every UTF-16 code unit's UTF-8 bytes as they are (lone surrogates included, as WTF-8). */
function encodeAny(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return [...s].map((ch) => {
      try {
        return encodeURIComponent(ch);
      } catch {
        const c = ch.charCodeAt(0);
        return [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)].map((x) => `%${x.toString(16).toUpperCase()}`).join('');
      }
    }).join('');
  }
}

const nasty = fc.constantFrom('\u0000', 'a\u0000b', '\ud800', '\udfff', 'ds_', 'ft_', 'bm_mnist_cnn', '../../etc/passwd', '', ' ', '-1', '1e309', 'NaN', 'null', '[]', '{}', '%', '\u202e', 'x'.repeat(3000));
const text = fc.oneof(fc.string(), fc.fullUnicodeString(), fc.string16bits(), nasty);
const segment = fc.oneof(text.map(encodeAny), fc.constantFrom('%00', '%ED%A0%80', '%', '%C0%80', '%2e%2e', 'ds_%00x'));
const value = fc.oneof(text, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(text, { maxLength: 3 }), fc.dictionary(text, text, { maxKeys: 3 }));

function bodyArb(op: Operation): fc.Arbitrary<{ payload: string; type: string } | null> {
  const arbs: fc.Arbitrary<{ payload: string; type: string } | null>[] = [fc.constant(null)];
  if (op.bodyTypes.includes('application/json')) {
    const fields = op.bodyFields.length ? op.bodyFields : ['x'];
    arbs.push(
      fc.dictionary(fc.oneof(fc.constantFrom(...fields), text), value, { maxKeys: 6 }).map((o) => ({ payload: JSON.stringify(o), type: 'application/json' })),
      fc.oneof(fc.jsonValue(), fc.unicodeJsonValue()).map((v) => ({ payload: JSON.stringify(v) ?? 'null', type: 'application/json' })),
      text.map((t) => ({ payload: t, type: 'application/json' })),
    );
  }
  if (op.bodyTypes.some((t) => t.startsWith('multipart/'))) {
    const part = fc.tuple(fc.constantFrom('task', 'file', 'spec', 'name', 'maxInvalidShare', 'baseModel'), text, fc.boolean()).map(
      ([name, v, isFile]) => `--B\r\nContent-Disposition: form-data; name="${name}"${isFile ? '; filename="f.zip"' : ''}\r\n\r\n${v}\r\n`,
    );
    arbs.push(
      fc.tuple(fc.array(part, { maxLength: 4 }), fc.boolean(), fc.nat(200)).map(([parts, close, cut]) => {
        const body = parts.join('') + (close ? '--B--\r\n' : '');
        return { payload: close ? body : body.slice(0, Math.max(0, body.length - cut)), type: 'multipart/form-data; boundary=B' };
      }),
    );
  }
  arbs.push(text.map((t) => ({ payload: t, type: 'text/plain' })));
  return fc.oneof(...arbs);
}

describe('fuzz: every route of the OpenAPI document', () => {
  test('no 5xx and no hang (fast-check, bounded runs)', { timeout: 120_000 }, async () => {
    const ops = await operations();
    assert.ok(ops.length >= 15, `only ${ops.length} operations found`);
    const t0 = Date.now();
    let requests = 0;
    for (const op of ops) {
      const params = (op.path.match(/\{[^}]+\}/g) ?? []).length;
      await fc.assert(
        fc.asyncProperty(
          fc.array(segment, { minLength: params, maxLength: params }),
          fc.array(fc.tuple(fc.oneof(fc.constantFrom(...(op.query.length ? op.query : ['x'])), text.map(encodeAny)), segment), { maxLength: 3 }),
          bodyArb(op),
          async (segments, query, body) => {
            let i = 0;
            const path = op.path.replace(/\{[^}]+\}/g, () => segments[i++]!);
            const qs = query.map(([k, v]) => `${encodeAny(k)}=${v}`).join('&');
            const req: Inject = { method: op.method as 'GET', url: qs ? `${path}?${qs}` : path };
            if (body && op.method !== 'GET' && op.method !== 'DELETE') Object.assign(req, { payload: body.payload, headers: { 'content-type': body.type } });
            const res = await send(req);
            requests++;
            if (res.statusCode >= 500) throw new Error(`${op.method} ${req.url} answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
            if (res.statusCode >= 400) assertErrorShape(res, `${op.method} ${req.url}`);
          },
        ),
        { numRuns: 100, seed: 20261128, endOnFailure: true },
      );
    }
    const ms = Date.now() - t0;
    console.log(`fuzz: ${ops.length} operations, ${requests} requests, ${ms} ms`);
    assert.ok(ms < 60_000, `the fuzz took ${ms} ms`);
  });
});

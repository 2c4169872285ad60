/**
 * The OpenAPI document as a client generator sees it: valid for @redocly/cli (recommended rules)
 * and swagger-parser, every operation named, every request body and error documented, and the
 * interactive reference served offline from this server.
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import { ERROR_CODES, type ErrorCode } from '@graft/contracts';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { startApi } from '../../../test/helpers/processes.ts';

const REDOCLY = fileURLToPath(new URL('../../../node_modules/@redocly/cli/bin/cli.js', import.meta.url));

type Json = Record<string, any>;
let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let doc: Json;

before(async () => {
  env = await createTestEnv('openapi');
  api = await startApi(env);
  const res = await request(api.url).get('/openapi.json');
  assert.equal(res.status, 200);
  doc = res.body;
});
after(async () => api.close());

const operations = () =>
  Object.entries(doc.paths as Json).flatMap(([path, item]) => Object.entries(item as Json).map(([method, op]) => ({ path, method, op: op as Json })));
const deref = (schema: Json): Json => (schema.$ref ? doc.components.schemas[decodeURIComponent(schema.$ref.split('/').at(-1))] : schema);

describe('the OpenAPI document', () => {
  test('is OpenAPI 3.1 with 0 errors from @redocly/cli lint (recommended rules)', () => {
    assert.equal(doc.openapi, '3.1.0');
    const file = join(env.STORAGE_DIR, 'openapi.json');
    writeFileSync(file, JSON.stringify(doc));
    const lint = spawnSync(process.execPath, [REDOCLY, 'lint', file, '--extends=recommended', '--format=json'], {
      encoding: 'utf8',
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
      timeout: 120_000,
    });
    const report = JSON.parse(lint.stdout) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[] };
    const errors = report.problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);
    assert.deepEqual(errors, []);
    assert.equal(report.totals.errors, 0);
    // What is left are warnings we accept, each for a reason (README "Decisions").
    const warnings = new Set(report.problems.map((p) => p.ruleId));
    for (const rule of warnings) assert.ok(['info-license', 'operation-4xx-response', 'no-unused-components'].includes(rule), `unexpected warning ${rule}`);
  });

  test('is valid for swagger-parser', async () => {
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  test('names every operation and its schemas', () => {
    const ids = operations().map(({ op }) => op.operationId as string);
    assert.ok(ids.every(Boolean), 'every operation has an operationId');
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    for (const name of ['Dataset', 'FineTune', 'CreateFineTuneRequest', 'BaseModel', 'FineTuneEvent', 'EpochMetrics', 'Checkpoint', 'JobError', 'CreateDatasetForm', 'CreateBaseModelForm'])
      assert.ok(doc.components.schemas[name], `components.schemas.${name}`);
    const created = doc.paths['/v1/fine-tunes'].post.responses['201'].content['application/json'].schema;
    assert.deepEqual(created, { $ref: '#/components/schemas/FineTune' });
    assert.equal(doc.components.securitySchemes.bearerAuth.scheme, 'bearer');
  });

  test('documents every request body, multipart included, with its fields', () => {
    for (const { path, method, op } of operations()) {
      if (method !== 'post') continue;
      if (path.endsWith('/cancel')) continue; // no body
      assert.ok(op.requestBody?.content, `${method} ${path} has a request body`);
    }
    const dataset = deref(doc.paths['/v1/datasets'].post.requestBody.content['multipart/form-data'].schema);
    assert.deepEqual(Object.keys(dataset.properties).sort(), ['baseModel', 'file', 'maxInvalidShare', 'name', 'task']);
    assert.equal(dataset.properties.file.format, 'binary');
    assert.deepEqual(dataset.required.sort(), ['file', 'task']);
    const base = doc.paths['/v1/base-models'].post.requestBody.content;
    assert.deepEqual(Object.keys(base).sort(), ['application/json', 'multipart/form-data']);
    assert.deepEqual(Object.keys(deref(base['multipart/form-data'].schema).properties).sort(), ['file', 'spec']);
    const byUrl = deref(base['application/json'].schema).anyOf.map(deref);
    assert.equal(byUrl.length, 2);
    for (const kind of byUrl) assert.ok(kind.required.includes('url'));
  });

  test('every error status answers the error schema with the enum of the codes it can carry', () => {
    for (const { path, method, op } of operations()) {
      for (const [status, response] of Object.entries(op.responses as Json)) {
        if (Number(status) < 400 || path === '/readyz') continue;
        const schema = (response as Json).content?.['application/json']?.schema;
        assert.ok(schema, `${method} ${path} ${status} is JSON`);
        const codes = schema.properties.error.properties.code.enum as ErrorCode[];
        assert.ok(codes.length > 0, `${method} ${path} ${status} lists its codes`);
        for (const code of codes) assert.equal(ERROR_CODES[code]?.status, Number(status), `${method} ${path}: ${code} answers ${status}`);
      }
    }
    const create = doc.paths['/v1/fine-tunes'].post.responses;
    assert.deepEqual(create['404'].content['application/json'].schema.properties.error.properties.code.enum, ['base_model_not_found', 'dataset_not_found']);
    const download = doc.paths['/v1/fine-tunes/{id}/model'].get.responses;
    assert.ok(download['200'].content['application/zip']);
    assert.deepEqual(download['409'].content['application/json'].schema.properties.error.properties.code.enum, ['model_not_ready']);
  });

  test('asks for an API key (bearerAuth) everywhere but health; every /v1 operation documents 401 unauthorized', () => {
    assert.deepEqual(doc.security, [{ bearerAuth: [] }]);
    assert.deepEqual(doc.components.securitySchemes.bearerAuth.type, 'http');
    for (const { path, method, op } of operations()) {
      if (path.startsWith('/v1/')) {
        assert.equal(op.security, undefined, `${method} ${path} uses the global security`);
        const unauthorized = op.responses['401']?.content?.['application/json']?.schema;
        assert.deepEqual(unauthorized?.properties.error.properties.code.enum, ['unauthorized'], `${method} ${path} documents 401`);
      } else {
        assert.deepEqual(op.security, [], `${method} ${path} is public`);
        assert.equal(op.responses['401'], undefined, `${method} ${path} answers no 401`);
      }
    }
  });

  test('never requires a request field that has a default, and states limits as constraints', () => {
    // Requests only: a response always carries every field (its `default` says what the server applied).
    const offenders: string[] = [];
    const seen = new Set<unknown>();
    const walk = (node: unknown, where: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}/${i}`));
      if (!node || typeof node !== 'object') return;
      const n = deref(node as Json);
      if (seen.has(n)) return;
      seen.add(n);
      if (Array.isArray(n.required) && n.properties) {
        for (const key of n.required) if (n.properties[key] && 'default' in deref(n.properties[key])) offenders.push(`${where}.${key}`);
      }
      if (n.in && n.required && n.schema && 'default' in n.schema) offenders.push(`${where} (${n.name})`);
      for (const [k, v] of Object.entries(n)) walk(v, `${where}/${k}`);
    };
    for (const { path, method, op } of operations()) walk({ body: op.requestBody ?? {}, parameters: op.parameters ?? [] }, `${method} ${path}`);
    assert.deepEqual(offenders, []);
    const hp = doc.components.schemas.Hyperparameters.properties;
    assert.equal(hp.learningRate.exclusiveMinimum, 0);
    assert.equal(hp.epochs.maximum, 500);
    const body = doc.components.schemas.CreateFineTuneRequest;
    assert.ok(!body.required.includes('validationSplit'));
    assert.equal(body.properties.validationSplit.default, 0.2);
  });
});

describe('/docs', () => {
  test('serves the interactive reference and its assets from this server (no CDN)', async () => {
    const page = await request(api.url).get('/docs').redirects(2);
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /text\/html/);
    const external = [...page.text.matchAll(/(?:src|href)="(https?:\/\/[^"]+)"/g)].map((m) => m[1]!);
    assert.deepEqual(external, []);
    const scripts = [...page.text.matchAll(/<script[^>]+src="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(scripts.length > 0);
    for (const src of scripts) {
      const asset = await request(api.url).get(new URL(src, `${api.url}/docs/`).pathname);
      assert.equal(asset.status, 200, src);
    }
    const init = await request(api.url).get('/docs/static/swagger-initializer.js');
    assert.equal(init.status, 200);
    assert.match(init.text, /validatorUrl: null/);
  });
});

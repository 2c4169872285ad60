/** Text datasets through the real API: uploads, answers, refusals, storage. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { createTestEnv, s3Settings, type TestEnv } from '../../../test/helpers/env.ts';
import { colourEntries, writeZip } from '../../../test/helpers/fixtures.ts';
import { startApi } from '../../../test/helpers/processes.ts';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let dir: string;

before(async () => {
  env = await createTestEnv('textds');
  api = await startApi(env);
  dir = join(env.STORAGE_DIR, 'fixtures');
  mkdirSync(dir, { recursive: true });
});
after(async () => api.close());

let n = 0;
function file(name: string, data: string | Buffer): string {
  const path = join(dir, `${n++}-${name}`);
  writeFileSync(path, data);
  return path;
}

const upload = (path: string, fields: Record<string, string> = {}, filename?: string) => {
  let r = request(api.url).post('/v1/datasets').field('task', 'text-classification');
  for (const [k, v] of Object.entries(fields)) r = r.field(k, v);
  return r.attach('file', path, filename ? { filename } : undefined);
};

function expectError(res: request.Response, status: number, code: string, param: string | undefined, message?: RegExp) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.error.code, code);
  assert.equal(res.body.error.param, param);
  if (message) assert.match(res.body.error.message, message);
}

const TINY_BERT = fileURLToPath(new URL('../../../models/text/tiny-bert/', import.meta.url));

/** Registers the tiny BERT fixture (an ONNX text encoder) as a base; its id. */
async function registerTinyBert(url: string, maxLength: number): Promise<string> {
  const zip = join(dir, `tiny-bert-${n++}.zip`);
  await writeZip(zip, ['model.onnx', 'config.json', 'tokenizer.json', 'tokenizer_config.json'].map((name) => ({ name, data: readFileSync(join(TINY_BERT, name)) })));
  const res = await request(url).post('/v1/base-models').field('spec', JSON.stringify({ name: 'tiny BERT', task: 'text-classification', maxLength })).attach('file', zip);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id as string;
}

/** The temporary area is empty again: a refused upload leaves nothing behind. */
const tmpIsEmpty = () => assert.deepEqual(readdirSync(join(env.STORAGE_DIR, 'tmp')), []);

const REVIEWS =
  '\uFEFFlabel,text,stars\r\n' +
  'pos,"Loved it, ""truly""\r\nwould watch again",5\r\n' +
  'neg,Dull and slow,1\r\n' +
  'pos,Great cast,4\r\n' +
  'neg,"Too long; never again",2\r\n' +
  'pos,great   CAST,5\r\n' +
  'neg,Great cast,3\r\n';

describe('POST /v1/datasets (text-classification)', () => {
  test('a CSV with quotes, embedded newlines, BOM and CRLF: rows per class, lengths, duplicates', async () => {
    const path = file('reviews.csv', REVIEWS);
    const res = await upload(path, { name: 'reviews' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const ds = res.body;
    assert.match(ds.id, /^ds_/);
    assert.equal(ds.task, 'text-classification');
    assert.equal(ds.name, 'reviews');
    assert.deepEqual(ds.format, { type: 'csv', compression: 'none', entry: null, delimiter: ',', bom: true });
    assert.equal(ds.bytes, readFileSync(path).length);
    assert.equal(ds.sha256, createHash('sha256').update(readFileSync(path)).digest('hex'));
    assert.equal(ds.rowCount, 6);
    assert.deepEqual(ds.classes, [
      { name: 'neg', index: 0, rows: 3, share: 0.5 },
      { name: 'pos', index: 1, rows: 3, share: 0.5 },
    ]);
    assert.deepEqual(ds.balance, { imbalanceRatio: 1, imbalanced: false });
    // Lengths: 36 (with the CRLF), 13, 10, 21, 12, 10 characters.
    // Tokens in graft's own text encoder's WordPiece (the default base), [CLS] and [SEP] included: 12, 5, 4, 7, 4, 4.
    assert.deepEqual(ds.textStats, {
      characters: { p5: 10, p50: 12, p95: 36, max: 36, mean: 17 },
      tokens: { p5: 4, p50: 4, p95: 12, max: 12, mean: 6, baseModel: 'bm_graft_text_encoder', maxLength: 128, overMaxLength: 0 },
    });
    assert.deepEqual(ds.duplicates, {
      rows: 2,
      texts: 1,
      conflictingTexts: 1,
      examples: [{ text: 'Great cast', count: 3, lines: [5, 7, 8], labels: ['pos', 'neg'], conflicting: true }],
      conflicts: [{ text: 'Great cast', count: 3, lines: [5, 7, 8], labels: ['pos', 'neg'], conflicting: true }],
    });
    assert.deepEqual([ds.invalidRows, ds.invalidRowCount, ds.invalidShare, ds.maxInvalidShare], [[], 0, 0, 0]);
    assert.equal(ds.imageCount, undefined);

    const got = await request(api.url).get(`/v1/datasets/${ds.id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, ds);
    // In storage: the upload as it was, the normalised rows (file order, with their lines) and the fingerprints.
    const stored = readdirSync(join(env.STORAGE_DIR, 'datasets')).filter((f) => f.startsWith(ds.id)).sort();
    assert.deepEqual(stored, [`${ds.id}.csv`, `${ds.id}.fingerprints`, `${ds.id}.rows.jsonl`]);
    assert.deepEqual(readFileSync(join(env.STORAGE_DIR, 'datasets', `${ds.id}.csv`)), readFileSync(path));
    const rows = readFileSync(join(env.STORAGE_DIR, 'datasets', `${ds.id}.rows.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(rows[0], { line: 2, text: 'Loved it, "truly"\r\nwould watch again', label: 'pos' });
    assert.deepEqual(rows.map((r: { line: number }) => r.line), [2, 4, 5, 6, 7, 8]);
    tmpIsEmpty();
  });

  test('JSONL, gzipped, and the single file of a zip; the answer says which', async () => {
    const jsonl = '{"text":"good","label":"pos"}\n{"text":"bad","label":"neg"}\n{"text":"fine","label":"pos","id":3}\n';
    const plain = await upload(file('d.jsonl', jsonl));
    assert.equal(plain.status, 201, JSON.stringify(plain.body));
    assert.deepEqual(plain.body.format, { type: 'jsonl', compression: 'none', entry: null, delimiter: null, bom: false });
    assert.equal(plain.body.rowCount, 3);

    const gz = await upload(file('d.jsonl.gz', gzipSync(jsonl)));
    assert.equal(gz.status, 201, JSON.stringify(gz.body));
    assert.deepEqual([gz.body.format.type, gz.body.format.compression], ['jsonl', 'gzip']);
    assert.ok(existsSync(join(env.STORAGE_DIR, 'datasets', `${gz.body.id}.jsonl.gz`)));

    const zipPath = join(dir, 'one.zip');
    await writeZip(zipPath, [{ name: 'export/train.csv', data: REVIEWS }, { name: '.DS_Store', data: 'x' }]);
    const zipped = await upload(zipPath);
    assert.equal(zipped.status, 201, JSON.stringify(zipped.body));
    assert.deepEqual(zipped.body.format, { type: 'csv', compression: 'zip', entry: 'export/train.csv', delimiter: ',', bom: true });
    assert.equal(zipped.body.rowCount, 6);
    assert.ok(existsSync(join(env.STORAGE_DIR, 'datasets', `${zipped.body.id}.zip`)));
  });

  const BAD =
    'text,label\n' + // 1
    'fine,a\n' + // 2
    ',a\n' + // 3
    'no label,\n' + // 4
    `${'t'.repeat(20_001)},b\n` + // 5
    `ok,${'l'.repeat(101)}\n` + // 6
    'one,two,three\n' + // 7
    'also fine,b\n' + // 8
    'more,b\n' + // 9
    '"open quote,a\n' + // 10
    'swallowed,b\n'; // 11
  const badBytes = Buffer.concat([Buffer.from(BAD.slice(0, BAD.indexOf('also fine'))), Buffer.from([0x62, 0xe9, 0x62, 0x2c, 0x61, 0x0a]), Buffer.from(BAD.slice(BAD.indexOf('also fine')))]);
  // Line 8 is now b\xe9b,a (Latin-1, not UTF-8); the rest moved down by one.

  test('every bad row answered with its line and reason when they are allowed', async () => {
    const res = await upload(file('bad.csv', badBytes), { maxInvalidShare: '0.8' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(
      res.body.invalidRows.map((r: { line: number; code: string }) => [r.line, r.code]),
      [[3, 'empty_text'], [4, 'missing_label'], [5, 'text_too_long'], [6, 'label_too_long'], [7, 'malformed_record'], [8, 'invalid_utf8'], [11, 'malformed_record']],
    );
    const reasons = res.body.invalidRows.map((r: { reason: string }) => r.reason);
    assert.match(reasons[2], /20001 characters; the limit is 20000/);
    assert.match(reasons[3], /101 characters; the limit is 100/);
    assert.match(reasons[4], /3 fields; the header has 2/);
    assert.match(reasons[6], /never closed/);
    assert.equal(res.body.invalidRowCount, 7);
    assert.equal(res.body.rowCount, 3);
    assert.equal(res.body.invalidShare, 0.7);
    assert.equal(res.body.maxInvalidShare, 0.8);
  });

  test('JSONL lines that are not JSON objects are answered with their line', async () => {
    const res = await upload(file('bad.jsonl', '{"text":"a","label":"x"}\n{"text": "b" "label": "y"}\n{"text":"c","label":"y"}\nnull\n'), { maxInvalidShare: '0.5' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.invalidRows.map((r: { line: number; code: string }) => [r.line, r.code]), [[2, 'malformed_json'], [4, 'malformed_json']]);
  });

  test('422 above the allowed share of invalid rows (default 0), with count, share and first reasons', async () => {
    const refused = await upload(file('bad2.csv', badBytes));
    expectError(refused, 422, 'too_many_invalid_rows', 'file', /^7 of 10 rows \(70\.00%\) are invalid; maxInvalidShare is 0\. First: line 3: the text is empty or blank; line 4: no label; line 5: .*maxInvalidShare to at least 0\.7/);
    const under = await upload(file('bad3.csv', badBytes), { maxInvalidShare: '0.69' });
    expectError(under, 422, 'too_many_invalid_rows', 'file', /maxInvalidShare is 0\.69/);
    tmpIsEmpty();
  });

  test('limits: more than 1,000 labels is refused, naming the limit', async () => {
    const rows = Array.from({ length: 1001 }, (_, i) => `text ${i},label${i}`).join('\n');
    expectError(await upload(file('labels.csv', `text,label\n${rows}\n`)), 422, 'too_many_entries', 'file', /more than 1000 distinct labels/);
    expectError(await upload(file('one.csv', 'text,label\na,x\nb,x\n')), 422, 'too_few_classes', 'file', /at least 2/);
  });

  test('a wrong zip, an image zip, and a file that is no text dataset', async () => {
    const two = join(dir, 'two.zip');
    await writeZip(two, [{ name: 'train.csv', data: REVIEWS }, { name: 'test.csv', data: REVIEWS }]);
    expectError(await upload(two), 422, 'invalid_text_dataset', 'file', /exactly one file.*holds 2/);
    const images = join(dir, 'images.zip');
    await writeZip(images, colourEntries(3));
    expectError(await upload(images), 422, 'invalid_text_dataset', 'file', /6 image\(s\).*task=image-classification/);
    expectError(await upload(file('x.csv', 'name,score\na,1\n')), 422, 'invalid_text_dataset', 'file', /"text" and a "label" column/);
    expectError(await upload(file('arr.json', '[{"text":"a"}]')), 422, 'invalid_text_dataset', 'file', /JSON array/);
    tmpIsEmpty();
  });

  test('a text dataset sent as images says how to send it', async () => {
    const asImage = (path: string) => request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', path);
    expectError(await asImage(file('r.csv', REVIEWS)), 400, 'invalid_archive', 'file', /not a readable \.zip.*text dataset \(CSV\): upload it with task=text-classification/);
    const zipped = join(dir, 'text.zip');
    await writeZip(zipped, [{ name: 'train.jsonl', data: '{"text":"a","label":"x"}\n' }]);
    expectError(await asImage(zipped), 422, 'no_images', 'file', /text dataset \(JSONL, in a zip\)/);
  });

  test('bad form fields', async () => {
    const path = file('ok.csv', REVIEWS);
    expectError(await upload(path, { maxInvalidShare: 'lots' }), 400, 'invalid_request', 'maxInvalidShare', /number from 0 to 1/);
    expectError(await upload(path, { maxInvalidShare: '1.5' }), 400, 'invalid_request', 'maxInvalidShare');
    expectError(await upload(path, { colour: 'red' }), 400, 'invalid_request', 'colour');
    expectError(await upload(path, { baseModel: 'bm_nope' }), 404, 'base_model_not_found', 'baseModel');
    expectError(await upload(path, { baseModel: 'bm_mnist_cnn' }), 422, 'task_mismatch', 'baseModel', /text base/);
    const img = join(dir, 'img.zip');
    await writeZip(img, colourEntries(2));
    const imageWithShare = await request(api.url).post('/v1/datasets').field('task', 'image-classification').field('maxInvalidShare', '0.1').attach('file', img);
    expectError(imageWithShare, 400, 'invalid_request', 'maxInvalidShare', /text-classification datasets only/);
    tmpIsEmpty();
  });

  test('tokens in the tokenizer of the base named: graft\'s encoder, or a registered ONNX encoder (rows over its maxLength counted)', async () => {
    const path = file('tok.csv', REVIEWS);
    const graft = await upload(path, { baseModel: 'bm_graft_text_encoder' });
    assert.equal(graft.status, 201, JSON.stringify(graft.body));
    assert.equal(graft.body.textStats.tokens.baseModel, 'bm_graft_text_encoder');
    assert.equal(graft.body.textStats.tokens.max, 12);
    const base = await registerTinyBert(api.url, 8);
    const res = await upload(path, { baseModel: base });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    // tiny-bert's 2,000-token WordPiece splits more finely: 13, 6, 4, 7, 4, 4; one row is over its maxLength of 8.
    assert.deepEqual(res.body.textStats.tokens, { p5: 4, p50: 4, p95: 13, max: 13, mean: 6.3, baseModel: base, maxLength: 8, overMaxLength: 1 });
    tmpIsEmpty();
  });

  test('with S3 storage: the upload, its rows and its fingerprints are stored objects', async () => {
    const s3 = await startApi(env, s3Settings('textds'));
    try {
      const res = await request(s3.url).post('/v1/datasets').field('task', 'text-classification').attach('file', file('s3.csv', REVIEWS));
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.rowCount, 6);
      for (const [key, bytes] of [[`datasets/${res.body.id}.csv`, Buffer.byteLength(REVIEWS)], [`datasets/${res.body.id}.fingerprints`, 16 + 4 * 8]] as const) {
        assert.equal(await s3.app.storage.size(key), bytes, key);
      }
      assert.ok(((await s3.app.storage.size(`datasets/${res.body.id}.rows.jsonl`)) ?? 0) > 0);
      assert.deepEqual((await request(s3.url).get(`/v1/datasets/${res.body.id}`)).body, res.body);
      // A registered base's tokenizer is pulled from the bucket for the count.
      const base = await registerTinyBert(s3.url, 128);
      const counted = await request(s3.url).post('/v1/datasets').field('task', 'text-classification').field('baseModel', base).attach('file', file('s3b.csv', REVIEWS));
      assert.equal(counted.status, 201, JSON.stringify(counted.body));
      assert.equal(counted.body.textStats.tokens.max, 13);
    } finally {
      await s3.close();
    }
  });

  test('DELETE removes a text dataset with its rows and fingerprints', async () => {
    const res = await upload(file('del.csv', REVIEWS));
    assert.equal(res.status, 201);
    const files = () => readdirSync(join(env.STORAGE_DIR, 'datasets')).filter((f) => f.startsWith(res.body.id));
    assert.equal(files().length, 3);
    const del = await request(api.url).delete(`/v1/datasets/${res.body.id}`);
    assert.equal(del.status, 200, JSON.stringify(del.body));
    assert.deepEqual(files(), []);
    expectError(await request(api.url).get(`/v1/datasets/${res.body.id}`), 404, 'dataset_not_found', undefined);
  });

  test('lists text and image datasets together', async () => {
    const img = join(dir, 'img2.zip');
    await writeZip(img, colourEntries(2));
    const image = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', img);
    assert.equal(image.status, 201);
    const text = await upload(file('t.csv', REVIEWS));
    const page = await request(api.url).get('/v1/datasets?limit=2');
    assert.equal(page.status, 200);
    assert.deepEqual(page.body.data.map((d: { id: string; task: string }) => [d.id, d.task]), [[text.body.id, 'text-classification'], [image.body.id, 'image-classification']]);
    assert.equal(page.body.data[1].imageCount, 4);
    assert.equal(page.body.data[0].rowCount, 6);
  });
});

describe('POST /v1/fine-tunes with datasets of two tasks', () => {
  test('a test dataset of another task is refused', async () => {
    const img = join(dir, 'train-img.zip');
    await writeZip(img, colourEntries(4));
    const image = await request(api.url).post('/v1/datasets').field('task', 'image-classification').attach('file', img);
    const text = await upload(file('tt.csv', REVIEWS));
    const res = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mnist_cnn', dataset: image.body.id, testDataset: text.body.id });
    expectError(res, 422, 'task_mismatch', 'testDataset', /is for text-classification/);
    const textTrain = await request(api.url).post('/v1/fine-tunes').send({ baseModel: 'bm_mnist_cnn', dataset: text.body.id });
    expectError(textTrain, 422, 'task_mismatch', 'dataset');
  });
});

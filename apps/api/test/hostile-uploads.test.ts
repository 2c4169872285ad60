/**
 * Hostile uploads against the real API: zip bombs (the 76 KB archive whose 300 directory entries
 * share one deflated block), overlapping and duplicated entries, names escaping the archive,
 * compression ratios, gzip bombs, and images the trainer could not decode. Every refusal is fast,
 * in the error shape, and leaves nothing in STORAGE_DIR/tmp.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { crc32, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import request from 'supertest';
import { decodeImage } from '@graft/engine';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { colourEntries, png, uploadColourDataset, writeZip } from '../../../test/helpers/fixtures.ts';
import { startApi, waitFor } from '../../../test/helpers/processes.ts';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let dir: string;

before(async () => {
  env = await createTestEnv('hostile');
  // A staged upload a crashed run left behind (old) and one another process is receiving (fresh).
  mkdirSync(join(env.STORAGE_DIR, 'tmp'), { recursive: true });
  writeFileSync(join(env.STORAGE_DIR, 'tmp', 'stale.upload'), 'x');
  const old = new Date(Date.now() - 2 * 3600_000);
  utimesSync(join(env.STORAGE_DIR, 'tmp', 'stale.upload'), old, old);
  writeFileSync(join(env.STORAGE_DIR, 'tmp', 'fresh.upload'), 'x');
  api = await startApi(env);
  dir = join(env.STORAGE_DIR, 'fixtures');
  mkdirSync(dir, { recursive: true });
  // One clean upload first: the check code is bundled and a check process started on first use,
  // so that the times asserted below are the refusals' own.
  await uploadColourDataset(api.url, dir, 2);
});
after(async () => api.close());

// ---- zips written byte by byte, so that their central directory can lie

interface Local {
  name: string;
  method: 0 | 8;
  /** The bytes as stored (deflated when method is 8). */
  stored: Buffer;
  crc: number;
  size: number;
}
interface Central {
  name: string;
  /** Which local record it points at; with `shift`, that many bytes into it. */
  local: number;
  shift?: number;
}

function rawZip(locals: Local[], central: Central[]): Buffer {
  const parts: Buffer[] = [];
  const offsets: number[] = [];
  let at = 0;
  for (const l of locals) {
    const name = Buffer.from(l.name);
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(l.method, 8);
    h.writeUInt16LE(0x21, 12); // 1980-01-01
    h.writeUInt32LE(l.crc, 14);
    h.writeUInt32LE(l.stored.length, 18);
    h.writeUInt32LE(l.size, 22);
    h.writeUInt16LE(name.length, 26);
    offsets.push(at);
    parts.push(h, name, l.stored);
    at += 30 + name.length + l.stored.length;
  }
  const cdStart = at;
  for (const c of central) {
    const l = locals[c.local]!;
    const name = Buffer.from(c.name);
    const h = Buffer.alloc(46);
    h.writeUInt32LE(0x02014b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(20, 6);
    h.writeUInt16LE(l.method, 10);
    h.writeUInt16LE(0x21, 14);
    h.writeUInt32LE(l.crc, 16);
    h.writeUInt32LE(l.stored.length, 20);
    h.writeUInt32LE(l.size, 24);
    h.writeUInt16LE(name.length, 28);
    h.writeUInt32LE(offsets[c.local]! + (c.shift ?? 0), 42);
    parts.push(h, name);
    at += 46 + name.length;
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(central.length, 8);
  end.writeUInt16LE(central.length, 10);
  end.writeUInt32LE(at - cdStart, 12);
  end.writeUInt32LE(cdStart, 16);
  parts.push(end);
  return Buffer.concat(parts);
}

const deflated = (name: string, data: Buffer): Local => ({ name, method: 8, stored: deflateRawSync(data, { level: 9 }), crc: crc32(data), size: data.length });
const stored = (name: string, data: Buffer): Local => ({ name, method: 0, stored: data, crc: crc32(data), size: data.length });

function file(name: string, data: Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

const upload = (path: string, task = 'image-classification') => request(api.url).post('/v1/datasets').field('task', task).attach('file', path);

function tmpLeft(): string[] {
  return readdirSync(join(env.STORAGE_DIR, 'tmp')).filter((n) => n !== 'fresh.upload');
}

async function refused(path: string, status: number, code: string, message?: RegExp, task?: string) {
  const t0 = Date.now();
  const res = await upload(path, task);
  const ms = Date.now() - t0;
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.error.code, code, JSON.stringify(res.body));
  assert.equal(res.body.error.param, 'file');
  if (message) assert.match(res.body.error.message, message);
  assert.deepEqual(tmpLeft(), [], 'a staged file was left behind');
  return { body: res.body, ms };
}

// ---- PNGs made wrong on purpose

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

function rawPng(width: number, height: number, depth: number, colour: number, idat: Buffer): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = depth;
  ihdr[9] = colour;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

/** A valid PNG whose IDAT bytes are altered (its CRC recomputed, so only the image data is wrong). */
function corruptIdat(good: Buffer): Buffer {
  const out = Buffer.from(good);
  let i = 8;
  while (i < out.length) {
    const len = out.readUInt32BE(i);
    const type = out.toString('latin1', i + 4, i + 8);
    if (type === 'IDAT') {
      for (let k = 4; k < Math.min(len, 24); k++) out[i + 8 + k] = out[i + 8 + k]! ^ 0x5a;
      out.writeUInt32BE(crc32(out.subarray(i + 4, i + 8 + len)), i + 8 + len);
      return out;
    }
    i += 12 + len;
  }
  throw new Error('no IDAT');
}

describe('hostile archives', () => {
  test('the 76 KB zip bomb (300 directory entries on one 60 MiB deflated block, 17.6 GiB inflated) is refused in well under a second of work', async () => {
    const block = deflated('a/0.png', Buffer.alloc(60 * 1024 * 1024));
    const central = Array.from({ length: 300 }, (_, i) => ({ name: `${i % 2 ? 'a' : 'b'}/${i}.png`, local: 0 }));
    const bomb = rawZip([block], central);
    assert.ok(bomb.length < 100_000, `the bomb is ${bomb.length} bytes`);
    const { body, ms } = await refused(file('bomb.zip', bomb), 422, 'unsafe_archive', /more than 200 times|share one local record/);
    assert.ok(ms < 10_000, `refused after ${ms} ms`);
    // The same layout without the extreme ratio (stored data) is refused for sharing one record.
    const shared = rawZip([stored('a/0.png', png(16, 16, [200, 0, 0]))], Array.from({ length: 300 }, (_, i) => ({ name: `${i % 2 ? 'a' : 'b'}/${i}.png`, local: 0 })));
    await refused(file('shared.zip', shared), 422, 'unsafe_archive', /share one local record/);
    void body;
  });

  test('overlapping entries, a name given twice, names escaping the archive and excessive ratios are refused before inflating', async () => {
    const a = stored('a/0.png', png(16, 16, [200, 0, 0]));
    const b = stored('b/0.png', png(16, 16, [0, 0, 200]));
    // Overlap: the second entry starts inside the first one's data.
    await refused(file('overlap.zip', rawZip([a, b], [{ name: 'a/0.png', local: 0 }, { name: 'b/0.png', local: 0, shift: 40 }])), 422, 'unsafe_archive', /overlap/);
    await refused(file('twice.zip', rawZip([a, b], [{ name: 'a/0.png', local: 0 }, { name: 'a/0.png', local: 1 }])), 422, 'unsafe_archive', /twice/);
    for (const evil of ['../../etc/x.png', '/abs/x.png', '..\\..\\x.png', 'C:/x.png']) {
      const zip = rawZip([stored(evil, png(8, 8, [1, 2, 3])), b], [{ name: evil, local: 0 }, { name: 'b/0.png', local: 1 }]);
      await refused(file('evil.zip', zip), 422, 'unsafe_archive', /escapes/);
    }
    // 8 MiB of zeros deflate about 1000:1 (the limit is 200).
    const ratio = rawZip([deflated('a/big.png', Buffer.alloc(8 * 1024 * 1024)), b], [{ name: 'a/big.png', local: 0 }, { name: 'b/0.png', local: 1 }]);
    await refused(file('ratio.zip', ratio), 422, 'unsafe_archive', /more than 200 times/);
  });

  test('a base-model zip (POST /v1/base-models) goes through the same archive guard: the bomb, shared, overlapping and duplicated records, escaping names, ratios', async () => {
    const spec = JSON.stringify({ name: 'hostile', featureLayer: 'features', preprocessing: { height: 28, width: 28, channels: 1, scale: 1 / 255, offset: 0 } });
    const refusedBase = async (path: string, message: RegExp) => {
      const t0 = Date.now();
      const res = await request(api.url).post('/v1/base-models').field('spec', spec).attach('file', path);
      const ms = Date.now() - t0;
      assert.equal(res.status, 422, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'unsafe_archive', JSON.stringify(res.body));
      assert.equal(res.body.error.param, 'file');
      assert.match(res.body.error.message, message);
      assert.deepEqual(tmpLeft(), [], 'a staged file was left behind');
      assert.deepEqual(readdirSync(join(env.STORAGE_DIR, 'base-models'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name), [], 'nothing stored');
      return ms;
    };
    mkdirSync(join(env.STORAGE_DIR, 'base-models'), { recursive: true });
    const json = stored('model.json', Buffer.from('{"modelTopology":{},"weightsManifest":[]}'));
    const weights = stored('weights.bin', Buffer.alloc(64, 1));
    const bomb = rawZip([deflated('weights.bin', Buffer.alloc(60 * 1024 * 1024)), json], [{ name: 'model.json', local: 1 }, ...Array.from({ length: 300 }, (_, i) => ({ name: `w${i}.bin`, local: 0 }))]);
    const ms = await refusedBase(file('bomb-base.zip', bomb), /more than 200 times|share one local record/);
    assert.ok(ms < 10_000, `refused after ${ms} ms`);
    await refusedBase(file('shared-base.zip', rawZip([json, weights], [{ name: 'model.json', local: 0 }, { name: 'weights.bin', local: 1 }, { name: 'more.bin', local: 1 }])), /share one local record/);
    await refusedBase(file('overlap-base.zip', rawZip([json, weights], [{ name: 'model.json', local: 0 }, { name: 'weights.bin', local: 0, shift: 20 }])), /overlap/);
    await refusedBase(file('twice-base.zip', rawZip([json, weights], [{ name: 'model.json', local: 0 }, { name: 'model.json', local: 1 }])), /twice/);
    for (const evil of ['../../etc/model.json', '/abs/model.json']) {
      await refusedBase(file('evil-base.zip', rawZip([stored(evil, Buffer.from('{}')), weights], [{ name: evil, local: 0 }, { name: 'weights.bin', local: 1 }])), /escapes/);
    }
    await refusedBase(file('ratio-base.zip', rawZip([json, deflated('weights.bin', Buffer.alloc(8 * 1024 * 1024))], [{ name: 'model.json', local: 0 }, { name: 'weights.bin', local: 1 }])), /more than 200 times/);
  });

  test('the total inflated size is bounded (ARCHIVE_MAX_INFLATED_BYTES), by declared sizes and while inflating', async () => {
    const small = await startApi(env, { ARCHIVE_MAX_INFLATED_BYTES: String(200 * 1024) });
    try {
      const path = join(dir, 'many.zip');
      await writeZip(path, colourEntries(40).map((e, i) => ({ name: e.name, data: png(64, 64, [i * 3, 100, 50], i + 1) })));
      const res = await request(small.url).post('/v1/datasets').field('task', 'image-classification').attach('file', path);
      assert.equal(res.status, 413, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'payload_too_large');
      assert.match(res.body.error.message, /inflates to more than 204800 bytes/);
    } finally {
      await small.close();
    }
  });
});

describe('images the trainer could not read are refused at upload, each named with its reason', () => {
  test('a corrupt IDAT, a 0x0 PNG and an 8192x8192 PNG (over the 40 Mpx decode limit)', async () => {
    const zeroByZero = rawPng(0, 0, 8, 2, deflateSync(Buffer.alloc(0)));
    // 1-bit grey, 8192 rows of 1 filter byte + 1024 bytes: a real, small file that declares 67 Mpx.
    const huge = rawPng(8192, 8192, 1, 0, deflateSync(Buffer.alloc(8192 * 1025)));
    const good = colourEntries(3);
    const path = join(dir, 'bad-images.zip');
    await writeZip(path, [
      ...good,
      { name: 'red/corrupt.png', data: corruptIdat(png(16, 16, [220, 30, 30], 99)) },
      { name: 'red/empty.png', data: zeroByZero },
      { name: 'blue/huge.png', data: huge },
    ]);
    const { body } = await refused(path, 422, 'unreadable_entry');
    const msg = body.error.message as string;
    assert.match(msg, /^3 images cannot be decoded/);
    assert.match(msg, /"red\/corrupt\.png": corrupt PNG image data/);
    assert.match(msg, /"red\/empty\.png": image is 0x0: it has no pixels/);
    assert.match(msg, /"blue\/huge\.png": image is 8192x8192; the limit is 40000000 pixels/);
    // The very function training decodes with refuses the same three.
    for (const [what, bad] of [["corrupt", corruptIdat(png(16, 16, [220, 30, 30], 99))], ["0x0", zeroByZero], ["huge", huge]] as const) assert.throws(() => decodeImage(bad), Error, what);
  });

  test('a clean dataset is still accepted, and every image in it decodes with the trainer\'s function', async () => {
    const entries = colourEntries(4);
    const path = join(dir, 'clean.zip');
    await writeZip(path, entries);
    const res = await upload(path);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    for (const e of entries) assert.equal(decodeImage(e.data as Buffer).width, 16);
    assert.deepEqual(tmpLeft(), []);
  });
});

describe('the check runs in a child process: what exhausts it ends the child, never the API', () => {
  // A real 6000x6000 RGB PNG (36 Mpx, under the 40 Mpx decode limit): about 100 KB, over 250 MB once decoded.
  const bigPng = () => rawPng(6000, 6000, 8, 2, deflateSync(Buffer.alloc(6000 * (1 + 6000 * 3)), { level: 1 }));
  const childrenOfThisProcess = () =>
    readdirSync(`/proc/${process.pid}/task`).flatMap((t) => readFileSync(`/proc/${process.pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number));

  test('an image that needs more memory than a check may use (DATASET_CHECK_MAX_RSS_MB) is refused with 422 dataset_check_failed', async () => {
    const small = await startApi(env, { DATASET_CHECK_MAX_RSS_MB: '160' });
    try {
      const path = join(dir, 'big-image.zip');
      await writeZip(path, [...colourEntries(2), { name: 'blue/big.png', data: bigPng() }]);
      const res = await request(small.url).post('/v1/datasets').field('task', 'image-classification').attach('file', path);
      assert.equal(res.status, 422, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'dataset_check_failed');
      assert.match(res.body.error.message, /needed more memory than it may use \(160 MB\); nothing was stored/);
      assert.deepEqual(tmpLeft(), []);
      // The API is unharmed, and the same kind of upload within bounds is still accepted.
      const ok = join(dir, 'ok-after.zip');
      await writeZip(ok, colourEntries(3));
      assert.equal((await request(small.url).post('/v1/datasets').field('task', 'image-classification').attach('file', ok)).status, 201);
    } finally {
      await small.close();
    }
  });

  test('a client that goes away during the check: its check process is killed and nothing is left staged', async () => {
    const path = join(dir, 'abandoned.zip');
    // Twenty 36 Mpx images: a check of a minute or more, so the child ending within seconds is the abort's doing.
    const big = bigPng();
    await writeZip(path, [...colourEntries(2), ...Array.from({ length: 20 }, (_, i) => ({ name: `blue/big-${i}.png`, data: big }))]);
    // Without a spare, the one new child process is the check's.
    const own = await startApi(env, { DATASET_CHECK_SPARE_MS: '0' });
    try {
      const before = new Set(childrenOfThisProcess());
      const boundary = 'graftabandon';
      const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="task"\r\n\r\nimage-classification\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\nContent-Type: application/zip\r\n\r\n`);
      const body = Buffer.concat([head, readFileSync(path), Buffer.from(`\r\n--${boundary}--\r\n`)]);
      const req = httpRequest(`${own.url}/v1/datasets`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length } });
      req.on('error', () => {});
      req.end(body);
      const child = await waitFor('the check process to start', async () => childrenOfThisProcess().find((pid) => !before.has(pid)), 30_000, 20);
      req.destroy();
      await waitFor('the check process to be killed', async () => !existsSync(`/proc/${child}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${child}/status`, 'utf8')), 10_000, 20);
      await waitFor('the staged upload to be removed', async () => tmpLeft().length === 0, 10_000, 50);
    } finally {
      await own.close();
    }
  });
});

describe('text uploads get the same inflation bounds', () => {
  test('a gzip bomb stops within its first megabytes', async () => {
    const body = Buffer.concat([Buffer.from('text,label\n'), Buffer.from('hello,a\n'.repeat(8 * 1024 * 1024))]);
    const bomb = file('bomb.csv.gz', gzipSync(body, { level: 9 }));
    const { ms } = await refused(bomb, 422, 'unsafe_archive', /more than 200 times/, 'text-classification');
    assert.ok(ms < 10_000, `refused after ${ms} ms`);
  });

  test('a text zip with entries sharing one record, or a bomb entry, is refused', async () => {
    const csv = Buffer.from('text,label\nhello,a\nbye,b\n');
    await refused(file('shared-text.zip', rawZip([stored('data.csv', csv)], [{ name: 'data.csv', local: 0 }, { name: 'more.csv', local: 0 }])), 422, 'unsafe_archive', /share one local record/, 'text-classification');
    const bomb = rawZip([deflated('data.csv', Buffer.concat([Buffer.from('text,label\n'), Buffer.from('hello,a\n'.repeat(4 * 1024 * 1024))]))], [{ name: 'data.csv', local: 0 }]);
    await refused(file('bomb-text.zip', bomb), 422, 'unsafe_archive', /more than 200 times/, 'text-classification');
  });
});

describe('temporary files', () => {
  test('stale staged files are swept when the API starts; fresh ones (another process may own them) stay', () => {
    const names = readdirSync(join(env.STORAGE_DIR, 'tmp'));
    assert.ok(!names.includes('stale.upload'), names.join(','));
    assert.ok(names.includes('fresh.upload'));
  });
});

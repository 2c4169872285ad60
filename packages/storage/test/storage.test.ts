/**
 * Both storage drivers against real backends: a directory on disk, and the run's loopback S3
 * server (real HTTP, SigV4-signed requests, multipart uploads, presigned URLs).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { createStorage, S3Storage, StorageNotFound, type Storage } from '@graft/storage';
import { s3Settings } from '../../../test/helpers/env.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const local = () => mkdtempSync(join(process.env.STORAGE_DIR ?? tmpdir(), 'storage-')); // removed with the run
async function drain(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function s3(root = local(), extra: Record<string, string> = {}): S3Storage {
  const s = { ...s3Settings('unit'), ...extra };
  return createStorage({
    STORAGE_DIR: root, STORAGE_DRIVER: 's3', S3_BUCKET: s.S3_BUCKET!, S3_PREFIX: extra.S3_PREFIX ?? 'p/q', S3_REGION: 'us-east-1',
    S3_ENDPOINT: s.S3_ENDPOINT!, S3_PUBLIC_ENDPOINT: '', S3_FORCE_PATH_STYLE: true, S3_ACCESS_KEY_ID: s.S3_ACCESS_KEY_ID!,
    S3_SECRET_ACCESS_KEY: s.S3_SECRET_ACCESS_KEY!, S3_CREATE_BUCKET: true, S3_PRESIGNED_DOWNLOADS: extra.S3_PRESIGNED_DOWNLOADS === 'true',
    S3_PRESIGN_EXPIRES_SECONDS: 60, STORAGE_CACHE_MAX_BYTES: Number(extra.STORAGE_CACHE_MAX_BYTES ?? 1e9),
  }) as S3Storage;
}

for (const [name, make] of [['local', () => createStorage({ STORAGE_DIR: local(), STORAGE_DRIVER: 'local' } as never)], ['s3', () => s3()]] as const) {
  describe(`${name} storage`, () => {
    test('a staged upload is committed, sized, read back byte for byte, pulled and removed', async () => {
      const storage: Storage = make();
      await storage.init();
      const data = randomBytes(12 * 1024 * 1024 + 17); // more than two 5 MiB parts
      const tmp = storage.tempKey('.zip');
      const staged = await storage.writeStream(tmp, Readable.from([data.subarray(0, 7e6), data.subarray(7e6)]));
      assert.deepEqual(staged, { key: tmp, bytes: data.length, sha256: sha(data) });
      await storage.commit(tmp, 'datasets/ds_1.zip');
      assert.equal(await storage.size('datasets/ds_1.zip'), data.length);
      assert.equal(sha(await drain(await storage.read('datasets/ds_1.zip'))), sha(data));
      const pulled = await storage.pull('datasets/ds_1.zip');
      assert.equal(sha(readFileSync(pulled.path)), sha(data));
      pulled.release();
      await storage.remove('datasets/ds_1.zip');
      assert.equal(await storage.size('datasets/ds_1.zip'), null);
      await assert.rejects(storage.read('datasets/ds_1.zip'), StorageNotFound);
      await assert.rejects(storage.pull('datasets/nope.zip'), StorageNotFound);
    });

    test('a directory (a registered base) is committed and pulled whole; remove takes the prefix', async () => {
      const storage: Storage = make();
      await storage.init();
      const stage = storage.tempKey();
      mkdirSync(storage.path(`${stage}/group1`), { recursive: true });
      writeFileSync(storage.path(`${stage}/model.json`), '{"format":"layers-model"}');
      writeFileSync(storage.path(`${stage}/group1/shard1of1.bin`), Buffer.from([1, 2, 3]));
      await storage.commit(stage, 'base-models/bm_x');
      assert.equal(await storage.size('base-models/bm_x/group1/shard1of1.bin'), 3);
      const dir = await storage.pull('base-models/bm_x', { directory: true });
      assert.equal(readFileSync(join(dir.path, 'model.json'), 'utf8'), '{"format":"layers-model"}');
      assert.deepEqual([...readFileSync(join(dir.path, 'group1/shard1of1.bin'))], [1, 2, 3]);
      dir.release();
      await storage.remove('base-models/bm_x');
      assert.equal(await storage.size('base-models/bm_x/model.json'), null);
      await assert.rejects(storage.pull('base-models/bm_x', { directory: true }), StorageNotFound);
    });

    test('keys cannot escape the local directory', () => {
      const storage: Storage = make();
      assert.throws(() => storage.path('../etc/passwd'), /escapes/);
    });
  });
}

describe('s3 storage specifics', () => {
  test('a wrong secret is refused by the server (requests are really signed)', async () => {
    const good = s3();
    await good.init();
    const bad = s3(local(), { S3_BUCKET: (good as unknown as { opts: { bucket: string } }).opts.bucket });
    (bad as unknown as { client: { config: { credentials: unknown } } }).client.config.credentials = async () => ({ accessKeyId: 'S3RVER', secretAccessKey: 'wrong' });
    await assert.rejects(bad.size('anything'), (err: { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode === 403);
  });

  test('presigned download URLs work until tampered with', async () => {
    const storage = s3(local(), { S3_PRESIGNED_DOWNLOADS: 'true' });
    await storage.init();
    const k = storage.tempKey();
    await storage.writeStream(k, Readable.from([Buffer.from('model bytes')]));
    await storage.commit(k, 'models/ft_1/model.zip');
    const url = await storage.downloadUrl('models/ft_1/model.zip', { filename: 'ft_1.zip', contentType: 'application/zip' });
    assert.ok(url);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename="ft_1.zip"');
    assert.equal(await res.text(), 'model bytes');
    const tampered = await fetch(url.replace('ft_1%2Fmodel.zip', 'ft_2%2Fmodel.zip').replace('/ft_1/', '/ft_2/'));
    assert.equal(tampered.status, 403);
    assert.equal(await s3().downloadUrl('models/ft_1/model.zip', { filename: 'x' }), null, 'off unless the operator turns it on');
  });

  test('the pull cache stays under its bound, evicting the least recently used and never what is held', async () => {
    const root = local();
    const storage = s3(root, { STORAGE_CACHE_MAX_BYTES: String(2500) });
    await storage.init();
    for (const n of [1, 2, 3]) {
      const k = storage.tempKey();
      await storage.writeStream(k, Readable.from([Buffer.alloc(1000, n)]));
      await storage.commit(k, `datasets/ds_${n}.zip`);
    }
    const one = await storage.pull('datasets/ds_1.zip');
    (await storage.pull('datasets/ds_2.zip')).release();
    (await storage.pull('datasets/ds_3.zip')).release(); // 3000 bytes > 2500: ds_2 goes, ds_1 is held
    const names = (await readdir(join(root, 'pulled'))).sort();
    assert.deepEqual(names, ['datasets%2Fds_1.zip', 'datasets%2Fds_3.zip']);
    one.release();
    const stats = await storage.cache.stats();
    assert.equal(stats.evictions, 1);
    assert.ok(stats.bytes <= 2500);
    // A second process on the same directory finds the copies (hits, no download).
    const again = s3(root, { S3_BUCKET: (storage as unknown as { opts: { bucket: string } }).opts.bucket, STORAGE_CACHE_MAX_BYTES: String(2500) });
    (await again.pull('datasets/ds_3.zip')).release();
    assert.deepEqual({ hits: (await again.cache.stats()).hits, misses: (await again.cache.stats()).misses }, { hits: 1, misses: 0 });
  });

  test('an unreachable bucket is a clear error at start', async () => {
    const storage = s3(local(), { S3_BUCKET: 'graft-missing-bucket-x' });
    (storage as unknown as { opts: { createBucket: boolean } }).opts.createBucket = false;
    await assert.rejects(storage.init(), /S3 bucket graft-missing-bucket-x .* is not usable/);
  });
});

/**
 * The `s3` driver: objects in an S3-compatible bucket (AWS, MinIO, Ceph, R2, ...), streamed both
 * ways (multipart upload from disk, downloads piped to disk or to the client), so no archive is
 * ever whole in memory. STORAGE_DIR keeps staged uploads, training output on its way up and the
 * pull cache: each host pulls what it trains on once and keeps it while space allows.
 */
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { listFiles, LocalDir } from './local-dir.ts';
import { PullCache } from './pull-cache.ts';
import { StorageNotFound, type Pulled, type Storage, type StoredFile } from './storage.ts';

export interface S3StorageOptions {
  root: string;
  bucket: string;
  prefix?: string;
  region: string;
  endpoint?: string;
  publicEndpoint?: string;
  forcePathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  createBucket?: boolean;
  presignedDownloads?: boolean;
  presignExpiresSeconds?: number;
  cacheMaxBytes: number;
  /** Multipart part size (bytes); S3's minimum is 5 MiB. */
  partSize?: number;
}

const isNotFound = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.name === 'NoSuchBucket' || e?.$metadata?.httpStatusCode === 404;
};

export class S3Storage implements Storage {
  readonly driver = 's3' as const;
  readonly root: string;
  readonly cache: PullCache;
  private readonly dir: LocalDir;
  private readonly client: S3Client;
  private readonly presigner: S3Client | null;

  constructor(private readonly opts: S3StorageOptions) {
    this.dir = new LocalDir(opts.root);
    this.root = this.dir.root;
    this.cache = new PullCache(join(this.root, 'pulled'), join(this.root, 'tmp'), opts.cacheMaxBytes);
    const config = (endpoint: string | undefined): S3ClientConfig => ({
      region: opts.region,
      forcePathStyle: opts.forcePathStyle ?? false,
      // Checksums only where S3 requires them: the SDK's default trailing CRC checksums (aws-chunked
      // uploads) are not understood by several S3-compatible services.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(endpoint ? { endpoint } : {}),
      ...(opts.accessKeyId ? { credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey ?? '' } } : {}),
    });
    this.client = new S3Client(config(opts.endpoint));
    this.presigner = opts.presignedDownloads ? new S3Client(config(opts.publicEndpoint || opts.endpoint)) : null;
  }

  private objectKey(key: string): string {
    if (key.startsWith('/') || key.split('/').includes('..')) throw new Error(`invalid storage key: ${key}`);
    return this.opts.prefix ? `${this.opts.prefix}/${key}` : key;
  }

  async init(): Promise<void> {
    await this.dir.init();
    const Bucket = this.opts.bucket;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket }));
    } catch (err) {
      if (!isNotFound(err) || !this.opts.createBucket) {
        throw new Error(`S3 bucket ${Bucket} at ${this.opts.endpoint || 'AWS'} is not usable: ${(err as Error).name} ${(err as Error).message}`);
      }
      await this.client.send(new CreateBucketCommand({ Bucket })).catch((e: Error) => {
        if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e;
      });
    }
  }

  path = (key: string) => this.dir.path(key);
  keyOf = (absPath: string) => this.dir.keyOf(absPath);
  tempKey = (ext?: string) => this.dir.tempKey(ext);
  writeStream = (key: string, source: Readable): Promise<StoredFile> => this.dir.writeStream(key, source);

  private async upload(file: string, key: string): Promise<void> {
    await new Upload({
      client: this.client,
      params: { Bucket: this.opts.bucket, Key: this.objectKey(key), Body: createReadStream(file) },
      partSize: this.opts.partSize ?? 16 * 1024 * 1024,
      queueSize: 2,
      leavePartsOnError: false,
    }).done();
  }

  async commit(fromKey: string, toKey: string): Promise<void> {
    const from = this.path(fromKey);
    const s = await stat(from);
    if (s.isDirectory()) {
      for (const rel of await listFiles(from)) await this.upload(join(from, rel), `${toKey}/${rel}`);
    } else await this.upload(from, toKey);
    await rm(from, { recursive: true, force: true });
  }

  async read(key: string): Promise<Readable> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.objectKey(key) }));
      return r.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new StorageNotFound(key);
      throw err;
    }
  }

  async size(key: string): Promise<number | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: this.objectKey(key) }));
      return r.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** Keys (relative to `key/`) of every object under the prefix. */
  private async list(key: string): Promise<string[]> {
    const Prefix = `${this.objectKey(key)}/`;
    const out: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.opts.bucket, Prefix, ContinuationToken }));
      for (const o of r.Contents ?? []) if (o.Key) out.push(o.Key.slice(Prefix.length));
      ContinuationToken = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return out;
  }

  async remove(key: string): Promise<void> {
    await this.dir.removeLocal(key);
    if (key.startsWith('tmp/')) return; // staging lives on local disk only
    await this.cache.drop(key);
    const keys = [this.objectKey(key), ...(await this.list(key)).map((k) => `${this.objectKey(key)}/${k}`)];
    for (let i = 0; i < keys.length; i += 1000) {
      await this.client.send(new DeleteObjectsCommand({ Bucket: this.opts.bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true } }));
    }
  }

  private async download(key: string, dest: string): Promise<void> {
    await mkdir(dirname(dest), { recursive: true });
    await pipeline(await this.read(key), createWriteStream(dest));
  }

  pull(key: string, opts: { directory?: boolean } = {}): Promise<Pulled> {
    return this.cache.get(key, async (dest) => {
      if (!opts.directory) return this.download(key, dest);
      const files = await this.list(key);
      if (files.length === 0) throw new StorageNotFound(key);
      await mkdir(dest, { recursive: true });
      for (const rel of files) await this.download(`${key}/${rel}`, join(dest, rel));
    });
  }

  async downloadUrl(key: string, opts: { filename: string; contentType?: string }): Promise<string | null> {
    if (!this.presigner) return null;
    const command = new GetObjectCommand({
      Bucket: this.opts.bucket,
      Key: this.objectKey(key),
      ResponseContentDisposition: `attachment; filename="${opts.filename.replace(/["\\\r\n]/g, '_')}"`,
      ...(opts.contentType ? { ResponseContentType: opts.contentType } : {}),
    });
    return getSignedUrl(this.presigner, command, { expiresIn: this.opts.presignExpiresSeconds ?? 900 });
  }
}

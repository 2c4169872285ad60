/**
 * Where graft keeps files (dataset archives, registered bases, checkpoints, models): a local
 * directory (default) or an S3-compatible bucket, behind one `Storage` interface.
 */
import { LocalStorage } from './local.ts';
import { S3Storage } from './s3.ts';
import type { Storage } from './storage.ts';

export * from './storage.ts';
export { LocalStorage } from './local.ts';
export { S3Storage, type S3StorageOptions } from './s3.ts';
export { PullCache, type PullCacheStats } from './pull-cache.ts';
export { trimCache, type CacheTrimResult } from './cache-bound.ts';

/** The storage settings of `CommonEnv` (packages/contracts/src/config.ts). */
export interface StorageConfig {
  STORAGE_DIR: string;
  STORAGE_DRIVER: 'local' | 's3';
  S3_BUCKET: string;
  S3_PREFIX: string;
  S3_REGION: string;
  S3_ENDPOINT: string;
  S3_PUBLIC_ENDPOINT: string;
  S3_FORCE_PATH_STYLE: boolean;
  S3_ACCESS_KEY_ID: string;
  S3_SECRET_ACCESS_KEY: string;
  S3_CREATE_BUCKET: boolean;
  S3_PRESIGNED_DOWNLOADS: boolean;
  S3_PRESIGN_EXPIRES_SECONDS: number;
  STORAGE_CACHE_MAX_BYTES: number;
}

export function createStorage(c: StorageConfig): Storage {
  if (c.STORAGE_DRIVER === 'local') return new LocalStorage(c.STORAGE_DIR);
  if (!c.S3_BUCKET) throw new Error('invalid configuration: S3_BUCKET is required when STORAGE_DRIVER=s3');
  return new S3Storage({
    root: c.STORAGE_DIR,
    bucket: c.S3_BUCKET,
    prefix: c.S3_PREFIX,
    region: c.S3_REGION,
    endpoint: c.S3_ENDPOINT,
    publicEndpoint: c.S3_PUBLIC_ENDPOINT,
    forcePathStyle: c.S3_FORCE_PATH_STYLE,
    accessKeyId: c.S3_ACCESS_KEY_ID,
    secretAccessKey: c.S3_SECRET_ACCESS_KEY,
    createBucket: c.S3_CREATE_BUCKET,
    presignedDownloads: c.S3_PRESIGNED_DOWNLOADS,
    presignExpiresSeconds: c.S3_PRESIGN_EXPIRES_SECONDS,
    cacheMaxBytes: c.STORAGE_CACHE_MAX_BYTES,
  });
}

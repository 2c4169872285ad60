/**
 * Per-test-file isolation on the real services: a database cloned from the run's migrated
 * template, a Redis prefix and a storage directory of its own.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

export interface TestEnv {
  DATABASE_URL: string;
  REDIS_URL: string;
  QUEUE_PREFIX: string;
  STORAGE_DIR: string;
  LOG_LEVEL: 'silent' | 'info' | 'debug' | 'warn' | 'error' | 'fatal' | 'trace';
}

export async function createTestEnv(name: string): Promise<TestEnv> {
  const templateUrl = process.env.GRAFT_TEST_TEMPLATE_URL;
  if (!templateUrl) throw new Error('run tests with `npm test` (it prepares the databases)');
  const template = new URL(templateUrl).pathname.slice(1);
  const suffix = `${name.replace(/[^a-z0-9]/gi, '').toLowerCase().slice(0, 16)}${Math.random().toString(36).slice(2, 6)}`;
  const dbName = `${template}_${suffix}`;
  const admin = new URL(templateUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${dbName}" TEMPLATE "${template}"`);
  } finally {
    await client.end();
  }
  const url = new URL(templateUrl);
  url.pathname = `/${dbName}`;
  const storage = join(process.env.STORAGE_DIR ?? '/tmp', suffix);
  mkdirSync(storage, { recursive: true });
  return {
    DATABASE_URL: url.toString(),
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    QUEUE_PREFIX: `${process.env.QUEUE_PREFIX ?? 'graft-test'}-${suffix}`,
    STORAGE_DIR: storage,
    LOG_LEVEL: (process.env.LOG_LEVEL as TestEnv['LOG_LEVEL']) ?? 'silent',
  };
}

/** Settings for the `s3` storage driver on the run's loopback S3 server, with a bucket of its own. */
export function s3Settings(name: string): Record<string, string> {
  const endpoint = process.env.GRAFT_TEST_S3_ENDPOINT;
  if (!endpoint) throw new Error('run tests with `npm test` (it starts the S3 test server)');
  const bucket = `graft-${name.replace(/[^a-z0-9]/gi, '').toLowerCase().slice(0, 20)}-${Math.random().toString(36).slice(2, 8)}`;
  return {
    STORAGE_DRIVER: 's3',
    S3_BUCKET: bucket,
    S3_ENDPOINT: endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: process.env.GRAFT_TEST_S3_ACCESS_KEY_ID ?? '',
    S3_SECRET_ACCESS_KEY: process.env.GRAFT_TEST_S3_SECRET_ACCESS_KEY ?? '',
    S3_CREATE_BUCKET: 'true',
  };
}

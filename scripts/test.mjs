#!/usr/bin/env node
// `npm test`: runs every *.test.ts against the real Postgres and Redis, isolated per run:
// a migrated template database `graft_t<run>` (each test file clones its own from it), Redis keys
// under `graft-test-<run>`, files under a temporary directory. All of it is removed afterwards.
// Extra arguments are test files (default: all, after a strict type-check).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const baseUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const template = new URL(baseUrl);
template.pathname = `/graft_t${run}`;
const storage = mkdtempSync(join(tmpdir(), `graft-test-${run}-`));

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}
const files = process.argv.slice(2).length ? process.argv.slice(2) : ['packages', 'apps', 'test'].flatMap((d) => findTests(join(root, d))).sort();

// A real S3-compatible server on loopback for the storage tests (scripts/s3-server.mjs).
async function startS3() {
  const child = spawn(process.execPath, [join(root, 'scripts/s3-server.mjs')], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const line = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.once('exit', (code) => reject(new Error(`the S3 test server exited with ${code}`)));
  });
  child.stdout.resume();
  return { child, ...JSON.parse(line) };
}
const s3 = await startS3();

// test/compose.test.ts validates docker-compose.yml with Debian's docker-compose (no engine needed).
// Installed here when missing, so that check fails rather than skips on a fresh machine.
function ensureDockerCompose() {
  if (spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0) return;
  if (process.getuid?.() !== 0 || spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.error('[test] docker-compose is missing and cannot be installed here (apt-get as root); the compose test will fail');
    return;
  }
  console.error('[test] installing docker-compose (Debian) for the compose check');
  const apt = (args) => spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (apt(['install', '-y', '--no-install-recommends', 'docker-compose']).status !== 0) {
    apt(['update', '-qq']);
    apt(['install', '-y', '--no-install-recommends', 'docker-compose']);
  }
}
if (files.some((f) => f.endsWith('compose.test.ts'))) ensureDockerCompose();
if (files.some((f) => f.startsWith('apps/dashboard/'))) (await import('./ensure-chromium.mjs')).ensureChromium();

const env = {
  ...process.env,
  GRAFT_TEST_S3_ENDPOINT: s3.endpoint,
  GRAFT_TEST_S3_ACCESS_KEY_ID: s3.accessKeyId,
  GRAFT_TEST_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  // The AWS SDK warns once per process that its 2027 releases will want Node 22 (README, "Node").
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  GRAFT_TEST_RUN: run,
  GRAFT_TEST_TEMPLATE_URL: template.toString(),
  REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  QUEUE_PREFIX: `graft-test-${run}`,
  STORAGE_DIR: storage,
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
};
const tsx = ['--import', 'tsx'];
const db = (cmd) => spawnSync(process.execPath, [...tsx, 'scripts/test-db.ts', cmd], { cwd: root, env, stdio: 'inherit' });

let status = 1;
try {
  // The whole suite also type-checks (strict) every workspace; a single file is run as is.
  if (process.argv.length <= 2) {
    console.error('[test] tsc --noEmit');
    for (const project of ['tsconfig.json', 'apps/dashboard/tsconfig.json']) {
      const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', project, '--noEmit'], { cwd: root, stdio: 'inherit' });
      if (tsc.status !== 0) throw new Error('type errors');
    }
  }
  if (db('create').status !== 0) throw new Error('could not create the test database (is PostgreSQL running?)');
  // One file at a time: the training tests use a whole core each, and the machine has two.
  const r = spawnSync(process.execPath, [...tsx, '--test', '--test-concurrency=1', ...files], { cwd: root, env, stdio: 'inherit' });
  status = r.status ?? 1;
} catch (err) {
  console.error(`[test] ${err.message}`);
} finally {
  db('drop');
  rmSync(storage, { recursive: true, force: true });
  s3.child.kill('SIGTERM');
}
process.exit(status);

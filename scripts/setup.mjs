#!/usr/bin/env node
// Brings a fresh clone to a runnable state, doing only what is missing:
//   1. installs dependencies (npm ci) when node_modules is absent or older than package-lock.json;
//   2. generates the Prisma client when it is absent or older than prisma/schema.prisma;
//   3. builds the client package (packages/client/dist) when it is absent or its sources changed;
//   4. builds the web dashboard (apps/dashboard/dist) when it is absent or its sources changed;
//   5. (`npm run setup` only, not --quiet) installs Debian's chromium for the browser tests when missing.
// Plain JavaScript with no dependencies, because it runs before any are installed.
// Databases are created and migrated by the programs that use them (start, demo, test).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
const log = (msg) => { if (!quiet) console.error(`[setup] ${msg}`); };
const hash = (file) => createHash('sha256').update(readFileSync(join(root, file))).digest('hex');

function run(cmd, args, env = {}) {
  console.error(`[setup] ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`[setup] failed: ${cmd} ${args.join(' ')} (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

// 1. dependencies
const installStamp = join(root, 'node_modules', '.graft-install');
const lockHash = existsSync(join(root, 'package-lock.json')) ? hash('package-lock.json') : 'none';
if (!existsSync(installStamp) || readFileSync(installStamp, 'utf8') !== lockHash) {
  // tfjs-node(-gpu) are optional: their install script downloads libtensorflow and may fail offline.
  // onnxruntime-node (under @huggingface/transformers) would download CUDA binaries at install: skip, offline.
  run('npm', [lockHash === 'none' ? 'install' : 'ci', '--no-audit', '--no-fund'], { ONNXRUNTIME_NODE_INSTALL: 'skip' });
  writeFileSync(installStamp, lockHash);
  // nsfwjs 4.4.0 declares `"node": "22.13.0"` (one exact version), so npm warns on every other Node.
  // graft reads only its weight files (plain JS modules), which do not depend on the Node version.
  if (process.version !== 'v22.13.0') log('the EBADENGINE warning about nsfwjs above is expected (README, "Node versions")');
  if (Number(process.versions.node.split('.')[0]) < 22) log(`Node ${process.version} is older than graft's policy (Node 22 LTS, see .nvmrc); it runs, but upgrade`);
} else log('dependencies up to date');

// 2. Prisma client
const generatedStamp = join(root, 'packages/db/src/generated/.schema-hash');
const schemaHash = hash('prisma/schema.prisma');
if (!existsSync(generatedStamp) || readFileSync(generatedStamp, 'utf8') !== schemaHash) {
  // `prisma generate` needs no engine, but Prisma 7's CLI looks for the schema engine binary and
  // tries to download it when absent; pointing at any existing file skips that (offline machines).
  run('npx', ['prisma', 'generate'], { PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath, PRISMA_HIDE_UPDATE_MESSAGE: '1' });
  writeFileSync(generatedStamp, schemaHash);
} else log('prisma client up to date');

// 3. the client package: what `npm pack` ships and the dashboard bundles (its build skips itself when up to date).
const client = spawnSync(process.execPath, ['packages/client/scripts/build.mjs'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
if (client.status !== 0) {
  console.error(`[setup] failed: the client's build (exit ${client.status})`);
  process.exit(client.status ?? 1);
}

// 4. the dashboard, built once per change of its sources (or of the client it imports); about 2 s.
const dashboardInputs = ['apps/dashboard/src', 'apps/dashboard/index.html', 'apps/dashboard/vite.config.ts', 'apps/dashboard/package.json', 'packages/client/src', 'package-lock.json'];
const files = (p) => (statSync(join(root, p)).isDirectory() ? readdirSync(join(root, p)).sort().flatMap((n) => files(`${p}/${n}`)) : [p]);
const dashboardHash = createHash('sha256');
for (const f of dashboardInputs.flatMap(files)) dashboardHash.update(f).update(readFileSync(join(root, f)));
const dashboardDigest = dashboardHash.digest('hex');
const dashboardStamp = join(root, 'apps/dashboard/dist/.sources-hash');
if (!existsSync(dashboardStamp) || readFileSync(dashboardStamp, 'utf8') !== dashboardDigest) {
  run(process.execPath, ['node_modules/vite/bin/vite.js', 'build', '--config', 'apps/dashboard/vite.config.ts', '--logLevel', 'warn']);
  writeFileSync(dashboardStamp, dashboardDigest);
} else log('dashboard up to date');

// 5. the browser the dashboard's tests drive (the test command checks again before those tests)
if (!quiet) {
  const { ensureChromium } = await import('./ensure-chromium.mjs');
  ensureChromium();
}

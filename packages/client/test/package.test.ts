/**
 * The client as another backend gets it: every operation of the OpenAPI document has a method, and
 * the package packed by `npm pack` installs into a project outside this tree, type-checks there
 * against its own declarations, and calls a running API (the library and the `graft` command).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Graft } from '@graft/client';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { startApi } from '../../../test/helpers/processes.ts';

const PKG = fileURLToPath(new URL('..', import.meta.url));
const TSC = fileURLToPath(new URL('../../../node_modules/typescript/bin/tsc', import.meta.url));

/** operationId → the client method that calls it. A route added without a method fails the first test. */
const OPERATIONS: Record<string, string> = {
  health: 'health',
  ready: 'ready',
  createDataset: 'datasets.upload',
  listDatasets: 'datasets.list',
  getDataset: 'datasets.retrieve',
  getDatasetSamples: 'datasets.samples',
  deleteDataset: 'datasets.delete',
  listBaseModels: 'baseModels.list',
  getBaseModel: 'baseModels.retrieve',
  createBaseModel: 'baseModels.register',
  deleteBaseModel: 'baseModels.delete',
  createFineTune: 'fineTunes.create',
  listFineTunes: 'fineTunes.list',
  getFineTune: 'fineTunes.retrieve',
  cancelFineTune: 'fineTunes.cancel',
  deleteFineTune: 'fineTunes.delete',
  listFineTuneEvents: 'fineTunes.events',
  listFineTuneMetrics: 'fineTunes.metrics',
  listFineTuneCheckpoints: 'fineTunes.checkpoints',
  listFineTuneWebhookDeliveries: 'fineTunes.webhookDeliveries',
  downloadFineTuneModel: 'fineTunes.download',
  downloadCheckpointModel: 'fineTunes.download', // { checkpoint }
  predictFineTune: 'fineTunes.predict',
  predictCheckpoint: 'fineTunes.predict', // { checkpoint }
  createWebhookEndpoint: 'webhookEndpoints.create',
  listWebhookEndpoints: 'webhookEndpoints.list',
  getWebhookEndpoint: 'webhookEndpoints.retrieve',
  deleteWebhookEndpoint: 'webhookEndpoints.delete',
  listWorkers: 'workers.list',
};

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: { ...process.env, ...env }, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`)) : resolve({ stdout, stderr }),
    );
  });
}

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let dir: string;

before(async () => {
  env = await createTestEnv('client-package');
  api = await startApi(env);
  dir = await mkdtemp(join(tmpdir(), 'graft-client-package-'));
});
after(async () => {
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('@graft/client as a package', () => {
  test('has a method for every operation of the OpenAPI document', async () => {
    const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, { operationId?: string }>> };
    const ids = Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId ?? '(none)'));
    assert.deepEqual([...ids].sort(), Object.keys(OPERATIONS).sort(), 'operations without a client method (add one, and a line above), or lines for operations that are gone');
    const graft = new Graft({ baseUrl: api.url }) as unknown as Record<string, unknown>;
    for (const [id, method] of Object.entries(OPERATIONS)) {
      const fn = method.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], graft);
      assert.equal(typeof fn, 'function', `${id}: Graft#${method}`);
    }
  });

  test('packs, installs from the tarball outside the workspace, type-checks, and calls the API', { timeout: 900_000 }, async () => {
    // `npm pack` runs the build (prepare); only dist/, bin/ and package.json ship.
    const packed = JSON.parse((await run('npm', ['pack', '--json', '--pack-destination', dir], PKG)).stdout) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts') && files.includes('dist/contracts/index.d.ts'), files.join(', '));
    assert.deepEqual(files.filter((f) => !/^(dist|bin)\/|^package\.json$/.test(f)), []);

    const project = join(dir, 'consumer');
    await run('mkdir', ['-p', project], dir);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, packed[0]!.filename)], project);

    // Types from the package's own declarations (checked, not skipped), as a strict NodeNext project sees them.
    await writeFile(
      join(project, 'use.ts'),
      [
        "import { Graft, GraftApiError, type FineTune, type GraftWorker, type Page } from '@graft/client';",
        'const graft = new Graft({ baseUrl: process.argv[2] });',
        'const workers: Page<GraftWorker> = await graft.workers.list();',
        'const job: FineTune | undefined = (await graft.fineTunes.list({ limit: 1 })).data[0];',
        'let code = "";',
        "try { await graft.datasets.retrieve('ds_missing'); } catch (e) { if (e instanceof GraftApiError) code = e.code; }",
        'console.log(JSON.stringify({ workers: workers.data.length, hasMore: workers.hasMore, job: job?.id ?? null, code }));',
        'declare const process: { argv: string[] };',
      ].join('\n'),
    );
    await run(process.execPath, [TSC, '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2023,dom', 'use.ts'], project);
    const out = JSON.parse((await run(process.execPath, ['use.js', api.url], project)).stdout);
    assert.deepEqual(out, { workers: 0, hasMore: false, job: null, code: 'dataset_not_found' });

    // The command line from the package: built JavaScript, no tsx.
    const jobs = await run(join(project, 'node_modules', '.bin', 'graft'), ['jobs', '--json'], project, { GRAFT_URL: api.url });
    assert.deepEqual(JSON.parse(jobs.stdout).data, []);
  });
});

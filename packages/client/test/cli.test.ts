/**
 * The `graft` command, run as its own process against a real API and worker: a folder of images
 * uploaded (zipped by the CLI), a job tuned and followed to its end (per-epoch table, final metrics
 * and confusion matrix), listed, downloaded and unpacked, used to predict; a cancelled and a failed
 * job; `--json` output; the exit codes of each outcome.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { unzip } from '../src/cli/zip.ts';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { startApi, startWorker, type WorkerProcess } from '../../../test/helpers/processes.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/graft.mjs', import.meta.url));

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;
let dir: string;
let digits: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function graft(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, GRAFT_URL: api.url, ...extraEnv }, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
const ok = (r: Run) => assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

before(async () => {
  env = await createTestEnv('cli');
  api = await startApi(env);
  worker = await startWorker(env);
  dir = await mkdtemp(join(tmpdir(), 'graft-cli-'));
  // The sample as a folder of class folders, plus a hidden file the CLI leaves out.
  digits = join(dir, 'digits');
  for (const [name, data] of unzip(await readFile(SAMPLE))) {
    await mkdir(dirname(join(digits, name)), { recursive: true });
    await writeFile(join(digits, name), data);
  }
  await writeFile(join(digits, '.DS_Store'), 'junk');
});
after(async () => {
  await worker?.stop();
  await api?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the graft command line', () => {
  let datasetId: string;
  let jobId: string;

  test('datasets upload zips a folder itself', async () => {
    const r = await graft(['datasets', 'upload', digits, '--json']);
    ok(r);
    const ds = JSON.parse(r.stdout);
    assert.equal(ds.task, 'image-classification');
    assert.equal(ds.imageCount, 300);
    assert.equal(ds.skippedCount, 0, 'hidden files are not sent');
    assert.equal(ds.name, 'digits.zip');
    assert.deepEqual(ds.classes.map((c: { name: string }) => c.name), ['eight', 'five', 'nine', 'seven', 'six']);
    datasetId = ds.id;
    assert.match(r.stderr, /300 files/);

    const text = await graft(['datasets', 'get', datasetId]);
    ok(text);
    assert.match(text.stdout, /300 images in 5 classes/);
  });

  test('tune --follow prints a row per epoch, the final metrics and the confusion matrix', async () => {
    const r = await graft(['tune', '--base', 'bm_mnist_cnn', '--dataset', datasetId, '--epochs', '3', '--batch-size', '16', '--learning-rate', '0.003', '--seed', '5', '--no-early-stopping', '--follow']);
    ok(r);
    jobId = /^(ft_\w+) queued/.exec(r.stdout)?.[1] ?? '';
    assert.ok(jobId, r.stdout);
    const rows = r.stdout.split('\n').filter((l) => /^\d+\s+head\s/.test(l));
    assert.deepEqual(rows.map((l) => Number(l.split(/\s+/)[0])), [1, 2, 3], r.stdout);
    assert.match(r.stdout, /epoch\s+phase\s+loss\s+accuracy\s+val loss\s+val acc\s+time/);
    assert.match(r.stdout, /succeeded/);
    assert.match(r.stdout, /confusion matrix \(rows: true class, columns: predicted\)/);

    const job = JSON.parse((await graft(['job', jobId, '--json'])).stdout);
    assert.equal(job.status, 'succeeded');
    assert.ok(r.stdout.includes(`validation: accuracy ${(job.result.valAccuracy * 100).toFixed(1)}%`), r.stdout);
    // The confusion matrix as printed is the job's.
    for (const [i, row] of job.result.confusionMatrix.entries()) {
      assert.ok(r.stdout.split('\n').some((l: string) => l.trim().split(/\s+/).join(' ') === [job.result.classes[i], ...row].join(' ')), `row ${i}`);
    }

    const listed = await graft(['jobs', '--json']);
    ok(listed);
    assert.ok(JSON.parse(listed.stdout).data.some((j: { id: string }) => j.id === jobId));
    const table = await graft(['jobs', '--status', 'succeeded']);
    ok(table);
    assert.match(table.stdout, new RegExp(`${jobId}\\s+succeeded`));
  });

  test('download unpacks the model; -o x.zip keeps the zip', async () => {
    const out = join(dir, 'model');
    const r = await graft(['download', jobId, '-o', out, '--json']);
    ok(r);
    const answer = JSON.parse(r.stdout);
    for (const f of ['model.json', 'weights.bin', 'labels.json', 'preprocessing.json', 'training.json', 'MODEL_CARD.md', 'card.json']) {
      assert.ok(answer.files.includes(f), f);
      assert.ok(existsSync(join(out, f)), f);
    }
    const job = JSON.parse((await graft(['job', jobId, '--json'])).stdout);
    const zip = join(dir, 'm.zip');
    ok(await graft(['download', jobId, '-o', zip]));
    assert.equal((await stat(zip)).size, job.model.bytes);
  });

  test('predict answers each image in order', async () => {
    const images = [join(digits, 'five', (await firstFile('five'))), join(digits, 'six', await firstFile('six'))];
    const r = await graft(['predict', jobId, ...images, '--top-k', '2', '--json']);
    ok(r);
    const answer = JSON.parse(r.stdout);
    assert.deepEqual(answer.inputs, images);
    assert.equal(answer.data.length, 2);
    assert.equal(answer.data[0].topK.length, 2);
    const text = await graft(['predict', jobId, ...images]);
    ok(text);
    assert.match(text.stdout, /input\s+label\s+probability\s+top-k/);
  });

  test('exit codes: usage 2, refused 3, unreachable 4, job failed 5, job cancelled 6', async () => {
    const usage = await graft(['tune', '--dataset', datasetId]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /missing --base/);
    assert.equal((await graft(['frobnicate'])).code, 2);
    assert.equal((await graft(['jobs', '--bogus'])).code, 2);

    const refused = await graft(['tune', '--base', 'bm_nope', '--dataset', datasetId, '--json']);
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /404 base_model_not_found, baseModel/);
    assert.equal(JSON.parse(refused.stdout).error.code, 'base_model_not_found');

    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const unreachable = await graft(['jobs'], { GRAFT_URL: `http://127.0.0.1:${port}` });
    assert.equal(unreachable.code, 4);
    assert.match(unreachable.stderr, /cannot reach the API/);

    const long = JSON.parse((await graft(['tune', '--base', 'bm_mnist_cnn', '--dataset', datasetId, '--epochs', '500', '--batch-size', '2', '--json'])).stdout);
    const cancel = await graft(['cancel', long.id]);
    ok(cancel);
    const followed = await graft(['follow', long.id, '--json']);
    assert.equal(followed.code, 6, followed.stderr);
    assert.equal(JSON.parse(followed.stdout).status, 'cancelled');

    // A job whose dataset file has gone fails: exit 5 with the reason on stderr... and in the summary.
    const upload = JSON.parse((await graft(['datasets', 'upload', SAMPLE, '--json'])).stdout);
    await rm(join(env.STORAGE_DIR, 'datasets', `${upload.id}.zip`));
    const failed = await graft(['tune', '--base', 'bm_mnist_cnn', '--dataset', upload.id, '--epochs', '1', '--follow']);
    assert.equal(failed.code, 5, failed.stdout + failed.stderr);
    assert.match(failed.stdout, /error dataset_missing \(dataset\)/);
  });
});

async function firstFile(cls: string): Promise<string> {
  const { readdir } = await import('node:fs/promises');
  return (await readdir(join(digits, cls))).sort()[0]!;
}

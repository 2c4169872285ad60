/**
 * The dashboard against an API that wants keys (AUTH=keys), in a real browser: the first 401 asks
 * for a key; a wrong one is refused and asked for again; the right one is kept and every call carries
 * it — lists, an upload with its progress bar, and a job's live event stream (read with fetch, so the
 * header goes along) and the download of the finished model. Another tenant's objects never show.
 */
import assert from 'node:assert/strict';
import { openAsBlob, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Graft } from '@graft/client';
import { tenants } from '@graft/db';
import type { Page } from 'playwright-core';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { startApi, startWorker, type WorkerProcess } from '../../../test/helpers/processes.ts';
import { launchBrowser } from './browser.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;
let graftMine: Graft;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let page: Page;
let key: string;
let othersJob: string;

before(async () => {
  env = await createTestEnv('dashkeys');
  api = await startApi(env, { AUTH: 'keys', AUTH_CACHE_MS: '0' });
  const mine = await tenants.createTenant(api.app.db, 'mine');
  const other = await tenants.createTenant(api.app.db, 'other');
  key = (await tenants.createApiKey(api.app.db, mine.id)).key;
  graftMine = new Graft({ baseUrl: api.url, apiKey: key });
  // Another tenant's dataset and (queued: no worker runs) job.
  const graft = new Graft({ baseUrl: api.url, apiKey: (await tenants.createApiKey(api.app.db, other.id)).key });
  const ds = await graft.datasets.upload({ task: 'image-classification', file: await openAsBlob(SAMPLE), name: 'theirs' });
  othersJob = (await graft.fineTunes.create({ baseModel: 'bm_mnist_cnn', dataset: ds.id, hyperparameters: { epochs: 1 } })).id;
  worker = await startWorker(env);
  browser = await launchBrowser();
  page = await browser.context.newPage();
});
after(async () => {
  await browser?.close();
  await worker?.stop();
  await api?.close();
});

test('asks for a key on the first 401, refuses a wrong one, then sends the right one on every call', async () => {
  await page.goto(`${api.url}/`);
  await page.getByRole('heading', { name: 'API key' }).waitFor({ timeout: 30_000 });
  await page.getByLabel('Key').fill('gk_live_' + 'x'.repeat(43));
  await page.getByRole('button', { name: 'Use this key' }).click();
  await page.getByRole('alert').filter({ hasText: /did not accept/ }).waitFor();

  await page.getByLabel('Key').fill(key);
  await page.getByRole('button', { name: 'Use this key' }).click();
  await page.getByRole('heading', { name: 'Fine-tunes' }).waitFor();
  await page.getByText('No fine-tunes yet').waitFor(); // the other tenant's job is not listed
  assert.equal(await page.evaluate("localStorage.getItem('graft.apiKey')"), key);

  // An upload (XMLHttpRequest with its progress) carries the key too.
  await page.goto(`${api.url}/datasets`);
  await page.getByLabel('Task').selectOption('image-classification');
  await page.getByLabel('File').setInputFiles(SAMPLE);
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.getByRole('heading', { name: /digits-5-9/ }).waitFor({ timeout: 60_000 });
  assert.equal(await page.getByText('theirs').count(), 0);

  // A job of ours: its page follows the event stream with the key ("Job queued" arrives through it).
  await page.getByRole('link', { name: 'Fine-tune on this dataset' }).click();
  await page.getByLabel('Base model').selectOption('bm_mnist_cnn');
  await page.getByLabel('Epochs (head)').fill('2');
  await page.getByRole('button', { name: 'Start fine-tune' }).click();
  await page.getByRole('list', { name: 'Events' }).getByText('Job queued').waitFor({ timeout: 30_000 });
  assert.match(page.url(), /\/jobs\/ft_/);
  const jobId = page.url().split('/').at(-1)!;

  // Its model, downloaded from the page once it has finished: the link fetches with the key.
  await page.locator('h1 .badge', { hasText: /succeeded|failed/ }).waitFor({ timeout: 180_000 });
  assert.equal((await page.locator('h1 .badge').innerText()).trim(), 'succeeded');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: /Download model/ }).click()]);
  const saved = join(tmpdir(), `graft-dashkeys-${jobId}.zip`);
  await download.saveAs(saved);
  assert.equal(download.suggestedFilename(), `${jobId}.zip`);
  const expected = Buffer.from(await (await graftMine.fineTunes.download(jobId)).bytes());
  assert.ok(readFileSync(saved).equals(expected), 'the file the page saved is the model the API serves');

  // The other tenant's job is "not found" here, as it is to the API.
  await page.goto(`${api.url}/jobs/${othersJob}`);
  await page.getByText(/No fine-tune job/).waitFor();
  assert.equal(await page.getByRole('heading', { name: 'API key' }).count(), 0);
});

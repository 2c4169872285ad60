/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core) against the real API,
 * a worker process, Postgres and Redis: a person uploads the sample dataset, starts a fine-tune,
 * watches its curves gain points while it runs, sees it finish, reads its confusion matrix,
 * downloads the model, tries an image, and cancels another job. Assertions are on what is on the
 * screen: text, table rows under the charts, heatmap cells.
 * `DASHBOARD_SCREENSHOTS=<dir>` also saves a screenshot of each page there (the README's).
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Graft } from '@graft/client';
import { readArchiveImages } from '@graft/engine';
import type { Page } from 'playwright-core';
import { createTestEnv, type TestEnv } from '../../../test/helpers/env.ts';
import { startApi, startWorker, waitFor, type WorkerProcess } from '../../../test/helpers/processes.ts';
import { launchBrowser } from './browser.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
const SHOTS = process.env.DASHBOARD_SCREENSHOTS;

let env: TestEnv;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: WorkerProcess;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let page: Page;
let graft: Graft;

before(async () => {
  env = await createTestEnv('dashboard');
  api = await startApi(env);
  worker = await startWorker(env);
  graft = new Graft({ baseUrl: api.url });
  browser = await launchBrowser();
  page = await browser.context.newPage();
});
after(async () => {
  await browser?.close();
  await worker?.stop();
  await api?.close();
});

async function shot(name: string) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** What sticks out on the right of the window (to say which element breaks the phone layout). */
const WIDEST = `[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap')).slice(0, 5).map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')`;

const OBSERVE = `window.__seen = [];
new MutationObserver(() => {
  const badge = document.querySelector('h1 .badge');
  const rows = document.querySelector('figure[aria-label="Loss"] table.data tbody');
  if (!badge || !rows) return;
  const now = badge.textContent + '|' + rows.rows.length;
  if (window.__seen.at(-1) !== now) window.__seen.push(now);
}).observe(document.body, { subtree: true, childList: true, characterData: true });`;

/** Rows of the numbers table under a chart (one per epoch plotted). */
const plotted = (chart: string) => page.getByRole('figure', { name: chart }).locator('table.data tbody tr').count();

test('the API serves the dashboard at / and its page paths, and never for /v1 or the docs', async () => {
  for (const path of ['/', '/datasets', '/jobs/ft_x', '/new', '/compare', '/try']) {
    const res = await fetch(api.url + path, { headers: { accept: 'text/html' } });
    assert.equal(res.status, 200, path);
    assert.match(await res.text(), /<script type="module"/, path);
  }
  const unknown = await fetch(`${api.url}/v1/nothing`, { headers: { accept: 'text/html' } });
  assert.equal(unknown.status, 404);
  assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'not_found');
  assert.equal((await fetch(`${api.url}/openapi.json`)).headers.get('content-type')?.split(';')[0], 'application/json');
  assert.equal((await fetch(`${api.url}/healthz`)).status, 200);
});

test('upload a dataset, start a job, watch it train, read its results, download and try the model', async (t) => {
  // Datasets: upload with a progress bar; the class balance chart and the samples appear.
  await page.goto(`${api.url}/datasets`);
  await page.getByLabel('Task').selectOption('image-classification');
  await page.getByLabel('File').setInputFiles(SAMPLE);
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.getByRole('heading', { name: /digits-5-9/ }).waitFor({ timeout: 30_000 });
  const bars = page.getByRole('list', { name: 'Examples per class' }).getByRole('listitem');
  assert.equal(await bars.count(), 5);
  assert.match(await bars.filter({ hasText: 'five' }).innerText(), /five\s+60 \(20 %\)/);
  await page.locator('.thumbs img').first().waitFor();
  assert.ok((await page.locator('.thumbs img').count()) >= 5, 'thumbnails of each class');
  await shot('datasets');

  // New fine-tune: defaults visible; a bad value comes back next to its field.
  await page.getByRole('link', { name: 'Fine-tune on this dataset' }).click();
  await page.getByLabel('Base model').selectOption('bm_mnist_cnn');
  assert.equal(await page.getByLabel('Epochs (head)').getAttribute('placeholder'), '10');
  await page.getByLabel('Epochs (head)').fill('5000');
  await page.getByRole('button', { name: 'Start fine-tune' }).click();
  await page.locator('#f-hyperparameters-epochs-error').filter({ hasText: /epochs/ }).waitFor();
  await shot('new-fine-tune');
  // Two phases (head, then the top layer unfrozen) and the scratch baseline: 3 + 17 epochs in batches of 2.
  // Both phases train on activations computed once, so the epochs can all land within a second. The
  // page must be watching before training starts to see them come one after another: the worker
  // leaves first, and a new one starts once the page's live feed has replayed the job's first events.
  await page.getByLabel('Epochs (head)').fill('3');
  await page.getByLabel('Batch size').fill('2');
  await page.getByLabel('Unfrozen top layers').fill('1');
  await page.getByLabel('Baseline').selectOption('scratch');
  await page.getByLabel('Early stopping').uncheck();
  await page.getByText('Advanced').click();
  await page.getByLabel('Fine-tune epochs').fill('17');
  await page.getByLabel('Seed').fill('7');
  // The page records what it shows at every change (status and rows under the loss chart), so that
  // the growth is seen however slowly this test's own polling runs on a loaded machine.
  await page.evaluate(OBSERVE);
  await worker.stop();
  await page.getByRole('button', { name: 'Start fine-tune' }).click();
  await page.waitForURL(/\/jobs\/ft_/);
  const jobId = page.url().split('/').at(-1)!;
  await page.locator('h1 .badge', { hasText: 'queued' }).waitFor();
  await page.locator('.events li').first().waitFor(); // from the feed's replay: the page is live
  worker = await startWorker(env);

  // The job page: the curves gain points while the job runs (from the live feed).
  await page.locator('h1 .badge', { hasText: /succeeded|failed/ }).waitFor({ timeout: 240_000 });
  assert.equal((await page.locator('h1 .badge').innerText()).trim(), 'succeeded');
  const seen = (await page.evaluate('window.__seen')) as string[];
  const running = seen.filter((s) => s.startsWith('running|')).map((s) => Number(s.split('|')[1])).filter((n) => n > 0);
  t.diagnostic(`what the page showed: ${seen.join(' ')}`);
  assert.ok(running.length >= 2 && running.at(-1)! > running[0]!, `the curve grew while the job ran: ${seen.join(' ')}`);
  await page.getByRole('figure', { name: 'Accuracy' }).locator('table.data tbody tr').nth(19).waitFor({ state: 'attached' });
  assert.equal(await plotted('Accuracy'), 20);
  const caption = await page.getByRole('figure', { name: 'Loss' }).locator('.chart-caption').innerText();
  assert.match(caption, /^20 epochs plotted \(train: 20 · validation: 20 · scratch train: \d+ · scratch validation: \d+\); phases: head from epoch 1, fine-tune from epoch 4$/);
  await page.getByRole('heading', { name: 'Transfer vs. from scratch' }).waitFor();
  assert.ok((await page.locator('.events li').count()) > 3, 'events listed');
  await page.getByRole('figure', { name: 'Loss' }).locator('canvas').first().waitFor();

  // Its confusion matrix: 5 × 5 cells whose counts add up to the validation images.
  const job = await graft.fineTunes.retrieve(jobId);
  const cells = page.getByRole('table', { name: /Confusion matrix/ }).locator('td.cell');
  assert.equal(await cells.count(), 25);
  const counts = (await cells.allInnerTexts()).map(Number);
  assert.equal(counts.reduce((a, b) => a + b, 0), job.result!.validationImages);
  assert.deepEqual(counts, job.result!.confusionMatrix.flat());
  assert.match(await page.getByRole('table', { name: /Confusion matrix/ }).locator('td.cell').first().getAttribute('style') ?? '', /background: rgb\(/);
  assert.equal(await page.locator('table.per-class tbody tr').count(), 5);
  await page.getByRole('heading', { name: 'Model card' }).waitFor();
  await shot('job');

  // Download the model.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: /Download model/ }).click()]);
  const saved = join(tmpdir(), `graft-dashboard-${jobId}.zip`);
  await download.saveAs(saved);
  assert.equal(download.suggestedFilename(), `${jobId}.zip`);
  assert.equal(readFileSync(saved).subarray(0, 2).toString('latin1'), 'PK');

  // Try the model with an image of a seven.
  const seven = join(tmpdir(), `graft-dashboard-seven-${process.pid}.png`);
  for await (const img of readArchiveImages(SAMPLE, new Set(['seven/7_0003.png']))) writeFileSync(seven, img.data);
  await page.getByRole('link', { name: 'Try the model' }).click();
  await page.waitForURL(/\/try\?job=/);
  await page.locator('#try-file').setInputFiles(seven);
  const top = page.getByRole('list', { name: 'Top answers' }).getByRole('listitem');
  await top.first().waitFor({ timeout: 60_000 });
  assert.equal(await top.count(), 3);
  const label = (await page.locator('.top-label').innerText()).trim();
  assert.ok(job.result!.classes.includes(label), label);
  assert.match(await page.locator('.answered-by').innerText(), /^Answered by ONNX Runtime in \d+ ms \(loading the model \d+ ms, waiting \d+ ms\)\.$/);
  await shot('try');

  // The jobs list shows it, finished, with its best validation accuracy.
  await page.getByRole('link', { name: 'Jobs', exact: true }).click();
  const row = page.locator(`tr[data-job="${jobId}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /succeeded/);
  assert.match(await row.innerText(), new RegExp(`${(job.result!.valAccuracy! * 100).toFixed(1)} %`));
  await shot('jobs');
});

test('cancel another job from its page, with the keyboard', async () => {
  const ds = (await graft.datasets.list()).data[0]!;
  const long = await graft.fineTunes.create({ baseModel: 'bm_mnist_cnn', dataset: ds.id, earlyStopping: false, hyperparameters: { epochs: 500, batchSize: 2 } });
  await page.goto(`${api.url}/jobs/${long.id}`);
  await page.getByRole('button', { name: 'Cancel job' }).waitFor();
  // Tab through the page until the button has the focus, then press Enter.
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press('Tab');
    if ((await page.evaluate('document.activeElement && document.activeElement.textContent')) === 'Cancel job') break;
  }
  assert.equal(await page.evaluate('document.activeElement.textContent'), 'Cancel job');
  await page.keyboard.press('Enter');
  await page.locator('h1 .badge', { hasText: 'cancelled' }).waitFor({ timeout: 60_000 });
  assert.equal((await graft.fineTunes.retrieve(long.id)).status, 'cancelled');
});

test('compare two jobs, and every page is readable at phone width', async () => {
  const ids = (await graft.fineTunes.list()).data.map((j) => j.id);
  await page.goto(`${api.url}/compare?ids=${ids.join(',')}`);
  await page.getByRole('heading', { name: 'Final figures' }).waitFor();
  assert.equal(await page.locator('table.compare thead th').count(), ids.length + 1);
  await shot('compare');
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ['/', `/jobs/${ids.at(-1)}`, '/datasets', '/new', '/compare', '/try']) {
    await page.goto(api.url + path);
    await page.locator('main h1').first().waitFor();
    const overflow = await page.evaluate('document.documentElement.scrollWidth - window.innerWidth');
    const wide = Number(overflow) > 1 ? await page.evaluate(WIDEST) : '';
    assert.ok(Number(overflow) <= 1, `${path} scrolls sideways at 390 px by ${overflow} px: ${wide}`);
  }
  await page.goto(`${api.url}/jobs/${ids.at(-1)}`);
  await page.getByRole('figure', { name: 'Loss' }).locator('canvas').first().waitFor();
  await shot('job-phone');
});

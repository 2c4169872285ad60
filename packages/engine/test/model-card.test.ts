/**
 * The model card in the final bundle: a real fine-tune on the bundled sample (with an imbalanced
 * class, the scratch baseline and a test set), then `card.json` and `MODEL_CARD.md` checked against
 * what the job reported. Checkpoints carry no card (their metrics are not final).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fineTune, initBackend, loadPredictor, type ModelCard } from '../src/index.ts';
import { wilson95 } from '../src/export/model-card.ts';
import { bundleFiles, mnistBase, specFor } from './train-helpers.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
let dir: string;
before(async () => {
  await initBackend();
  dir = await mkdtemp(join(tmpdir(), 'graft-card-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test('wilson95 matches the textbook interval', () => {
  const [lo, hi] = wilson95(0.9, 100);
  assert.ok(Math.abs(lo - 0.8256) < 1e-3 && Math.abs(hi - 0.9448) < 1e-3, `${lo} ${hi}`);
  assert.deepEqual(wilson95(1, 0), [0, 1]);
});

test('the final bundle carries card.json and MODEL_CARD.md built from what the job measured', async () => {
  const warnings: string[] = [];
  const out = await fineTune({
    base: mnistBase(),
    datasetPath: SAMPLE,
    testDatasetPath: SAMPLE,
    spec: specFor({ dataset: 'ds_card', testDataset: 'ds_card_test', baseline: 'scratch', earlyStopping: false, hyperparameters: { epochs: 3, batchSize: 32, learningRate: 0.003 } }),
    outDir: dir,
    cacheDir: null,
    hooks: { onEvent: (e) => void (e.level === 'warning' && warnings.push(e.type)) },
  });
  const files = await bundleFiles(out.modelZipPath);
  assert.ok(files.has('MODEL_CARD.md') && files.has('card.json'));
  for (const c of out.checkpoints) assert.equal((await bundleFiles(c.zipPath)).has('card.json'), false, 'checkpoints have no card');

  const card = JSON.parse(files.get('card.json')!.toString('utf8')) as ModelCard;
  const r = out.result;
  assert.equal(card.schemaVersion, 1);
  assert.deepEqual(card.model.classes, r.classes);
  assert.deepEqual(card.model.files, ['model.json', 'weights.bin', 'labels.json', 'preprocessing.json', 'training.json', 'MODEL_CARD.md', 'card.json']);
  for (const f of card.model.files) assert.ok(files.has(f), f);
  assert.equal(card.base.id, 'bm_mnist_cnn');
  assert.match(card.base.pretrainedOn, /0.4/);
  assert.ok(card.base.license.length > 0);

  const sha = createHash('sha256').update(await readFile(SAMPLE)).digest('hex');
  assert.equal(card.dataset.sha256, sha);
  assert.equal(card.dataset.id, 'ds_card');
  assert.equal(card.dataset.examples, 300);
  assert.equal(card.dataset.classes.reduce((s, c) => s + c.train + c.validation, 0), 300);
  assert.equal(card.dataset.classes.reduce((s, c) => s + c.validation, 0), r.validationImages);
  assert.equal(card.dataset.test?.sha256, sha);

  assert.equal(card.training.seed, 7);
  assert.equal(card.training.hyperparameters.epochs, 3);
  assert.equal(card.training.epochsRun, r.epochsRun);
  assert.deepEqual(card.metrics.validation, r.validation);
  assert.deepEqual(card.metrics.validation!.confusionMatrix, r.confusionMatrix);
  assert.deepEqual(card.metrics.test, r.test);
  assert.equal(card.metrics.baseline?.transferGain, r.baseline?.transferGain);
  const [lo, hi] = card.metrics.validationAccuracyInterval95!;
  assert.ok(lo < r.valAccuracy! && r.valAccuracy! < hi);
  assert.deepEqual(card.warnings.map((w) => w.type), warnings);

  assert.deepEqual(card.limitations.map((l) => l.kind), ['task_mismatch', 'dataset_bias', 'overfitting']);
  assert.match(card.limitations[0]!.detail, /from scratch reached/);
  assert.match(card.intendedUse.primary, /5 classes: eight, five, nine, seven, six/);

  const md = files.get('MODEL_CARD.md')!.toString('utf8');
  for (const heading of ['## Base model', '## Data', '## Training', '## Metrics', '## Warnings raised by the job', '## Intended use', '## Limits of transfer learning that apply']) {
    assert.ok(md.includes(heading), heading);
  }
  assert.ok(md.includes(sha));
  assert.ok(md.includes('Confusion matrix'));
  // One table row per class in the confusion matrix, with the job's counts.
  for (const [i, row] of r.confusionMatrix.entries()) assert.ok(md.includes(`| **${r.classes[i]}** | ${row.join(' | ')} |`), `row ${i}`);

  // The card does not get in the loader's way.
  const predictor = await loadPredictor(out.modelZipPath);
  assert.deepEqual(predictor.labels, r.classes);
  predictor.dispose();
});

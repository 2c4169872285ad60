/** The phase plan: a pure function of the spec, the encoder's facts and the validation count (no TensorFlow, no model). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeFineTune, type CreateFineTuneBody } from '@graft/contracts';
import { resolveCatalogBase } from '../src/bases/catalog.ts';
import { GRAPH_FROZEN_MESSAGE } from '../src/bases/graph-base.ts';
import { TrainingError } from '../src/errors.ts';
import { planPhases, type PlanInput } from '../src/pipeline/stages/plan-phases.ts';

const descriptor = resolveCatalogBase('bm_mnist_cnn')!.descriptor;
const spec = (body: Partial<CreateFineTuneBody> = {}) => normalizeFineTune({ baseModel: 'bm_mnist_cnn', dataset: 'ds_x', ...body } as CreateFineTuneBody, descriptor, 7);
const images = { augments: true, units: { one: 'image', many: 'images', countField: 'images', inputIdentity: 'preprocessing' } };
const layers = (names: string[] = ['conv1', 'conv2'], clampedFrom: number | null = null): PlanInput['encoder'] => ({ trainable: true, frozenOnly: null, selected: { names, clampedFrom } });
const graph: PlanInput['encoder'] = { trainable: false, frozenOnly: { code: 'graph_model_frozen', message: GRAPH_FROZEN_MESSAGE }, selected: { names: [], clampedFrom: null } };
const plan = (s = spec(), encoder = layers(), validationExamples = 60, task = images) => planPhases({ spec: s, encoder, task, validationExamples });
const isCode = (code: string, pattern?: RegExp) => (err: unknown) => err instanceof TrainingError && err.code === code && (!pattern || pattern.test(err.message));

test('defaults: the head alone on cached features, early stopping on, a checkpoint per epoch, nothing to announce', () => {
  const p = plan();
  assert.deepEqual(p.head, { epochs: 10, learningRate: 0.001, onFeatures: true });
  assert.equal(p.fineTune, null);
  assert.equal(p.baseline, null);
  assert.equal(p.augmentation, null);
  assert.equal(p.needsInputs, false, 'no phase reads raw inputs');
  assert.equal(p.features, 'all');
  assert.deepEqual(p.earlyStopping, { patience: 3, minDelta: 0, restoreBestWeights: true });
  assert.equal(p.checkpointEvery, 'epoch');
  assert.deepEqual(p.notices, []);
  assert.deepEqual(p.trainingNotices, []);
});

test('two phases: the selected layers at the fine-tune rate; raw inputs needed; the baseline trains for both phases', () => {
  const p = plan(spec({ trainableLayers: 2, hyperparameters: { epochs: 4, fineTuneEpochs: 3, learningRate: 0.01 }, baseline: 'scratch', checkpointEvery: 5 }));
  assert.deepEqual(p.fineTune, { epochs: 3, learningRate: 0.001, layers: ['conv1', 'conv2'] });
  assert.deepEqual(p.baseline, { epochs: 7, learningRate: 0.01 });
  assert.equal(p.needsInputs, true);
  assert.equal(p.head.onFeatures, true, 'without augmentation the head still trains on features');
  assert.equal(p.checkpointEvery, 5);
  // The baseline alone needs raw inputs too, and trains for the head's epochs when there is no phase 2.
  const b = plan(spec({ baseline: 'scratch', hyperparameters: { epochs: 4 } }));
  assert.deepEqual(b.baseline, { epochs: 4, learningRate: 0.001 });
  assert.equal(b.needsInputs, true);
});

test('phase 2 skipped, with a notice: trainableLayers "none" with fineTuneEpochs, or a selection without weights', () => {
  const none = plan(spec({ hyperparameters: { fineTuneEpochs: 5 } }));
  assert.equal(none.fineTune, null);
  assert.deepEqual(none.notices.map((n) => [n.level, n.type]), [['info', 'fine_tune_skipped']]);
  assert.match(none.notices[0]!.message, /fineTuneEpochs is 5 but trainableLayers is "none"/);
  const empty = plan(spec({ trainableLayers: { from: 'pool2' } }), layers([]));
  assert.equal(empty.fineTune, null);
  assert.equal(empty.needsInputs, false);
  assert.deepEqual(empty.notices.map((n) => [n.level, n.type]), [['warning', 'fine_tune_skipped']]);
  // k larger than the layers with weights: all of them, and a notice first.
  const clamped = plan(spec({ trainableLayers: 9 }), layers(['conv1', 'conv2'], 9));
  assert.deepEqual(clamped.fineTune?.layers, ['conv1', 'conv2']);
  assert.deepEqual(clamped.notices.map((n) => n.type), ['trainable_layers']);
  assert.match(clamped.notices[0]!.message, /trainableLayers 9 is more than the 2 layers/);
});

test('augmentation: the head runs the encoder per batch; features only for validation (none without validation examples)', () => {
  const aug = spec({ augmentation: { rotation: 10 } });
  const p = plan(aug);
  assert.equal(p.head.onFeatures, false);
  assert.equal(p.features, 'validation');
  assert.equal(p.needsInputs, true);
  assert.deepEqual(p.augmentation, { flip: 'none', rotation: 10, zoom: 0, brightness: 0, contrast: 0 });
  assert.equal(plan(aug, layers(), 0).features, null);
  // An augmentation that changes nothing is no augmentation.
  assert.equal(plan(spec({ augmentation: { rotation: 0 } })).augmentation, null);
  // A task that cannot augment refuses it.
  const text = { augments: false, units: { one: 'text', many: 'texts', countField: 'rows', inputIdentity: 'tokenizer' } };
  assert.throws(() => plan(aug, layers(), 60, text), isCode('unsupported_option', /does not apply to texts/));
  assert.doesNotThrow(() => plan(spec(), layers(), 60, text));
});

test('early stopping: off without validation examples (said before training), or when the spec turns it off', () => {
  const p = plan(spec(), layers(), 0);
  assert.equal(p.earlyStopping, null);
  assert.deepEqual(p.trainingNotices.map((n) => [n.type, n.message]), [['early_stopping', 'No validation images: early stopping is off.']]);
  const off = plan(spec({ earlyStopping: false }), layers(), 0);
  assert.equal(off.earlyStopping, null);
  assert.deepEqual(off.trainingNotices, []);
});

test('a frozen-only encoder (a graph base) refuses phase 2 and the scratch baseline, saying why', () => {
  assert.doesNotThrow(() => plan(spec({ trainableLayers: 'none', baseline: 'none' }), graph));
  assert.throws(() => plan(spec({ trainableLayers: 3 }), graph), isCode('graph_model_frozen', /frozen feature extractor: trainableLayers must be "none".*trainableLayers is 3/));
  assert.throws(() => plan(spec({ trainableLayers: { from: 'x' }, baseline: 'scratch' }), graph), isCode('graph_model_frozen', /trainableLayers is \{"from":"x"\} and baseline is "scratch"/));
  assert.throws(() => plan(spec({ baseline: 'scratch' }), graph), isCode('graph_model_frozen', /baseline cannot be "scratch"/));
  const onnx: PlanInput['encoder'] = { trainable: false, frozenOnly: { code: 'encoder_frozen', message: 'An ONNX encoder is frozen.' }, selected: { names: [], clampedFrom: null } };
  assert.throws(() => plan(spec({ trainableLayers: 1 }), onnx), isCode('encoder_frozen', /^An ONNX encoder is frozen\. Here trainableLayers is 1\.$/));
});

test('the plan is a pure function: same input, same plan; the spec is not changed', () => {
  const s = spec({ trainableLayers: 1, augmentation: { flip: 'horizontal' }, baseline: 'scratch' });
  const before = JSON.stringify(s);
  assert.deepEqual(plan(s), plan(s));
  assert.equal(JSON.stringify(s), before);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { accuracyOf, confusionMatrix, perClassMetrics } from '../src/evaluate/metrics.ts';
import { isOverfitting } from '../src/train/callbacks.ts';
import type { EpochResult } from '../src/train/phase-runner.ts';

test('confusion matrix and per-class metrics', () => {
  const m = confusionMatrix([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 0, 1], 3);
  assert.deepEqual(m, [[2, 1, 0], [1, 1, 0], [0, 1, 0]]);
  const [a, b, c] = perClassMetrics(m, ['a', 'b', 'c']);
  assert.deepEqual(a, { name: 'a', support: 3, precision: 2 / 3, recall: 2 / 3, f1: 2 / 3 });
  assert.equal(b!.precision, 1 / 3);
  assert.equal(b!.recall, 1 / 2);
  assert.deepEqual(c, { name: 'c', support: 1, precision: 0, recall: 0, f1: 0 });
  assert.equal(accuracyOf(m), 3 / 6);
  assert.equal(accuracyOf(confusionMatrix([], [], 2)), null);
});

test('overfitting: validation loss up 3 epochs in a row while training loss falls', () => {
  const h = (pairs: [number, number | null][]): EpochResult[] =>
    pairs.map(([loss, valLoss], i) => ({ epoch: i + 1, phase: 'head', loss, accuracy: 0, valLoss, valAccuracy: null, durationMs: 0 }));
  assert.equal(isOverfitting(h([[1, 0.9], [0.8, 0.7], [0.6, 0.6]])), false, 'too few epochs');
  assert.equal(isOverfitting(h([[1, 0.5], [0.8, 0.6], [0.6, 0.7], [0.5, 0.8]])), true);
  assert.equal(isOverfitting(h([[1, 0.5], [0.8, 0.6], [0.6, 0.55], [0.5, 0.8]])), false, 'a dip breaks the run');
  assert.equal(isOverfitting(h([[0.5, 0.5], [0.6, 0.6], [0.7, 0.7], [0.8, 0.8]])), false, 'training loss rising too: diverging, not overfitting');
  assert.equal(isOverfitting(h([[1, null], [0.8, null], [0.6, null], [0.5, null]])), false, 'no validation set');
});

/**
 * The one phase runner and its callbacks, with scripted steps (no model): call order, checkpoints
 * counted across phases, early stopping ending a phase and restoring weights, the overfitting
 * warning once per job, and the runner's errors.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/backend.ts';
import { TrainingCancelled, TrainingError } from '../src/errors.ts';
import { Checkpoints, EarlyStopping, History, OverfittingWarning, ProgressHooks, TrainingCallback, type CheckpointRequest } from '../src/train/callbacks.ts';
import { runPhase, type BatchProgress, type EpochResult, type PhaseLoop } from '../src/train/phase-runner.ts';

before(async () => {
  await initBackend();
});

/** A phase over `nTrain` examples whose epoch e has validation loss `valLoss[e - 1]` and training loss `loss[e - 1]`. */
function phase(o: Partial<PhaseLoop<null>> & { valLoss?: (number | null)[]; loss?: number[] }): PhaseLoop<null> {
  let epoch = 0;
  let batch = 0;
  const batches = Math.ceil((o.nTrain ?? 10) / (o.batchSize ?? 4));
  return {
    phase: 'head',
    epochs: 3,
    epochOffset: 0,
    laterEpochs: 0,
    nTrain: 10,
    batchSize: 4,
    learningRate: 0.1,
    random: () => 0.5,
    load: async () => null,
    step: async () => {
      if (batch++ % batches === 0) epoch++;
      return { loss: o.loss?.[epoch - 1] ?? 1, correct: 2 };
    },
    validate: async () => {
      const v = o.valLoss?.[epoch - 1];
      return v === undefined || v === null ? null : { loss: v, accuracy: 0.5 };
    },
    callbacks: [],
    ...o,
  };
}

class Recorder extends TrainingCallback {
  readonly calls: string[] = [];
  override onTrainBegin(): void { this.calls.push(`begin ${this.params.phase} ${this.params.totalEpochs}`); }
  override onBatchEnd(p: BatchProgress): void { this.calls.push(`batch ${p.epoch}.${p.batch}/${p.batches}`); }
  override onEpochEnd(m: EpochResult): void { this.calls.push(`epoch ${m.epoch} ${m.loss} ${m.valLoss}`); }
  override onTrainEnd(): void { this.calls.push('end'); }
}

test('callbacks are called in order at each batch, epoch and phase end; epochs are numbered over phases', async () => {
  const rec = new Recorder();
  const history = new History();
  const hooked: string[] = [];
  const hooks = new ProgressHooks({ onBatch: (p) => { hooked.push(`b${p.batch}`); }, onEpoch: (m) => { hooked.push(`e${m.epoch}`); } });
  const out = await runPhase(phase({ epochs: 2, epochOffset: 4, laterEpochs: 3, valLoss: [0.5, 0.4], callbacks: [rec, history, hooks] }));
  assert.deepEqual(rec.calls, ['begin head 9', 'batch 5.1/3', 'batch 5.2/3', 'batch 5.3/3', 'epoch 5 1 0.5', 'batch 6.1/3', 'batch 6.2/3', 'batch 6.3/3', 'epoch 6 1 0.4', 'end']);
  assert.deepEqual(hooked, ['b1', 'b2', 'b3', 'e5', 'b1', 'b2', 'b3', 'e6']);
  assert.deepEqual(history.epochs.map((e) => e.epoch), [5, 6]);
  assert.deepEqual(out.history, history.epochs);
  assert.equal(out.stoppedEarly, false);
  // Loss and accuracy per epoch: batch losses weighted by batch size, over the examples.
  assert.equal(out.history[0]!.accuracy, 6 / 10);
});

test('checkpoints: every epoch, or every N steps counted over phases with a validation first', async () => {
  const written: CheckpointRequest[] = [];
  const perEpoch = new Checkpoints('epoch', async (c) => { written.push(c); });
  await runPhase(phase({ epochs: 2, valLoss: [0.5, 0.6], callbacks: [perEpoch] }));
  assert.deepEqual(written.map((c) => `${c.phase}-e${c.epoch} ${c.valLoss}`), ['head-e1 0.5', 'head-e2 0.6']);
  written.length = 0;
  const everyFive = new Checkpoints(5, async (c) => { written.push(c); });
  await runPhase(phase({ epochs: 2, valLoss: [0.5, 0.6], callbacks: [everyFive] }));
  await runPhase(phase({ phase: 'fine-tune', epochs: 2, epochOffset: 2, valLoss: [0.3, 0.2], callbacks: [everyFive] }));
  // 3 batches per epoch, 12 steps over both phases: after steps 5 and 10.
  assert.deepEqual(written.map((c) => `${c.phase}-e${c.epoch}-b${c.batch}`), ['head-e2-b2', 'fine-tune-e4-b1']);
  assert.deepEqual(written.map((c) => c.valLoss), [0.6, 0.2], 'each validated by its own phase, at that point, before writing');
});

test('early stopping ends the phase after `patience` epochs without improvement, restores the best weights, and carries over', async () => {
  const v = tf.variable(tf.scalar(0));
  let epoch = 0;
  const es = new EarlyStopping({ patience: 2, minDelta: 0, restoreBestWeights: true }, [v]);
  const setWeights = new (class extends TrainingCallback {
    override onEpochEnd(m: EpochResult): void { v.assign(tf.scalar(m.epoch)); epoch = m.epoch; }
  })();
  const out = await runPhase(phase({ epochs: 10, valLoss: [0.9, 0.5, 0.6, 0.7, 0.4], callbacks: [setWeights, es] }));
  assert.equal(out.stoppedEarly, true);
  assert.equal(epoch, 4, 'stopped after epoch 4: two epochs without beating epoch 2');
  assert.equal(es.restoredEpoch, 2);
  assert.equal(v.dataSync()[0], 2, "epoch 2's weights are back");
  // A stop due on the last planned epoch is not "stopped early".
  const last = new EarlyStopping({ patience: 1, minDelta: 0, restoreBestWeights: false }, [v]);
  const out2 = await runPhase(phase({ epochs: 2, valLoss: [0.5, 0.6], callbacks: [last] }));
  assert.equal(out2.stoppedEarly, false);
  assert.equal(last.restoredEpoch, null, 'not restoring');
  // Carried from the head phase: phase 2 must beat its best, or ends back on it.
  v.assign(tf.scalar(42));
  const carried = new EarlyStopping({ patience: 3, minDelta: 0, restoreBestWeights: true }, [v], es.best);
  await runPhase(phase({ phase: 'fine-tune', epochs: 2, epochOffset: 4, valLoss: [0.8, 0.7], callbacks: [setWeights, carried] }));
  assert.equal(carried.restoredEpoch, 2);
  assert.equal(v.dataSync()[0], 42);
  // Without validation, nothing is monitored.
  const blind = new EarlyStopping({ patience: 1, minDelta: 0, restoreBestWeights: true }, [v]);
  const out3 = await runPhase(phase({ epochs: 3, callbacks: [blind] }));
  assert.equal(out3.history.length, 3);
  assert.equal(blind.restoredEpoch, null);
  for (const e of [es, last, carried, blind]) e.dispose();
  v.dispose();
});

test('the overfitting warning: validation loss up three epochs while training loss falls, once per job, per phase history', async () => {
  const warned: number[] = [];
  const overfitting = new OverfittingWarning(async (m) => { warned.push(m.epoch); });
  // Phase 1: rising validation loss only from epoch 3 on; its last three epochs are not enough alone in phase 2.
  await runPhase(phase({ epochs: 3, valLoss: [0.5, 0.4, 0.6], loss: [1, 0.9, 0.8], callbacks: [overfitting] }));
  await runPhase(phase({ phase: 'fine-tune', epochs: 3, epochOffset: 3, valLoss: [0.7, 0.8, 0.9], loss: [0.7, 0.6, 0.5], callbacks: [overfitting] }));
  assert.deepEqual(warned, [], 'each phase is judged on its own epochs');
  await runPhase(phase({ phase: 'fine-tune', epochs: 6, valLoss: [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], loss: [1, 0.9, 0.8, 0.7, 0.6, 0.5], callbacks: [overfitting] }));
  assert.deepEqual(warned, [4], 'warned at the fourth epoch, and only once');
});

test('errors: a non-finite loss is training_diverged, an abort stops before the next batch, a missing kernel is unsupported_on_backend', async () => {
  await assert.rejects(
    runPhase(phase({ loss: [Number.NaN] })),
    (err: unknown) => err instanceof TrainingError && err.code === 'training_diverged' && /phase head, epoch 1, batch 1; try a lower learning rate \(now 0.1\)/.test(err.message),
  );
  const controller = new AbortController();
  let steps = 0;
  const stop = new (class extends TrainingCallback {
    override onBatchEnd(p: BatchProgress): void { if (p.batch === 2) controller.abort(); }
  })();
  await assert.rejects(
    runPhase({ ...phase({ callbacks: [stop] }), signal: controller.signal, step: async () => { steps++; return { loss: 1, correct: 0 }; } }),
    TrainingCancelled,
  );
  assert.equal(steps, 2, 'no step after the abort');
  await assert.rejects(
    runPhase({ ...phase({}), step: async () => { throw new Error("Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'"); } }),
    (err: unknown) => err instanceof TrainingError && err.code === 'unsupported_on_backend' && err.message.includes('Conv2DBackpropFilter'),
  );
});

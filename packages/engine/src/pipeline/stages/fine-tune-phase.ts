/**
 * Stage 7, the fine-tune phase: the planned top layers of the encoder unfrozen, a new Adam at
 * `fineTuneLearningRate`, trained end to end on raw inputs. The encoder runs in inference mode
 * (`training: false`): every BatchNormalization keeps its moving statistics (Keras' rule; tfjs
 * would otherwise normalise with batch statistics and move the averages of a frozen layer). The
 * layers below the lowest unfrozen one run outside the gradient tape, in chunks, so only the
 * unfrozen top's activations are kept for the backward pass. Must beat the head phase's best.
 */
import * as tf from '@tensorflow/tfjs';
import type { TrainableSelection } from '../../train/freezing.ts';
import { splitForward, unfreeze } from '../../train/freezing.ts';
import { headForwardTraining, poolFeatures } from '../../train/head.ts';
import { accumulatedStep } from '../../train/accumulate.ts';
import { runPhase } from '../../train/phase-runner.ts';
import { nextSeed } from '../../util/random.ts';
import { microBatchOf, phaseRandom, reportStop, type Training } from '../training.ts';
import type { PhaseResult } from './head-phase.ts';
import { prepareFrozenActivations } from './phase2-activations.ts';
import type { StoredRows } from '../../train/activation-store.ts';

export async function trainFineTunePhase(t: Training, selection: TrainableSelection, headPhase: PhaseResult): Promise<PhaseResult | null> {
  const { ctx, plan, model, inputs, encoder } = t;
  if (!plan.fineTune) return null;
  const { head, full } = model;
  const cut = encoder.cut!;
  const variables = [...head.variables, ...unfreeze(selection.layers)];
  const { epochs, learningRate, layers } = plan.fineTune;
  const forward = splitForward(cut, selection.layers);
  // The frozen part's activations, computed once (phase2-activations.ts); said in the phase event.
  const frozen = await prepareFrozenActivations(t, forward);
  await ctx.emit({
    level: 'info',
    type: 'phase',
    message: `Phase 2 (fine-tune): ${layers.length} base layers unfrozen (${layers.join(', ')}), Adam at ${learningRate}, for up to ${epochs} epochs; BatchNormalization layers stay in inference mode. ${frozen.message}`,
    data: { trainableLayers: layers, learningRate, epochs, frozenActivations: frozen.data },
  });
  const random = phaseRandom(ctx.spec.seed, 'fine-tune');
  const es = ctx.spec.earlyStopping;
  const carry = es && es.restoreBestWeights && headPhase.best ? headPhase.best : null;
  const earlyStopping = t.earlyStopping(variables, carry);
  const optimizer = tf.train.adam(learningRate);
  const from = await t.resume.enter({ phase: 'fine-tune', variables, optimizer, random, earlyStopping });
  const onInputs = t.validateOnInputs((x) => full!.predict(x) as tf.Tensor2D);
  const validate = frozen.validation
    ? () => frozen.validate()
    : async () => {
        frozen.frozenRuns += inputs.rows.validation.length;
        return onInputs();
      };
  const cache = inputs.cache!;
  const trainLabels = inputs.labels.train;
  const loss = model.lossFor(head);
  let outcome;
  try {
    outcome = await runPhase({
      phase: 'fine-tune',
      epochs,
      epochOffset: headPhase.outcome.history.length,
      laterEpochs: 0,
      nTrain: trainLabels.length,
      batchSize: ctx.spec.hyperparameters.batchSize,
      learningRate,
      random,
      // Stored activations of the frozen part, or raw inputs to run it on.
      load: (idx): Promise<unknown> => (frozen.train ? frozen.readTrain(idx) : cache.read(idx.map((i) => inputs.rows.train[i]!))),
      step: async (batch, idx) => {
        let boundary: tf.Tensor[];
        let x: tf.Tensor | tf.Tensor[] = [];
        if (frozen.train) boundary = frozen.tensors(batch as StoredRows);
        else {
          x = cache.inputs(batch, random);
          // Below the lowest unfrozen layer: inference, outside the gradient tape (on ONNX Runtime when the pass ran there).
          boundary = frozen.runFrozen ? await frozen.runFrozen(x as tf.Tensor, idx.length) : forward.frozen(x, encoder.inferenceBatchSize);
          frozen.frozenRuns += idx.length;
        }
        const y = tf.tensor1d(idx.map((i) => trainLabels[i]!), 'int32');
        const dropoutSeed = nextSeed(random);
        try {
          // Inference mode (training: false) in the unfrozen part too: every BatchNormalization
          // normalises with its moving statistics and never updates them.
          const step = (b: tf.Tensor[], rows: { start: number; total: number }) => headForwardTraining(head, poolFeatures(head, forward.trainable(b)), dropoutSeed, rows);
          return await accumulatedStep(optimizer, variables, boundary, y, step, loss, microBatchOf(t, 'fine-tune'));
        } finally {
          tf.dispose([x, y, ...boundary]);
        }
      },
      validate,
      callbacks: t.phaseCallbacks(earlyStopping),
      signal: ctx.signal,
      from,
    });
  } finally {
    optimizer.dispose();
    await frozen.close();
  }
  if (!plan.augmentation) {
    // (Not with augmentation: the phase event says the training batches recompute; the pinned run has one.)
    await ctx.emit({
      level: 'info',
      type: 'frozen_activations',
      message: `Phase 2 ran the frozen layers below the unfrozen top on ${frozen.frozenRuns} ${ctx.task.units.many} in all (${inputs.rows.train.length} training and ${inputs.rows.validation.length} validation; ${frozen.store ? 'computed once' : 'recomputed every epoch'}).`,
      data: { frozenRuns: frozen.frozenRuns, cached: frozen.store !== null, examples: { train: inputs.rows.train.length, validation: inputs.rows.validation.length }, epochsRun: outcome.history.length },
    });
  }
  const out = { ...outcome, restoredEpoch: earlyStopping?.restoredEpoch ?? null };
  const modelEpoch = ctx.record.phaseEnded('fine-tune', epochs, learningRate, out, { trainableLayers: layers });
  await reportStop(ctx, 'fine-tune', out);
  return { outcome: out, modelEpoch, best: earlyStopping?.best ?? null, predictWithOnnx: frozen.predictWithOnnx };
}

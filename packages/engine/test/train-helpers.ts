/** Shared by the training tests: the MNIST base as a ResolvedBase and normalized specs. */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { normalizeFineTune, type CreateFineTuneBody, type FineTuneSpec } from '@graft/contracts';
import { TrainingCancelled } from '../src/errors.ts';
import { fineTune, type FineTuneOptions, type TrainingHooks } from '../src/fine-tune.ts';
import type { ResolvedBase } from '../src/base-source.ts';
import { resolveCatalogBase } from '../src/catalog.ts';

export function mnistBase(): ResolvedBase {
  const base = resolveCatalogBase('bm_mnist_cnn');
  if (!base) throw new Error('bm_mnist_cnn is not in the catalog');
  return base;
}

/** A normalized spec for `base` from a partial request body (dataset `ds_test`, seed 7 unless given). */
export function specFor(body: Partial<CreateFineTuneBody> = {}, base: ResolvedBase = mnistBase(), seed = 7): FineTuneSpec {
  return normalizeFineTune({ baseModel: base.descriptor.id, dataset: 'ds_test', ...body } as CreateFineTuneBody, base.descriptor, seed);
}

type BatchProgress = Parameters<NonNullable<TrainingHooks['onBatch']>>[0];

/** Aborts when `abortAt` first holds for a batch; asserts TrainingCancelled, no later batch, no leaked tensor. */
export async function assertCancelsWithinOneBatch(opts: Omit<FineTuneOptions, 'signal' | 'hooks'>, abortAt: (p: BatchProgress) => boolean, what = 'training'): Promise<void> {
  const controller = new AbortController();
  let afterAbort = 0;
  const tensorsBefore = tf.memory().numTensors;
  await assert.rejects(
    fineTune({
      ...opts,
      signal: controller.signal,
      hooks: {
        onBatch: (p) => {
          if (controller.signal.aborted) afterAbort++;
          else if (abortAt(p)) controller.abort();
        },
      },
    }),
    TrainingCancelled,
  );
  assert.equal(controller.signal.aborted, true, `${what} reached the batch to abort at`);
  assert.equal(afterAbort, 0, `no batch ran after the abort in ${what}`);
  assert.equal(tf.memory().numTensors, tensorsBefore, `no tensor leaked on cancelling ${what}`);
}

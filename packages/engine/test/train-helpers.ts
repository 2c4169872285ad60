/** Shared by the training tests: the MNIST base as a ResolvedBase, normalized specs, cancellation, reading bundles. */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { normalizeFineTune, type CreateFineTuneBody, type FineTuneSpec } from '@graft/contracts';
import type { ResolvedBase } from '../src/bases/base-source.ts';
import { resolveCatalogBase } from '../src/bases/catalog.ts';
import { jsonLoader } from '../src/bases/model-io.ts';
import { openBase } from '../src/bases/open-base.ts';
import { TrainingCancelled } from '../src/errors.ts';
import { fineTune, type FineTuneOptions, type TrainingHooks } from '../src/pipeline/index.ts';
import { openZip, readZipEntry, zipEntries } from '../src/util/zip.ts';

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

/** Every file of a model bundle (zip) by name. */
export async function bundleFiles(zipPath: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const zip = await openZip(zipPath);
  try {
    for await (const entry of zipEntries(zip)) files.set(entry.fileName, await readZipEntry(zip, entry));
  } finally {
    zip.close();
  }
  return files;
}

/** The bundle's model.json + weights.bin as a tfjs layers model (to compare weights by name). */
export async function bundleLayersModel(zipPath: string): Promise<tf.LayersModel> {
  const files = await bundleFiles(zipPath);
  return tf.loadLayersModel(jsonLoader(JSON.parse(files.get('model.json')!.toString('utf8')) as tf.io.ModelJSON, async (p) => files.get(p)!));
}

/** A catalog base's whole layers model, as opened for training (before the cut). */
export async function catalogLayers(id: string): Promise<tf.LayersModel> {
  const opened = await openBase(resolveCatalogBase(id)!);
  return opened.layers!;
}

/** Shared by the training tests: the MNIST base as a ResolvedBase and normalized specs. */
import { normalizeFineTune, type CreateFineTuneBody, type FineTuneSpec } from '@graft/contracts';
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

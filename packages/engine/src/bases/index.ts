/**
 * Bases: where a base's weights are (catalog, registered, a previous fine-tune, a URL) and opening
 * them as tfjs layers or graph models; hosted-model and model-zip caches; checking a base a user
 * registers; what identifies its weights for cache keys. Nothing here knows about training.
 */
export type { BaseModelSource, ResolvedBase } from './base-source.ts';
export { getBaseModel, getBaseModelSource, listBaseModels, resolveCatalogBase } from './catalog.ts';
export { resolveBase, type BaseLookups, type BaseResolution, type FineTuneRecord, type UserBaseRecord } from './resolve-base.ts';
export { HEAD_LAYER_PREFIX, openBase, type OpenBaseOptions, type OpenedBase } from './open-base.ts';
export { GRAPH_FROZEN_MESSAGE, type ModelFormat } from './graph-base.ts';
export { defaultModelCacheDir, fetchHostedModel } from './hosted-cache.ts';
export { unpackModelZip, type UnpackedModelZip } from './model-zip.ts';
export { inspectUserBase, type BaseInspection, type ClaimedBase } from './inspect-base.ts';
export { directoryLoader, directorySaver, jsonLoader, WEIGHTS_FILE, type WeightFileReader } from './model-io.ts';
export { sourceIdentity } from './source-identity.ts';

/**
 * Task-agnostic data handling: the labelled example every task reads its dataset into, the
 * stratified seeded split, and the cross-job cache of the frozen encoder's features.
 */
export type { ClassCount, Example } from './example.ts';
export { stratifiedSplit, type DatasetSplit } from './split.ts';
export { featureCacheFiles, featureCacheKey, readFeatureCache, writeFeatureCache, type FeatureCacheIndex, type FeatureCacheKeyParts } from './feature-cache.ts';

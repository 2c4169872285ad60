/**
 * Evaluation, whatever the task: accuracy, loss, top-k, per-class precision/recall/F1 and the
 * confusion matrix (`Scorer`), fed by a head on features, a model on the input cache, or models on
 * a dataset file read with the exact preprocessing.
 */
export { accuracyOf, clampTopK, confusionMatrix, perClassMetrics, Scorer, type ClassMetrics, type EvaluationResult } from './metrics.ts';
export { scoreHeadOnFeatures, scoreOnDataset, scoreOnInputCache, type Predict } from './score.ts';

/**
 * Text datasets (CSV or JSON Lines; plain, gzipped or the single file of a zip), without
 * TensorFlow, so the API can load it:
 * - `checkTextDataset` (in this thread) or `TextCheckPool.check` (in child processes): the full
 *   streamed check at upload — invalid rows with line and reason, class balance, length
 *   percentiles (characters, tokens), duplicates and conflicting labels — writing the normalised
 *   rows file and the fingerprint file;
 * - `readTextRows` / `loadTextDataset`: what training reads (the normalised rows file);
 * - `checkLeakage`: texts a test dataset shares with a training dataset (from their fingerprints).
 */
export { checkTextDataset, type CheckTextDatasetOptions, type TextDatasetReport, type TokenCounter } from './check.ts';
export { TextCheckPool, TEXT_CHECK_LIMITS, type TextCheckRequest } from './check-pool.ts';
export { openTokenCounter, TOKEN_COUNTING_AVAILABLE, type TokenizerSpec } from './token-counter.ts';
export { readTextRows, loadTextDataset, type TextRow, type LoadedTextDataset } from './rows-file.ts';
export { checkLeakage, type LeakageReport } from './leakage.ts';
export { readFingerprints, intersectSorted } from './fingerprints.ts';
export { normalizeText, fingerprint, countCharacters, NORMALIZATION } from './normalize.ts';
export { detectTextFormat } from './sniff.ts';

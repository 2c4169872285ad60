/**
 * The text task: the rows file of an upload as examples, text bases opened as frozen encoders
 * (graft's tfjs encoder, fine-tunable; ONNX and USE-style encoders, frozen), the one pass that
 * tokenizes each text once (sentence vectors, token-id cache), and text bundles (`text.json`,
 * tokenizer files) read back to predict from raw strings. Datasets (`dataset/`) and the encoders
 * themselves (`graft-encoder/`, `use/`) have their own indexes.
 */
export { readTextDataset, textTask } from './task.ts';
export { frozenTextEncoder, openTextEncoder, TEXT_INFERENCE_BATCH } from './encoder.ts';
export { readTokensExactly, textPass, type FeatureSource, type Tokenization } from './input-pass.ts';
export { tokenCacheStore, tokenTensors, TokenCacheWriter, type TokenIdentity, type TokenRecords } from './token-cache.ts';
export { loadTextBundle, TEXT_BUNDLE_FILE, textBundle, textBundleFile, tokenizerIdentity, type TextBundleEncoder, type TextBundleSpec, type TextPredictorOptions } from './bundle.ts';
export type { SentenceEncoder } from './sentence-encoder.ts';

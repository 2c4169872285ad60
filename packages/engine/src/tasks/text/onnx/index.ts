/**
 * BERT-family encoders in ONNX (BERT, DistilBERT, MiniLM, e5/bge as Hugging Face publishes them for
 * JavaScript) as frozen text bases: the folder (ONNX file, tokenizer.json, config.json), the encoder
 * on onnxruntime-node (`openOnnxTextEncoder`, a `SentenceEncoder`), the cls / mean pooling, and
 * registration: fetching a folder by URL and the check before a base is listed. No TensorFlow here
 * (`@graft/engine/onnx-text`). The fixture is models/text/tiny-bert (scripts/text/make-tiny-bert.py).
 */
export { DEFAULT_OUTPUT_NAME, openOnnxTextEncoder, type OnnxEncoderOptions, type OnnxTextEncoder } from './onnx-encoder.ts';
export { CONFIG_FILE, DEFAULT_MODEL_FILES, InvalidTextBase, readOnnxTextFolder, type EncoderConfig, type OnnxTextFolder } from './folder.ts';
export { poolTokenStates, type TokenPooling } from './pooling.ts';
export { inspectOnnxTextBase, STORED_MODEL_FILE, type TextBaseClaim, type TextBaseInspection } from './inspect.ts';
export { fetchOnnxTextFolder, type FetchFolderOptions } from './fetch-folder.ts';
export { unpackModelZip } from '../../../bases/model-zip.ts';

/**
 * BERT-family encoders in ONNX (BERT, DistilBERT, MiniLM, e5/bge as Hugging Face publishes them for
 * JavaScript) as frozen text bases: the folder (ONNX file, tokenizer.json, config.json), the encoder
 * on onnxruntime-node (`openOnnxTextEncoder`, a `SentenceEncoder`), and the cls / mean pooling.
 * The fixture is models/text/tiny-bert (scripts/text/make-tiny-bert.py).
 */
export { DEFAULT_OUTPUT_NAME, openOnnxTextEncoder, type OnnxEncoderOptions, type OnnxTextEncoder } from './onnx-encoder.ts';
export { CONFIG_FILE, DEFAULT_MODEL_FILES, readOnnxTextFolder, type EncoderConfig, type OnnxTextFolder } from './folder.ts';
export { poolTokenStates, type TokenPooling } from './pooling.ts';

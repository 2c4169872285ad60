/**
 * graft's own transformer text encoder (tfjs layers, fully fine-tunable): the architecture and its
 * custom layers (saved and loaded with tf.loadLayersModel once imported), its folder format, and
 * the encoder as a text base (`openGraftTextEncoder`: frozen `embed`, the LayersModel, its cut at
 * `pooled`). Pretrained by scripts/text/pretrain-graft-encoder.ts; shipped in models/text/graft-encoder.
 */
export { ATTENTION_MASK, blockStart, buildGraftEncoder, configOf, countParams, DEFAULT_CONFIG, INPUT_IDS, LAYERS_PER_BLOCK, POOLED_LAYER, type GraftEncoderConfig } from './architecture.ts';
export { CUSTOM_LAYER_CLASSES, Dense, LayerNorm, MaskedPooling, matMul2d, MultiHeadSelfAttention, PositionEmbedding, type Pooling } from './layers.ts';
export { ENCODER_FILE, loadGraftEncoderModel, readEncoderFile, saveGraftEncoder, TOKENIZER_FILES, type EncoderFile } from './model-files.ts';
export { openGraftTextEncoder, type GraftTextEncoder } from './text-encoder.ts';
export { loadWordPieceTokenizer, type EncodedBatch, type WordPieceTokenizer } from '../tokenizer.ts';
export { registerWasmTextGradientKernels, unsortedSegmentSumComposite } from './wasm-segment-sum.ts';

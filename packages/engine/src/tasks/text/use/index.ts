/**
 * Universal-Sentence-Encoder-style tfjs graph encoders by URL (frozen feature extractors): the
 * loader (`openUseEncoder`, through the engine's hosted-model cache) and the SentencePiece
 * `vocab.json` tokenizer they are fed with.
 */
export { fetchVocabulary, openUseEncoder, useEncoderFrom, USE_LITE, type UseEncoderSource, type UseOpenOptions, type UseTextEncoder } from './use-encoder.ts';
export { assertVocabulary, RESERVED_SYMBOLS, sentencePieceTokenizer, type SentencePieceTokenizer, type Vocabulary } from './sentencepiece.ts';

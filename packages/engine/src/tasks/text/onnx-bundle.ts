/**
 * The ONNX encoder of a text bundle, opened to predict: from the file in the zip, or from the file
 * the caller gives when the bundle only names it (sha256 checked). Imported only for such bundles,
 * so onnxruntime loads only when a bundle needs it.
 */
import type { SentenceEncoder } from './sentence-encoder.ts';
import type { TextBundleEncoder, TextBundleSpec, TextPredictorOptions } from './bundle.ts';

export async function openBundledOnnxEncoder(
  _spec: TextBundleSpec,
  _encoder: Extract<TextBundleEncoder, { format: 'onnx' }>,
  _files: ReadonlyMap<string, Uint8Array>,
  source: string,
  _opts: TextPredictorOptions,
): Promise<SentenceEncoder> {
  throw new Error(`${source} holds an ONNX text encoder, which this engine cannot open yet.`);
}

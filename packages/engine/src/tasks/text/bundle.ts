/**
 * What a text model bundle holds beyond the model itself, and reading it back to predict from raw
 * strings. `text.json` says how a text becomes the model's input: the tokenizer (its files at the
 * zip root: `tokenizer.json`, `tokenizer_config.json`), the maximum length, the pooling rule, and
 * the encoder — `tfjs-layers`: `model.json` is the whole model (encoder + head, inputs
 * [input_ids, attention_mask]); `onnx`: `model.json` is the head alone on the sentence vector and
 * the encoder is `encoder.file` in the zip, or, when it was too large to ship, only named by its
 * sha256 and source (the predictor then needs the file given to it).
 *
 * Nothing heavy is imported at module load: recognising a bundle must not load tokenizers or
 * onnxruntime (an image bundle never does); `load` imports what the bundle needs.
 */
import { createHash } from 'node:crypto';
import type * as tf from '@tensorflow/tfjs';
import type { TextPooling, TokenizerKind } from '@graft/contracts';
import type { ZipInput } from '../../util/zip.ts';
import type { BundleReader, RawInput, TaskPredictor } from '../task.ts';
import type { SentenceEncoder } from './sentence-encoder.ts';

export const TEXT_BUNDLE_FILE = 'text.json';

export type TextBundleEncoder =
  | { format: 'tfjs-layers' }
  /** A USE-style graph: `encoder/model.json` + `encoder/weights.bin`, its vocabulary `encoder/vocab.json`, read to `outputNode`. */
  | { format: 'tfjs-graph'; outputNode: string }
  | {
      format: 'onnx';
      /** The encoder's path in the zip, or null when it was left out (over the size limit). */
      file: string | null;
      sha256: string;
      bytes: number;
      /** Where the file came from (the base's id and source), to fetch it again when left out. */
      source: string;
      /** The ONNX output with the token states, and the names of its inputs. */
      outputName: string;
      inputNames: string[];
    };

export interface TextBundleSpec {
  kind: 'graft-text';
  version: 1;
  encoder: TextBundleEncoder;
  tokenizer: { kind: TokenizerKind; files: string[]; lowercase: boolean };
  /** Tokens per text after truncation, special tokens included. */
  maxLength: number;
  /** How the encoder's token states became one vector (inside model.json for tfjs-layers; applied after the ONNX encoder). */
  pooling: TextPooling;
  /** Texts per forward pass when predicting. */
  batchSize: number;
}

export function textBundleFile(spec: TextBundleSpec): ZipInput {
  return { name: TEXT_BUNDLE_FILE, data: Buffer.from(JSON.stringify(spec, null, 2)) };
}

/** sha256 over tokenizer files (name and bytes): what identifies a tokenization in cache keys. */
export function tokenizerIdentity(files: readonly { name: string; data: Uint8Array }[]): string {
  const hash = createHash('sha256');
  for (const f of files) hash.update(f.name).update('\0').update(f.data).update('\0');
  return hash.digest('hex');
}

/** Options for predictors of bundles whose encoder was left out. */
export interface TextPredictorOptions {
  /** The ONNX encoder file named in text.json (checked against its sha256). */
  encoderPath?: string;
}

/** Text bundles: recognised by `text.json`. */
export const textBundle: BundleReader = {
  recognises: (names) => names.has(TEXT_BUNDLE_FILE),
  load: (files, source, opts) => loadTextBundle(files, source, opts ?? {}),
};

export async function loadTextBundle(files: ReadonlyMap<string, Uint8Array>, source: string, opts: TextPredictorOptions): Promise<TaskPredictor> {
  const json = <T>(name: string): T => {
    const data = files.get(name);
    if (!data) throw new Error(`${source} has no ${name}`);
    return JSON.parse(Buffer.from(data).toString('utf8')) as T;
  };
  const spec = json<TextBundleSpec>(TEXT_BUNDLE_FILE);
  if (spec.kind !== 'graft-text' || spec.version !== 1) throw new Error(`${source}: ${TEXT_BUNDLE_FILE} is not a graft text bundle description (version 1)`);
  const [tfjs, { jsonLoader }, { tokenTensors }] = await Promise.all([import('@tensorflow/tfjs'), import('../../bases/model-io.ts'), import('./token-cache.ts')]);
  // Registers graft's encoder layers, which a tfjs-layers text model.json names.
  await import('./graft-encoder/layers.ts');
  const model = await tfjs.loadLayersModel(
    jsonLoader(json<tf.io.ModelJSON>('model.json'), (p) => {
      const data = files.get(p);
      if (!data) return Promise.reject(new Error(`${source} has no weights file ${p}`));
      return Promise.resolve(data);
    }),
  );
  const classes = model.outputs[0]!.shape.at(-1)!;
  const batchSize = Math.max(1, spec.batchSize || 32);
  const texts = (inputs: readonly RawInput[]) =>
    inputs.map((input, i) => {
      if (typeof input !== 'string') throw new TypeError(`Input ${i} is not a string: this model classifies texts.`);
      return input;
    });

  if (spec.encoder.format === 'tfjs-layers') {
    const { textTokenizerFrom } = await import('./tokenizer.ts');
    const tok = textTokenizerFrom(json('tokenizer.json'), files.has('tokenizer_config.json') ? json('tokenizer_config.json') : null, source);
    return {
      probabilities: async (inputs) => {
        const all = texts(inputs);
        const out = new Float32Array(all.length * classes);
        for (let start = 0; start < all.length; start += batchSize) {
          const rows = all.slice(start, start + batchSize).map((t) => tok.encode([t], spec.maxLength).inputIds);
          const probs = tfjs.tidy(() => model.predict(tokenTensors(rows, tok.padId)) as tf.Tensor2D);
          out.set(await probs.data<'float32'>(), start * classes);
          probs.dispose();
        }
        return out;
      },
      dispose: () => model.dispose(),
    };
  }
  let encoder: SentenceEncoder;
  if (spec.encoder.format === 'tfjs-graph') {
    const [{ useEncoderFrom }, sentencepiece] = await Promise.all([import('./use/use-encoder.ts'), import('./use/sentencepiece.ts')]);
    const assertVocabulary: typeof sentencepiece.assertVocabulary = sentencepiece.assertVocabulary;
    const graph = await tfjs.loadGraphModel(
      jsonLoader(json<tf.io.ModelJSON>('encoder/model.json'), (p) => {
        const data = files.get(`encoder/${p}`);
        if (!data) return Promise.reject(new Error(`${source} has no weights file encoder/${p}`));
        return Promise.resolve(data);
      }),
    );
    const vocab = json<unknown>('encoder/vocab.json');
    assertVocabulary(vocab);
    encoder = await useEncoderFrom(graph, vocab, { maxLength: spec.maxLength, outputNode: spec.encoder.outputNode, name: source });
  } else {
    const { openBundledOnnxEncoder } = await import('./onnx-bundle.ts');
    encoder = await openBundledOnnxEncoder(spec, spec.encoder, files, source, opts);
  }
  return {
    // The sentence encoder is what costs: say which runtime runs it (the head is tfjs either way).
    runtime: { name: spec.encoder.format === 'onnx' ? 'onnx' : 'tfjs', reason: null },
    probabilities: async (inputs) => {
      const all = texts(inputs);
      const vectors = await encoder.embed(all, { batchSize });
      const probs = tfjs.tidy(() => model.predict(tfjs.tensor2d(vectors, [all.length, encoder.dim])) as tf.Tensor2D);
      const out = await probs.data<'float32'>();
      probs.dispose();
      return out;
    },
    dispose: () => {
      model.dispose();
      encoder.dispose();
    },
  };
}

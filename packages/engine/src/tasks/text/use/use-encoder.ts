/**
 * TensorFlow.js graph-model sentence encoders by URL — the Universal Sentence Encoder family as
 * published for tfjs (USE lite: a graph model whose inputs are a sparse batch of SentencePiece ids,
 * `indices` int32 [N, 2] = (text, position) and `values` int32 [N] = the ids, and whose output is one
 * vector per text, [texts, dim]; plus its `vocab.json`). Frozen feature extractors only: a graph has
 * no trainable layers in tfjs.
 *
 * The graph is fetched and cached by the engine's hosted-model fetcher (hosted-cache.ts:
 * `<cacheDir>/hosted/<sha256(url)>/`, checked by sha256 when given); the vocabulary goes into the
 * same cache, under its own URL's hash, written whole or not at all. Once cached, it opens offline.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TrainingCancelled, TrainingError } from '../../../errors.ts';
import { defaultModelCacheDir, fetchHostedModel, HOSTED_LIMITS, hostedCacheDir, sha256Hex } from '../../../bases/hosted-cache.ts';
import { directoryLoader } from '../../../bases/model-io.ts';
import { throwIfAborted, type EmbedOptions } from '../graft-encoder/abort.ts';
import { assertVocabulary, sentencePieceTokenizer, type SentencePieceTokenizer, type Vocabulary } from './sentencepiece.ts';
import type { SentenceEncoder } from '../sentence-encoder.ts';

/** Where Google publishes USE lite for tfjs (what `@tensorflow-models/universal-sentence-encoder` 1.3 loads). */
export const USE_LITE = {
  modelUrl: 'https://tfhub.dev/tensorflow/tfjs-model/universal-sentence-encoder-lite/1/default/1/model.json?tfjs-format=file',
  vocabUrl: 'https://storage.googleapis.com/tfjs-models/savedmodel/universal_sentence_encoder/vocab.json',
} as const;

/** Largest vocab.json accepted (USE lite's is about 0.3 MB). */
const MAX_VOCAB_BYTES = 16 * 1024 * 1024;

export interface UseEncoderSource {
  /** The graph's model.json. */
  modelUrl: string;
  vocabUrl: string;
  /** sha256 of model.json's bytes, checked on download and against the cache. */
  modelSha256?: string;
  /** The node whose output is the sentence vectors (default: the graph's single output). */
  outputNode?: string;
  /** Ids kept per text (longer texts are truncated): bounds memory; USE itself has no limit. Default 256. */
  maxLength?: number;
}

export interface UseOpenOptions {
  cacheDir?: string | null;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

export interface UseTextEncoder extends SentenceEncoder {
  readonly kind: 'tfjs-graph';
  readonly dim: number;
  readonly maxLength: number;
  /** The graph already gives one vector per text. */
  readonly pooling: 'none';
  readonly graph: tf.GraphModel;
  readonly tokenizer: SentencePieceTokenizer;
  /** vocab.json as read (a model bundle carries it). */
  readonly vocabulary: Vocabulary;
  /** The node whose output is the sentence vectors. */
  readonly outputNode: string;
  countTokens(text: string): number;
  embed(texts: readonly string[], opts?: EmbedOptions): Promise<Float32Array>;
  dispose(): void;
}

/**
 * Opens a USE-style graph encoder: model and vocabulary from the cache or the network, the graph's
 * inputs checked (`indices`, `values`), one probe text run to learn the vector size. Errors are
 * TrainingError `base_model_unavailable` with the reason; TrainingCancelled when `signal` aborts.
 */
export async function openUseEncoder(source: UseEncoderSource, opts: UseOpenOptions = {}): Promise<UseTextEncoder> {
  const cacheDir = opts.cacheDir === undefined ? defaultModelCacheDir() : opts.cacheDir;
  const maxLength = source.maxLength ?? 256;
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new TrainingError('base_model_unavailable', `maxLength must be a positive integer, not ${maxLength}`);
  const hosted = await fetchHostedModel(source.modelUrl, { cacheDir, sha256: source.modelSha256, signal: opts.signal, fetch: opts.fetch });
  let graph: tf.GraphModel | null = null;
  try {
    const vocab = await fetchVocabulary(source.vocabUrl, { ...opts, cacheDir });
    graph = await tf.loadGraphModel(await directoryLoader(hosted.dir)).catch((err: Error) => {
      throw unavailable(source.modelUrl, `the graph does not load (${err.message})`);
    });
    return await useEncoderFrom(graph, vocab, { maxLength, outputNode: source.outputNode, name: source.modelUrl });
  } catch (err) {
    graph?.dispose();
    if (opts.signal?.aborted && !(err instanceof TrainingCancelled)) throw new TrainingCancelled();
    if (err instanceof TrainingError || err instanceof TrainingCancelled) throw err;
    throw unavailable(source.modelUrl, (err as Error).message);
  } finally {
    await hosted.release().catch(() => {});
  }
}

/**
 * A USE-style encoder from a loaded graph and its vocabulary (opened by URL above, or read from a
 * model bundle): inputs checked, one probe text run to learn the vector size. `name` says where it
 * came from in errors (TrainingError `base_model_unavailable`).
 */
export async function useEncoderFrom(graph: tf.GraphModel, vocab: Vocabulary, o: { maxLength: number; outputNode?: string; name: string }): Promise<UseTextEncoder> {
  const maxLength = o.maxLength;
  const tokenizer = sentencePieceTokenizer(vocab);
  const inputs = graph.inputs.map((i) => i.name);
  for (const name of ['indices', 'values']) {
    if (!inputs.includes(name)) throw unavailable(o.name, `the graph has no "${name}" input (inputs: ${inputs.join(', ')}); a Universal-Sentence-Encoder-style graph takes sparse "indices" and "values"`);
  }
  const outputNode = o.outputNode ?? (graph.outputs.length === 1 ? graph.outputs[0]!.name : null);
  if (!outputNode) throw unavailable(o.name, `the graph has ${graph.outputs.length} outputs (${graph.outputs.map((out) => out.name).join(', ')}); name the one with the sentence vectors (outputNode)`);
  const g = graph;
  const run = async (texts: readonly string[]): Promise<tf.Tensor2D> => {
    const encoded = texts.map((t) => {
      const ids = tokenizer.encode(t).slice(0, maxLength);
      // An empty text still needs a row in the sparse batch: the unknown id stands for it.
      return ids.length ? ids : [0];
    });
    const positions = encoded.flatMap((ids, row) => ids.map((_, col) => [row, col]));
    const indices = tf.tensor2d(positions.flat(), [positions.length, 2], 'int32');
    const values = tf.tensor1d(encoded.flat(), 'int32');
    try {
      const out = (await g.executeAsync({ indices, values }, outputNode)) as tf.Tensor;
      if (out.rank !== 2 || out.shape[0] !== texts.length) {
        const shape = out.shape;
        out.dispose();
        throw unavailable(o.name, `"${outputNode}" gave shape [${shape.join(', ')}] for ${texts.length} texts, not [${texts.length}, dim]`);
      }
      return out as tf.Tensor2D;
    } finally {
      indices.dispose();
      values.dispose();
    }
  };
  const probe = await run(['graft']);
  const dim = probe.shape[1];
  const finite = (await probe.data()).every(Number.isFinite);
  probe.dispose();
  if (!finite) throw unavailable(o.name, 'the graph gives non-finite values');
  return {
    kind: 'tfjs-graph',
    dim,
    maxLength,
    pooling: 'none',
    graph: g,
    tokenizer,
    vocabulary: vocab,
    outputNode,
    countTokens: (text) => tokenizer.encode(text).length,
    async embed(texts, eo = {}) {
      const batchSize = Math.max(1, eo.batchSize ?? 32);
      const out = new Float32Array(texts.length * dim);
      for (let start = 0; start < texts.length; start += batchSize) {
        throwIfAborted(eo.signal);
        const vectors = await run(texts.slice(start, start + batchSize));
        out.set(await vectors.data(), start * dim);
        vectors.dispose();
        eo.onProgress?.(Math.min(texts.length, start + batchSize), texts.length);
        await new Promise((r) => setImmediate(r));
      }
      throwIfAborted(eo.signal);
      return out;
    },
    dispose() {
      g.dispose();
    },
  };
}

/** vocab.json from `<cacheDir>/hosted/<sha256(url)>/vocab.json`, else fetched (then cached) and checked. */
export async function fetchVocabulary(url: string, opts: UseOpenOptions & { cacheDir: string | null }) {
  const dir = opts.cacheDir ? hostedCacheDir(opts.cacheDir, url) : null;
  if (dir) {
    const cached = await readFile(join(dir, 'vocab.json'), 'utf8').catch(() => null);
    if (cached !== null) {
      const parsed = JSON.parse(cached) as unknown;
      assertVocabulary(parsed);
      return parsed;
    }
  }
  if (opts.signal?.aborted) throw new TrainingCancelled();
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, { signal: AbortSignal.any([AbortSignal.timeout(HOSTED_LIMITS.timeoutMs), ...(opts.signal ? [opts.signal] : [])]), redirect: 'follow' });
  } catch (err) {
    if (opts.signal?.aborted) throw new TrainingCancelled();
    throw unavailable(url, `GET failed (${(err as Error).message}). The worker needs network once to fetch it (it is cached afterwards)`);
  }
  if (!res.ok) throw unavailable(url, `GET answered HTTP ${res.status}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  if (bytes.byteLength > MAX_VOCAB_BYTES) throw unavailable(url, `vocab.json is ${bytes.byteLength} bytes, over the ${MAX_VOCAB_BYTES} graft accepts`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
    assertVocabulary(parsed);
  } catch (err) {
    throw unavailable(url, `vocab.json is not a vocabulary: ${(err as Error).message}`);
  }
  if (dir) {
    // Written to a temporary name and renamed: a cached vocabulary is whole or absent.
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.vocab-${process.pid}-${randomBytes(4).toString('hex')}`);
    await writeFile(tmp, bytes);
    await rename(tmp, join(dir, 'vocab.json')).catch(async (err) => {
      await rm(tmp, { force: true });
      throw err;
    });
    await writeFile(join(dir, 'vocab.source.json'), JSON.stringify({ url, fetchedAt: new Date().toISOString(), sha256: sha256Hex(bytes) }, null, 2));
  }
  return parsed;
}

function unavailable(url: string, detail: string): TrainingError {
  return new TrainingError('base_model_unavailable', `The sentence encoder at ${url} cannot be used: ${detail}.`);
}

/**
 * A BERT-family encoder in ONNX as a text base: its folder (`folder.ts`) opened with onnxruntime-node
 * (CPU) as a frozen `SentenceEncoder`. onnxruntime-node is imported when an encoder is opened, so
 * image-only paths never load it.
 *
 * - Inputs are discovered from the session: `input_ids` and `attention_mask` (required),
 *   `token_type_ids` (zeros: one segment) and `position_ids` (0, 1, …) when the graph asks for them;
 *   int64 (BigInt64Array) or int32 as the graph declares. Any other input is refused at open.
 * - The output is `outputName`, else `last_hidden_state`, else the graph's only rank-3 output:
 *   token states [batch, sequence, hidden], float32, pooled by `pooling.ts` (cls | mean).
 * - `embed` sorts texts by length so a batch pads little, checks the AbortSignal before every batch
 *   and yields to the event loop between batches.
 */
import { availableParallelism } from 'node:os';
import type * as Ort from 'onnxruntime-node';
import { TEXT_MAX_LENGTH } from '@graft/contracts';
import { throwIfAborted, type EmbedOptions } from '../graft-encoder/abort.ts';
import type { SentenceEncoder } from '../sentence-encoder.ts';
import type { EncodedBatch, TextTokenizer } from '../tokenizer.ts';
import { InvalidTextBase, readOnnxTextFolder, type EncoderConfig } from './folder.ts';
import { poolTokenStates, type TokenPooling } from './pooling.ts';

export const DEFAULT_OUTPUT_NAME = 'last_hidden_state';
const KNOWN_INPUTS = ['input_ids', 'attention_mask', 'token_type_ids', 'position_ids'] as const;
type KnownInput = (typeof KNOWN_INPUTS)[number];

export interface OnnxEncoderOptions {
  /** The ONNX file inside the folder (default `onnx/model.onnx`, else `model.onnx`). */
  modelFile?: string;
  /** The output with the token states (default `last_hidden_state`, else the only rank-3 output). */
  outputName?: string;
  /** Default `mean`. */
  pooling?: TokenPooling;
  /** Tokens kept per text (default 128), lowered to the model's own limit (config.json, tokenizer_config.json). */
  maxLength?: number;
  /** ONNX Runtime's intra-op threads (default: the machine's available parallelism). */
  threads?: number;
}

export interface OnnxTextEncoder extends SentenceEncoder {
  readonly kind: 'onnx';
  readonly pooling: TokenPooling;
  readonly tokenizer: TextTokenizer;
  readonly config: EncoderConfig;
  /** The ONNX file, relative to the folder. */
  readonly modelFile: string;
  readonly modelBytes: number;
  /** The graph's inputs, as fed. */
  readonly inputNames: readonly string[];
  readonly outputName: string;
  readonly threads: number;
  /** Token ids and mask for a batch, as `embed` feeds it (padded to its longest text ≤ maxLength). */
  encode(texts: readonly string[]): EncodedBatch;
  /** Sentence vectors [n × dim] of an encoded batch (one forward pass). */
  embedBatch(batch: EncodedBatch, n: number): Promise<Float32Array>;
}

const bad = (message: string, param: InvalidTextBase['param'] = null) => new InvalidTextBase(message, param);

type IntType = 'int64' | 'int32';

/** Opens the folder's encoder. `InvalidTextBase` (a TrainingError `invalid_base_model`) when the folder or graph is unusable (the message says why). */
export async function openOnnxTextEncoder(dir: string, opts: OnnxEncoderOptions = {}): Promise<OnnxTextEncoder> {
  const folder = await readOnnxTextFolder(dir, opts.modelFile === undefined ? {} : { modelFile: opts.modelFile });
  const { tokenizer, config } = folder;
  const pooling = opts.pooling ?? 'mean';
  const limits = [opts.maxLength ?? TEXT_MAX_LENGTH.default, config.maxPositionEmbeddings, folder.tokenizerMaxLength].filter((v): v is number => v !== null);
  const maxLength = Math.min(...limits);
  const specials = tokenizer.template.prefix.length + tokenizer.template.suffix.length;
  if (maxLength <= specials) throw bad(`maxLength ${maxLength} leaves no room for tokens besides the ${specials} special ones`, 'maxLength');
  const threads = Math.max(1, Math.floor(opts.threads ?? availableParallelism()));

  const ort = await import('onnxruntime-node');
  let session: Ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(folder.modelPath, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
    });
  } catch (err) {
    // ONNX Runtime's message names the file by its path: the folder's location is the caller's business.
    const reason = (err as Error).message.replaceAll(folder.modelPath, folder.modelFile).replaceAll(dir, '.');
    throw bad(`${folder.modelFile} cannot be loaded by ONNX Runtime: ${reason}`);
  }
  try {
    // Inputs: what the graph asks for, typed as it declares.
    const inputs = new Map<KnownInput, IntType>();
    for (const meta of session.inputMetadata) {
      if (!(KNOWN_INPUTS as readonly string[]).includes(meta.name)) {
        throw bad(`${folder.modelFile} has an input "${meta.name}"; a text encoder's inputs are ${KNOWN_INPUTS.join(', ')}`);
      }
      const type = meta.isTensor ? meta.type : 'int64';
      if (type !== 'int64' && type !== 'int32') throw bad(`${folder.modelFile}'s input ${meta.name} is ${type}; token inputs must be int64 or int32`);
      inputs.set(meta.name as KnownInput, type);
    }
    for (const required of ['input_ids', 'attention_mask'] as const) {
      if (!inputs.has(required)) throw bad(`${folder.modelFile} has no ${required} input (it has ${session.inputNames.join(', ') || 'none'})`);
    }
    const outputName = pickOutput(session, opts.outputName, folder.modelFile);

    const feedsOf = (b: EncodedBatch, n: number): Record<string, Ort.Tensor> => {
      const dims = [n, b.length];
      const ints = (name: KnownInput, values: Int32Array) =>
        inputs.get(name) === 'int32' ? new ort.Tensor('int32', values, dims) : new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);
      const feeds: Record<string, Ort.Tensor> = { input_ids: ints('input_ids', b.inputIds), attention_mask: ints('attention_mask', b.attentionMask) };
      if (inputs.has('token_type_ids')) feeds.token_type_ids = ints('token_type_ids', new Int32Array(n * b.length));
      if (inputs.has('position_ids')) feeds.position_ids = ints('position_ids', Int32Array.from({ length: n * b.length }, (_, i) => i % b.length));
      return feeds;
    };
    const states = async (b: EncodedBatch, n: number): Promise<{ data: Float32Array; dims: readonly number[] }> => {
      const feeds = feedsOf(b, n);
      const result = await session.run(feeds, [outputName]);
      const out = result[outputName]!;
      try {
        if (out.type !== 'float32') throw bad(`${folder.modelFile}'s output ${outputName} is ${out.type}; graft reads float32 token states`);
        if (out.dims.length !== 3 || out.dims[0] !== n || out.dims[1] !== b.length) {
          throw bad(`${folder.modelFile}'s output ${outputName} has shape [${out.dims.join(', ')}] for a batch of [${n}, ${b.length}] tokens; expected [batch, sequence, hidden]`);
        }
        return { data: out.data as Float32Array, dims: out.dims };
      } finally {
        for (const t of Object.values(feeds)) t.dispose();
      }
    };

    // One short text through the graph: the hidden size, measured (and checked against config.json).
    const probe = tokenizer.encode(['graft'], maxLength);
    const dim = (await states(probe, 1)).dims[2]!;
    if (config.hiddenSize !== null && config.hiddenSize !== dim) {
      throw bad(`${folder.modelFile} outputs ${dim} features per token but config.json says hidden_size ${config.hiddenSize}`);
    }

    const encode = (texts: readonly string[]) => tokenizer.encode(texts, maxLength);
    const embedBatch = async (b: EncodedBatch, n: number) => poolTokenStates((await states(b, n)).data, b.attentionMask, n, b.length, dim, pooling);
    let released = false;
    return {
      kind: 'onnx',
      dim,
      maxLength,
      pooling,
      tokenizer,
      config,
      modelFile: folder.modelFile,
      modelBytes: folder.modelBytes,
      inputNames: [...inputs.keys()],
      outputName,
      threads,
      countTokens: (text) => tokenizer.countTokens(text),
      encode,
      embedBatch,
      async embed(texts, o: EmbedOptions = {}) {
        if (released) throw new Error('this ONNX text encoder was disposed');
        const batchSize = Math.max(1, Math.floor(o.batchSize ?? 32));
        const out = new Float32Array(texts.length * dim);
        // Texts sorted by length so a batch pads little; vectors go back to their places.
        const lengths = texts.map((t) => Math.min(maxLength, tokenizer.countTokens(t)));
        const order = texts.map((_, i) => i).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
        for (let start = 0; start < order.length; start += batchSize) {
          throwIfAborted(o.signal);
          const idx = order.slice(start, start + batchSize);
          const vectors = await embedBatch(encode(idx.map((i) => texts[i]!)), idx.length);
          idx.forEach((i, row) => out.set(vectors.subarray(row * dim, (row + 1) * dim), i * dim));
          o.onProgress?.(Math.min(order.length, start + batchSize), order.length);
          await new Promise((r) => setImmediate(r));
        }
        throwIfAborted(o.signal);
        return out;
      },
      dispose() {
        if (released) return;
        released = true;
        void session.release();
      },
    };
  } catch (err) {
    await session.release();
    throw err;
  }
}

/** The output with the token states: the named one, else `last_hidden_state`, else the only rank-3 output. */
function pickOutput(session: Ort.InferenceSession, wanted: string | undefined, file: string): string {
  const names = session.outputNames;
  if (wanted !== undefined) {
    if (!names.includes(wanted)) throw bad(`${file} has no output "${wanted}" (it has ${names.join(', ')})`, 'outputName');
    return wanted;
  }
  if (names.includes(DEFAULT_OUTPUT_NAME)) return DEFAULT_OUTPUT_NAME;
  const rank3 = session.outputMetadata.filter((m) => m.isTensor && m.shape.length === 3).map((m) => m.name);
  if (rank3.length === 1) return rank3[0]!;
  if (names.length === 1) return names[0]!;
  throw bad(`${file} has no ${DEFAULT_OUTPUT_NAME} output and ${rank3.length ? `several rank-3 outputs (${rank3.join(', ')})` : 'no single rank-3 output'}; name the token states with outputName`, 'outputName');
}

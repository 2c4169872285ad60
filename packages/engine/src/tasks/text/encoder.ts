/**
 * A text base opened as the text task's frozen encoder:
 * - a tfjs layers encoder (graft's, from its folder, or a previous text fine-tune's model zip):
 *   cut where one vector per text comes out (`pooled`), fine-tunable (phase 2 unfreezes its top
 *   blocks, the scratch baseline rebuilds it), inputs [input_ids, attention_mask] int32, an input
 *   cache of token ids, and the whole model (encoder + head) in the bundle;
 * - a frozen-only sentence encoder (ONNX, USE-style graph): features from `embed` on the raw texts
 *   only (`run` is null), no input cache, the bundle holds the head and the encoder's files.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { BUNDLED_ENCODER_MAX_BYTES_DEFAULT, isTextBase, type TextBaseModel } from '@graft/contracts';
import type { ResolvedBase } from '../../bases/base-source.ts';
import { defaultModelCacheDir } from '../../bases/hosted-cache.ts';
import { unpackModelZipCached } from '../../bases/model-zip.ts';
import { openBase } from '../../bases/open-base.ts';
import { TrainingError } from '../../errors.ts';
import { cutBase } from '../../train/freezing.ts';
import { releaseWeights } from '../../train/weights.ts';
import { sha256File } from '../../util/hash.ts';
import type { ZipInput } from '../../util/zip.ts';
import type { InputCacheStore, OpenEncoderOptions, PreviousFineTune, TaskEncoder } from '../task.ts';
import { textBundleFile, tokenizerIdentity, type TextBundleEncoder } from './bundle.ts';
import { registerWasmTextGradientKernels } from './graft-encoder/wasm-segment-sum.ts';
import { readTokensExactly, textPass, type Tokenization } from './input-pass.ts';
import type { SentenceEncoder } from './sentence-encoder.ts';
import { tokenCacheStore } from './token-cache.ts';
import { loadTextTokenizer, type TextTokenizer } from './tokenizer.ts';
// graft's encoder layers must be registered before its model.json can be loaded.
import './graft-encoder/layers.ts';

/** Texts per inference call (features, validation, evaluation). */
export const TEXT_INFERENCE_BATCH = 32;

export async function openTextEncoder(base: ResolvedBase, opts: OpenEncoderOptions): Promise<TaskEncoder> {
  const descriptor = base.descriptor;
  if (!isTextBase(descriptor)) throw new TrainingError('task_mismatch', `Base model "${descriptor.id}" is an ${descriptor.task} base, not a text one.`);
  if (descriptor.format === 'tfjs-layers') return openLayersTextEncoder(base, descriptor, opts);
  if (descriptor.format === 'onnx') return openOnnxEncoder(base, descriptor, opts);
  if (descriptor.format === 'tfjs-graph') return openGraphEncoder(base, descriptor, opts);
  throw new TrainingError('base_model_unavailable', `Base model "${descriptor.id}" is a ${descriptor.format} text encoder, which this engine cannot train on yet.`);
}

/**
 * A Universal-Sentence-Encoder-style graph by URL (source `use`: model.json and vocab.json URLs,
 * fetched once into the hosted cache), frozen, read at node `cutLayer`. The bundle carries the
 * graph and its vocabulary (`encoder/`), every checkpoint too.
 */
async function openGraphEncoder(base: ResolvedBase, descriptor: TextBaseModel, opts: OpenEncoderOptions): Promise<TaskEncoder> {
  const { source } = base;
  const maxLength = descriptor.preprocessing.maxLength;
  let enc: import('./use/use-encoder.ts').UseTextEncoder;
  if (source.kind === 'use') {
    const { openUseEncoder } = await import('./use/use-encoder.ts');
    enc = await openUseEncoder(
      { modelUrl: source.modelUrl, vocabUrl: source.vocabUrl, outputNode: opts.cutLayer, maxLength, ...(source.modelSha256 ? { modelSha256: source.modelSha256 } : {}) },
      { ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}), ...(opts.signal ? { signal: opts.signal } : {}) },
    );
  } else if (source.kind === 'directory') {
    // A registered graph: fetched once at registration into its folder (model.json, shards, vocab.json).
    const { openUseFolder } = await import('./use/inspect.ts');
    enc = await openUseFolder(source.dir, { maxLength, outputNode: opts.cutLayer, name: descriptor.id }).catch((err: unknown) => {
      if (err instanceof TrainingError) throw err;
      throw new TrainingError('base_model_unavailable', `Base model "${descriptor.id}" cannot be loaded: ${(err as Error).message}`);
    });
  } else {
    throw new TrainingError('base_model_unavailable', `Base model "${descriptor.id}" is a text graph from a ${source.kind} source; text graphs load by URL or from a registered folder.`);
  }
  try {
    const vocab = { name: 'encoder/vocab.json', data: Buffer.from(JSON.stringify(enc.vocabulary)) };
    const graph = await graphFiles(enc.graph);
    const spec = textBundleFile({
      kind: 'graft-text',
      version: 1,
      encoder: { format: 'tfjs-graph', outputNode: enc.outputNode },
      tokenizer: { kind: 'unigram', files: [vocab.name], lowercase: false },
      maxLength: enc.maxLength,
      pooling: 'none',
      batchSize: TEXT_INFERENCE_BATCH,
    });
    return frozenTextEncoder(descriptor, enc, {
      inputIdentity: { tokenizer: tokenizerIdentity([vocab]), maxLength: enc.maxLength },
      frozenOnly: { code: 'graph_model_frozen', message: `${descriptor.id} is a graph model: it can only be a frozen feature extractor.` },
      bundleFiles: async () => [...graph, vocab, spec],
    });
  } catch (err) {
    enc.dispose();
    throw err;
  }
}

/** A graph model's files for the bundle: `encoder/model.json` + `encoder/weights.bin`. */
async function graphFiles(graph: tf.GraphModel): Promise<ZipInput[]> {
  const files: ZipInput[] = [];
  await graph.save({
    save: async (a) => {
      if (!(a.modelTopology && a.weightSpecs && a.weightData)) throw new Error('graph model artifacts lack topology or weights');
      const modelJson: tf.io.ModelJSON = {
        modelTopology: a.modelTopology,
        format: a.format ?? 'graph-model',
        generatedBy: a.generatedBy,
        convertedBy: a.convertedBy,
        weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
        ...(a.signature ? { signature: a.signature } : {}),
        ...(a.userDefinedMetadata ? { userDefinedMetadata: a.userDefinedMetadata } : {}),
        ...(a.modelInitializer ? { modelInitializer: a.modelInitializer } : {}),
        ...(a.initializerSignature ? { initializerSignature: a.initializerSignature } : {}),
      };
      files.push({ name: 'encoder/model.json', data: Buffer.from(JSON.stringify(modelJson)) });
      const weights = Array.isArray(a.weightData) ? Buffer.concat(a.weightData.map((b) => Buffer.from(b))) : Buffer.from(a.weightData);
      files.push({ name: 'encoder/weights.bin', data: weights });
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  });
  return files;
}

/** Where a stored ONNX base keeps its graph (`inspectOnnxTextBase` moves the chosen file there), and its external data. */
const ONNX_MODEL_FILE = 'model.onnx';

/**
 * A registered ONNX encoder (a folder: model.onnx, config.json, tokenizer files), frozen, on
 * onnxruntime-node; its output `cutLayer` (the descriptor's featureLayer) pooled by its rule.
 */
async function openOnnxEncoder(base: ResolvedBase, descriptor: TextBaseModel, opts: OpenEncoderOptions): Promise<TaskEncoder> {
  const { source } = base;
  if (source.kind !== 'directory') throw new TrainingError('base_model_unavailable', `Base model "${descriptor.id}" is an ONNX encoder from a ${source.kind} source; ONNX encoders load from their stored folder.`);
  const dir = source.dir;
  const pre = descriptor.preprocessing;
  const pooling = pre.pooling === 'cls' ? 'cls' : 'mean';
  const { openOnnxTextEncoder } = await import('./onnx/onnx-encoder.ts');
  const enc = await openOnnxTextEncoder(dir, { modelFile: ONNX_MODEL_FILE, outputName: opts.cutLayer, pooling, maxLength: pre.maxLength });
  try {
    const tokenizerFiles = await readTokenizerFiles(dir, enc.tokenizer);
    const modelPath = join(dir, ONNX_MODEL_FILE);
    const dataPath = `${modelPath}_data`;
    const hasData = await stat(dataPath).then((st) => st.isFile(), () => false);
    const sha256 = await sha256File(modelPath);
    const bytes = (await stat(modelPath)).size + (hasData ? (await stat(dataPath)).size : 0);
    const limit = opts.maxBundledEncoderBytes ?? BUNDLED_ENCODER_MAX_BYTES_DEFAULT;
    const shipped = bytes <= limit;
    const encoder: TextBundleEncoder = {
      format: 'onnx',
      file: shipped ? `encoder/${ONNX_MODEL_FILE}` : null,
      sha256,
      bytes,
      source: `${descriptor.id}: ${descriptor.source}`,
      outputName: enc.outputName,
      inputNames: [...enc.inputNames],
    };
    const specFile = (e: TextBundleEncoder) =>
      textBundleFile({
        kind: 'graft-text',
        version: 1,
        encoder: e,
        tokenizer: { kind: enc.tokenizer.kind, files: [...enc.tokenizer.files], lowercase: enc.tokenizer.lowercase },
        maxLength: enc.maxLength,
        pooling,
        batchSize: TEXT_INFERENCE_BATCH,
      });
    const config = { name: 'encoder/config.json', data: await readFile(join(dir, 'config.json')) };
    // The encoder file is streamed into the zip from the base's folder, never read into memory here.
    const encoderFiles: ZipInput[] = shipped
      ? [{ name: `encoder/${ONNX_MODEL_FILE}`, file: modelPath }, ...(hasData ? [{ name: `encoder/${ONNX_MODEL_FILE}_data`, file: dataPath }] : [])]
      : [];
    return frozenTextEncoder(descriptor, enc, {
      inputIdentity: { tokenizer: tokenizerIdentity(tokenizerFiles), maxLength: enc.maxLength },
      frozenOnly: {
        code: 'base_model_unusable',
        message: `${descriptor.id} is an ONNX encoder run by ONNX Runtime: it can only be a frozen feature extractor (trainableLayers "none", no scratch baseline).`,
      },
      // Checkpoints name the encoder only: a frozen encoder is the same file in every one of them.
      bundleFiles: async (use = 'model') =>
        use === 'checkpoint' ? [...tokenizerFiles, config, specFile({ ...encoder, file: null })] : [...tokenizerFiles, config, ...encoderFiles, specFile(encoder)],
    });
  } catch (err) {
    enc.dispose();
    throw err;
  }
}

/** The folder holding a tfjs text base's tokenizer files (unpacked from a model zip when the base is a fine-tune). */
async function tokenizerFolder(base: ResolvedBase, opts: OpenEncoderOptions): Promise<{ dir: string; release(): Promise<void> }> {
  const { source } = base;
  if (source.kind === 'directory') return { dir: source.dir, release: async () => {} };
  if (source.kind === 'model-zip') return unpackModelZipCached(source.path, opts.cacheDir === undefined ? defaultModelCacheDir() : opts.cacheDir);
  throw new TrainingError('base_model_unavailable', `Base model "${base.descriptor.id}" is a text encoder from a ${source.kind} source; text encoders load from a folder or a graft model zip.`);
}

async function openLayersTextEncoder(base: ResolvedBase, descriptor: TextBaseModel, opts: OpenEncoderOptions): Promise<TaskEncoder> {
  registerWasmTextGradientKernels();
  const pre = descriptor.preprocessing;
  const folder = await tokenizerFolder(base, opts);
  let tokenizerFiles: { name: string; data: Uint8Array }[];
  let textTokenizer: TextTokenizer;
  try {
    textTokenizer = await loadTextTokenizer(folder.dir);
    tokenizerFiles = await readTokenizerFiles(folder.dir, textTokenizer);
  } catch (err) {
    throw new TrainingError('base_model_unavailable', `Base model "${descriptor.id}" has no usable tokenizer: ${(err as Error).message}`);
  } finally {
    await folder.release().catch(() => {});
  }
  if (textTokenizer.vocabSize !== pre.tokenizer.vocabSize) {
    throw new TrainingError('base_model_unavailable', `Base model "${descriptor.id}": its tokenizer has ${textTokenizer.vocabSize} tokens, its description says ${pre.tokenizer.vocabSize}.`);
  }
  const opened = await openBase(base, { ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}), signal: opts.signal });
  const layers = opened.layers!;
  const dispose = () => releaseWeights([layers]);
  try {
    const cut = cutBase(layers, opts.cutLayer);
    const shape = cut.outputs[0]!.shape;
    if (shape.length !== 2 || shape[1] == null) {
      throw new TrainingError(
        'invalid_cut_layer',
        `A text encoder is cut where one vector per text comes out (its pooled layer, "${descriptor.featureLayer}"); "${opts.cutLayer}" gives [${shape.map((d) => d ?? 'n').join(', ')}].`,
      );
    }
    const dim = shape[1];
    const tokenizer = tokenization(textTokenizer, tokenizerFiles, pre.maxLength);
    // `training: false`: inference mode (no dropout) for the frozen encoder.
    const run = (x: tf.Tensor | tf.Tensor[]) => cut.apply(x, { training: false }) as tf.Tensor;
    const previous: PreviousFineTune | null = opened.previous ? { ...opened.previous, model: layers } : null;
    const encoder: TextBundleEncoder = { format: 'tfjs-layers' };
    return {
      cut,
      frozenOnly: null,
      featureShape: [dim],
      pooling: 'none',
      dim,
      run,
      inferenceBatchSize: TEXT_INFERENCE_BATCH,
      inputIdentity: { tokenizer: tokenizer.identity, maxLength: pre.maxLength },
      previous,
      inputs: {
        pass: (rowsPath, o) => textPass(rowsPath, tokenizer, { kind: 'tokens', run, dim, batchSize: TEXT_INFERENCE_BATCH }, dim, o),
        readExact: (rowsPath, examples, signal) => readTokensExactly(rowsPath, examples, tokenizer, TEXT_INFERENCE_BATCH, signal),
        cache: tokenCacheStore({ tokenizer: tokenizer.identity, maxLength: pre.maxLength, padId: tokenizer.padId }),
        describePass: describe(descriptor),
      },
      bundleFiles: async () => [
        ...tokenizerFiles,
        textBundleFile({ kind: 'graft-text', version: 1, encoder, tokenizer: { ...pre.tokenizer }, maxLength: pre.maxLength, pooling: pre.pooling, batchSize: TEXT_INFERENCE_BATCH }),
      ],
      dispose,
    };
  } catch (err) {
    dispose();
    throw err;
  }
}

/** The tokenizer's files as the bundle carries them (at the zip root). */
export async function readTokenizerFiles(dir: string, tokenizer: TextTokenizer): Promise<{ name: string; data: Uint8Array }[]> {
  return Promise.all(tokenizer.files.map(async (name) => ({ name, data: await readFile(join(dir, name)) })));
}

export function tokenization(tokenizer: TextTokenizer, files: readonly { name: string; data: Uint8Array }[], maxLength: number): Tokenization {
  return { identity: tokenizerIdentity(files), maxLength, padId: tokenizer.padId, row: (text) => tokenizer.encode([text], maxLength).inputIds };
}

/**
 * A frozen-only sentence encoder (ONNX, USE-style graph) as the task's encoder: features from
 * `embed` on raw texts; no tfjs model to unfreeze or run per batch, no input cache (nothing reads
 * raw inputs per batch when nothing can be unfrozen or augmented).
 */
export function frozenTextEncoder(
  descriptor: TextBaseModel,
  sentences: SentenceEncoder,
  o: { inputIdentity: Record<string, unknown>; frozenOnly: { code: string; message: string }; bundleFiles(use?: 'model' | 'checkpoint'): Promise<ZipInput[]> },
): TaskEncoder {
  const dim = sentences.dim;
  return {
    cut: null,
    frozenOnly: o.frozenOnly,
    featureShape: [dim],
    pooling: 'none',
    dim,
    run: null,
    inferenceBatchSize: TEXT_INFERENCE_BATCH,
    inputIdentity: o.inputIdentity,
    previous: null,
    inputs: {
      pass: (rowsPath, p) => textPass(rowsPath, null, { kind: 'texts', encoder: sentences, batchSize: TEXT_INFERENCE_BATCH }, dim, p),
      readExact: () => {
        throw new Error(`${descriptor.id} runs outside tfjs: its examples are scored on their features`);
      },
      cache: noInputCache(descriptor.id),
      describePass: describe(descriptor),
    },
    bundleFiles: o.bundleFiles,
    dispose: () => sentences.dispose(),
  };
}

function noInputCache(id: string): InputCacheStore {
  const refuse = () => {
    throw new Error(`${id} is a frozen-only encoder: no phase reads its raw inputs per batch`);
  };
  return { eventType: 'tokens', files: refuse, open: refuse, create: refuse, reused: refuse, stored: refuse };
}

function describe(descriptor: TextBaseModel) {
  return ({ count, features, storing }: { count: number; features: 'all' | 'validation' | null; storing: boolean }) => ({
    start:
      `Tokenizing ${count} texts once` +
      (features ? ` and computing ${descriptor.name} sentence vectors${features === 'validation' ? ' of the validation texts' : ''}` : '') +
      (storing ? '; storing the token ids for the epochs that need them' : '') +
      '.',
    progress: (done: number, total: number) => `Encoded ${done} of ${total} texts.`,
  });
}

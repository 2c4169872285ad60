/**
 * Opens a base model, wherever its weights are (`ResolvedBase.source`): a directory, the nsfwjs
 * package's bundled models, a hosted URL (fetched once into a disk cache), or a graft model zip.
 * Layers models come back as a tf.LayersModel; graph models as a tf.GraphModel plus a function that
 * runs them to their feature node (a graph can only be a frozen feature extractor).
 */
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BaseModel } from '@graft/contracts';
import type { BaseModelSource, ResolvedBase } from './base-source.ts';
import { TrainingCancelled, TrainingError } from '../errors.ts';
import { assertFeatureNode, detectModelFormat, runGraphToNode, type ModelFormat } from './graph-base.ts';
import { fetchHostedModel } from './hosted-cache.ts';
import { jsonLoader, type WeightFileReader } from './model-io.ts';
import { unpackModelZipCached } from './model-zip.ts';
import { safeRelativePath, defaultModelCacheDir } from './hosted-cache.ts';

const require = createRequire(import.meta.url);

/** Layers of a graft fine-tune's head (train/head.ts names them `graft_head_*`). */
export const HEAD_LAYER_PREFIX = 'graft_head_';

export interface OpenedBase {
  descriptor: BaseModel;
  format: ModelFormat;
  /** layers format */
  layers: tf.LayersModel | null;
  /** graph format: frozen feature extractor only */
  graph: tf.GraphModel | null;
  /** The layer (layers) or node (graph) features are taken at: `opts.cutLayer`, else the descriptor's featureLayer. */
  cutLayer: string;
  /** graph format: run the graph to the feature node; returns [batch, ...featureShape]. */
  graphFeatures?(x: tf.Tensor4D): tf.Tensor;
  /** For a base that is a previous graft fine-tune (model-zip): its labels and the names of its head layers (`graft_head_*`). */
  previous: { labels: string[]; headLayerNames: string[] } | null;
  dispose(): void;
}

export interface OpenBaseOptions {
  /**
   * Where hosted models and unpacked model zips are cached (`<cacheDir>/hosted/…`, `<cacheDir>/model-zips/…`).
   * Default: GRAFT_MODEL_CACHE_DIR, else `<tmpdir>/graft-model-cache`. null: private temporary directories, removed after loading.
   */
  cacheDir?: string | null;
  signal?: AbortSignal;
  /** For `url` sources (tests inject one). */
  fetch?: typeof fetch;
  /** graph format: the node to run to, instead of the descriptor's featureLayer. Checked to exist. */
  cutLayer?: string;
}

interface Artifacts {
  modelJson: tf.io.ModelJSON;
  readWeights: WeightFileReader;
  /** Files next to model.json (directory, url, model-zip sources). */
  dir: string | null;
}

/**
 * Loads a base. Errors are TrainingError: `base_model_unavailable` (weights missing or unreadable,
 * a hosted model that cannot be fetched and is not cached, a format other than the descriptor's),
 * `invalid_cut_layer` (a graph's feature node is missing); TrainingCancelled when `signal` aborts.
 */
export async function openBase(base: ResolvedBase, opts: OpenBaseOptions = {}): Promise<OpenedBase> {
  const { descriptor, source } = base;
  const cacheDir = opts.cacheDir === undefined ? defaultModelCacheDir() : opts.cacheDir;
  const releases: (() => Promise<void>)[] = [];
  const checkCancelled = () => { if (opts.signal?.aborted) throw new TrainingCancelled(); };
  let layers: tf.LayersModel | null = null;
  let graph: tf.GraphModel | null = null;
  try {
    checkCancelled();
    const art = await artifactsFor(source, { ...opts, cacheDir }, releases);
    checkCancelled();
    let format: ModelFormat;
    try {
      format = detectModelFormat(art.modelJson);
    } catch (err) {
      throw unavailable(descriptor, (err as Error).message);
    }
    if (format !== descriptor.format) {
      throw unavailable(descriptor, `its model.json is a ${format} model but the base is described as ${descriptor.format}`);
    }
    const cutLayer = opts.cutLayer ?? descriptor.featureLayer;
    const handler = jsonLoader(art.modelJson, art.readWeights);
    if (format === 'tfjs-graph') {
      assertFeatureNode(art.modelJson, cutLayer);
      graph = await tf.loadGraphModel(handler).catch((err: Error) => { throw unavailable(descriptor, err.message); });
    } else {
      layers = await tf.loadLayersModel(handler).catch((err: Error) => { throw unavailable(descriptor, err.message); });
    }
    const previous = source.kind === 'model-zip' && art.dir && layers ? await previousFineTune(art.dir, layers) : null;
    checkCancelled();
    const g = graph;
    const opened: OpenedBase = {
      descriptor,
      format,
      layers,
      graph,
      cutLayer,
      previous,
      dispose() {
        layers?.dispose();
        g?.dispose();
      },
    };
    if (g) opened.graphFeatures = (x: tf.Tensor4D) => runGraphToNode(g, x, cutLayer);
    return opened;
  } catch (err) {
    layers?.dispose();
    graph?.dispose();
    if (opts.signal?.aborted && !(err instanceof TrainingCancelled)) throw new TrainingCancelled();
    if (err instanceof TrainingError || err instanceof TrainingCancelled) throw err;
    throw unavailable(descriptor, (err as Error).message);
  } finally {
    // Weights are in memory now: private temporary copies can go.
    for (const release of releases) await release().catch(() => {});
  }
}

async function artifactsFor(source: BaseModelSource, opts: OpenBaseOptions & { cacheDir: string | null }, releases: (() => Promise<void>)[]): Promise<Artifacts> {
  switch (source.kind) {
    case 'directory':
      return directoryArtifacts(source.dir);
    case 'nsfwjs':
      return nsfwjsArtifacts(source.model);
    case 'url': {
      const hosted = await fetchHostedModel(source.url, { cacheDir: opts.cacheDir, sha256: source.sha256, signal: opts.signal, fetch: opts.fetch });
      releases.push(hosted.release);
      return directoryArtifacts(hosted.dir);
    }
    case 'model-zip': {
      const unpacked = await unpackModelZipCached(source.path, opts.cacheDir);
      releases.push(unpacked.release);
      return directoryArtifacts(unpacked.dir);
    }
    default:
      throw new Error(`unknown base source ${JSON.stringify(source)}`);
  }
}

async function directoryArtifacts(dir: string): Promise<Artifacts> {
  let text: string;
  try {
    text = await readFile(join(dir, 'model.json'), 'utf8');
  } catch (err) {
    throw new Error(`${join(dir, 'model.json')} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const modelJson = JSON.parse(text) as tf.io.ModelJSON;
  return {
    modelJson,
    dir,
    readWeights: async (p) => {
      const rel = safeRelativePath(p);
      if (!rel) throw new Error(`weights path "${p}" leaves the model directory`);
      return readFile(join(dir, rel));
    },
  };
}

/**
 * nsfwjs ships each model as modules: `model.min.js` exports the model.json object and
 * `group1-shardNofM.min.js` export the weight shards as base64 strings (uint8-quantized; tfjs
 * dequantizes them from the manifest).
 */
function nsfwjsArtifacts(name: string): Artifacts {
  if (!['mobilenet_v2', 'inception_v3', 'mobilenet_v2_mid'].includes(name)) throw new Error(`nsfwjs has no model "${name}"`);
  // The package's exports map hides dist/models; resolve its entry point and walk from there.
  const dir = join(dirname(require.resolve('nsfwjs')), '..', 'models', name);
  const modelJson = require(join(dir, 'model.min.js')) as tf.io.ModelJSON;
  return {
    modelJson,
    dir: null,
    readWeights: async (p) => {
      if (!/^[\w-]+$/.test(p)) throw new Error(`unexpected shard name "${p}"`);
      const base64 = require(join(dir, `${p}.min.js`)) as unknown;
      if (typeof base64 !== 'string') throw new Error(`shard ${p} is not a base64 string`);
      return Buffer.from(base64, 'base64');
    },
  };
}

async function previousFineTune(dir: string, model: tf.LayersModel): Promise<{ labels: string[]; headLayerNames: string[] }> {
  let labels: unknown;
  try {
    labels = JSON.parse(await readFile(join(dir, 'labels.json'), 'utf8'));
  } catch (err) {
    throw new Error(`the model zip has no readable labels.json (${(err as Error).message})`);
  }
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) throw new Error('labels.json of the model zip is not an array of strings');
  return { labels, headLayerNames: model.layers.filter((l) => l.name.startsWith(HEAD_LAYER_PREFIX)).map((l) => l.name) };
}

function unavailable(descriptor: BaseModel, detail: string): TrainingError {
  return new TrainingError('base_model_unavailable', `Base model "${descriptor.id}" cannot be loaded: ${detail}`);
}

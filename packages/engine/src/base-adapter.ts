/**
 * The one seam between training and base loading: a ResolvedBase (descriptor + where the weights
 * are) → what training needs: a tfjs LayersModel to cut (layers bases) or a frozen feature function
 * (graph bases), plus what a previous graft fine-tune carries (its labels and head). Loading itself
 * (directory, nsfwjs, url, model-zip; layers or graph) is load-base.ts's `openBase`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { ResolvedBase } from './base-source.ts';
import { HEAD_LAYER_PREFIX, openBase } from './load-base.ts';

export { HEAD_LAYER_PREFIX } from './load-base.ts';

export interface TrainingBase {
  /** Layers bases: the whole model (cut by freezing.ts). */
  model: tf.LayersModel | null;
  /** Graph bases: the frozen feature function, run to the cut node (inference only). */
  graph: null | { model: tf.GraphModel; node: string; features(x: tf.Tensor4D): tf.Tensor };
  /** Set when the base is a previous graft fine-tune (its classes and head layers). */
  previous: null | { labels: string[]; headLayerNames: string[] };
  dispose(): void;
}

export interface OpenTrainingBaseOptions {
  /** The cut layer (graph bases: the node to run to). */
  cutLayer: string;
  /** Where hosted models and unpacked model zips are cached; undefined → the loader's default (GRAFT_MODEL_CACHE_DIR). */
  cacheDir?: string;
  signal?: AbortSignal;
}

export async function openTrainingBase(base: ResolvedBase, opts: OpenTrainingBaseOptions): Promise<TrainingBase> {
  const opened = await openBase(base, {
    ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}),
    signal: opts.signal,
    // Graph bases are checked against (and run to) this node; layers bases are cut by freezing.ts.
    ...(base.descriptor.format === 'tfjs-graph' ? { cutLayer: opts.cutLayer } : {}),
  });
  const graph = opened.graph && opened.graphFeatures ? { model: opened.graph, node: opened.cutLayer, features: opened.graphFeatures } : null;
  const previous = opened.previous
    ? { labels: opened.previous.labels, headLayerNames: opened.previous.headLayerNames.filter((n) => n.startsWith(HEAD_LAYER_PREFIX)) }
    : null;
  return { model: opened.layers, graph, previous, dispose: () => opened.dispose() };
}

/**
 * What identifies a base's weights, for cache keys: the content hash of a directory's model.json
 * and weight files or of a model zip; the package and model of an nsfwjs source; the URL (and its
 * sha256 when given) of a hosted model. Never a local path alone.
 */
export async function sourceIdentity(base: ResolvedBase): Promise<string> {
  const { source, descriptor } = base;
  switch (source.kind) {
    case 'directory': {
      const hash = createHash('sha256');
      const modelJson = await readFile(join(source.dir, 'model.json'));
      hash.update(modelJson);
      const parsed = JSON.parse(modelJson.toString('utf8')) as tf.io.ModelJSON;
      for (const group of parsed.weightsManifest ?? []) {
        for (const p of group.paths) {
          const rel = normalize(p);
          if (isAbsolute(rel) || rel.startsWith('..')) throw new Error(`weights path "${p}" leaves the model directory`);
          await hashFile(hash, join(source.dir, rel));
        }
      }
      return `directory:sha256:${hash.digest('hex')}`;
    }
    case 'model-zip': {
      const hash = createHash('sha256');
      await hashFile(hash, source.path);
      return `model-zip:sha256:${hash.digest('hex')}`;
    }
    case 'nsfwjs':
      return `nsfwjs:${source.model}:${descriptor.source}`;
    case 'url':
      return `url:${source.url}${source.sha256 ? `:sha256:${source.sha256}` : ''}`;
  }
}

async function hashFile(hash: ReturnType<typeof createHash>, path: string): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

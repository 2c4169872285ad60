/**
 * Registering a USE-style graph encoder by URL (`POST /v1/base-models`, `format: "tfjs-graph"`, run
 * in the API's inspector child): the graph's model.json with its shards and the vocab.json are
 * fetched once into the base's folder (through the caller's fetch: the outbound guard), then opened
 * as a job opens them and two texts embedded. What that measures is the base's descriptor; jobs
 * read the stored folder, never the URLs again.
 */
import { cp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fetchHostedModel } from '../../../bases/hosted-cache.ts';
import { directoryLoader } from '../../../bases/model-io.ts';
import { assertVocabulary, type Vocabulary } from './sentencepiece.ts';
import { fetchVocabulary, useEncoderFrom, type UseTextEncoder } from './use-encoder.ts';

export const USE_VOCAB_FILE = 'vocab.json';

export interface UseBaseInspection {
  format: 'tfjs-graph';
  outputNode: string;
  dim: number;
  maxLength: number;
  vocabSize: number;
  /** Bytes of the stored files. */
  bytes: number;
}

/** Fetches the graph (model.json + shards) and its vocabulary into `dir`. */
export async function fetchUseGraph(modelUrl: string, vocabUrl: string, dir: string, o: { fetch: typeof fetch; maxBytes: number; timeoutMs: number }): Promise<void> {
  const hosted = await fetchHostedModel(modelUrl, { cacheDir: null, fetch: o.fetch, limits: { maxTotalBytes: o.maxBytes, timeoutMs: o.timeoutMs } });
  try {
    await cp(hosted.dir, dir, { recursive: true });
  } finally {
    await hosted.release();
  }
  const vocab = await fetchVocabulary(vocabUrl, { cacheDir: null, fetch: o.fetch });
  await writeFile(join(dir, USE_VOCAB_FILE), JSON.stringify(vocab));
}

/** A stored USE-style base's folder opened as its encoder (graph from model.json, vocab.json beside it). */
export async function openUseFolder(dir: string, o: { maxLength: number; outputNode?: string; name: string }): Promise<UseTextEncoder> {
  const vocab = JSON.parse(await readFile(join(dir, USE_VOCAB_FILE), 'utf8')) as unknown;
  assertVocabulary(vocab);
  const graph = await tf.loadGraphModel(await directoryLoader(dir));
  try {
    return await useEncoderFrom(graph, vocab as Vocabulary, o);
  } catch (err) {
    graph.dispose();
    throw err;
  }
}

/** Opens the fetched folder and embeds two texts: one finite `[dim]` vector each. */
export async function inspectUseBase(dir: string, claim: { maxLength?: number; outputNode?: string }, name: string): Promise<UseBaseInspection> {
  const enc = await openUseFolder(dir, { maxLength: claim.maxLength ?? 256, ...(claim.outputNode !== undefined ? { outputNode: claim.outputNode } : {}), name });
  try {
    const texts = ['A short sentence to check the encoder.', 'Another one, a little longer, to check a batch of two.'];
    const v = await enc.embed(texts);
    if (v.length !== texts.length * enc.dim || !v.every(Number.isFinite)) throw new Error(`${name} gives non-finite sentence vectors for a plain English sentence`);
    let bytes = 0;
    for (const f of await readdir(dir)) bytes += (await stat(join(dir, f))).size;
    return { format: 'tfjs-graph', outputNode: enc.outputNode, dim: enc.dim, maxLength: enc.maxLength, vocabSize: enc.vocabulary.length, bytes };
  } finally {
    enc.dispose();
  }
}

/**
 * What the worker hands the engine about a base, whatever its origin (graft's catalog, a base a
 * user uploaded or named by URL, or a succeeded fine-tune). No TensorFlow here.
 */
import type { BaseModel } from '@graft/contracts';

/** Where a base's weights come from; engine-internal, never sent to clients. */
export type BaseModelSource =
  /** model.json + weight shards in a directory (graft's own bases, user uploads once unpacked). */
  | { kind: 'directory'; dir: string }
  /** A model shipped by the nsfwjs npm package as base64 JS modules. */
  | { kind: 'nsfwjs'; model: 'mobilenet_v2' | 'inception_v3' | 'mobilenet_v2_mid' }
  /** A hosted tfjs model (layers or graph) fetched over HTTP(S) and cached on disk, checked by sha256 when given. */
  | { kind: 'url'; url: string; sha256?: string }
  /** A graft model zip: the output of a previous fine-tune. */
  | { kind: 'model-zip'; path: string }
  /** A Universal-Sentence-Encoder-style text graph by URL with its SentencePiece vocab.json (tasks/text/use/), fetched once and cached. */
  | { kind: 'use'; modelUrl: string; vocabUrl: string; modelSha256?: string };

export interface ResolvedBase {
  descriptor: BaseModel;
  source: BaseModelSource;
}

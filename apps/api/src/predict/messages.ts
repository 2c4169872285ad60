/** What the API and its prediction threads say to each other. */
export interface ThreadRequest {
  id: number;
  /** Storage key of the model zip: the cache key (keys carry ids, so a key never names two models). */
  key: string;
  /** A local path of the zip (read once, when the model is not loaded yet). */
  path: string;
  /** The zip's size: what the model counts against the cache bound. */
  bytes: number;
  inputs: (string | Uint8Array)[];
  topK?: number | undefined;
}

export interface ThreadPrediction {
  label: string;
  probabilities: number[];
  topK: { label: string; probability: number }[];
}

/** The thread's first message: its code is loaded and its TensorFlow.js backend ready. */
export interface ThreadReady {
  ready: true;
}

export type ThreadReply =
  | { id: number; ok: true; task: string; labels: string[]; predictions: ThreadPrediction[]; runtime: { name: 'onnx' | 'tfjs'; reason: string | null }; loadMs: number; inferenceMs: number }
  | { id: number; ok: false; error: { code: 'invalid_input' | 'internal_error'; message: string; param?: string } };

export interface ThreadData {
  /** Bound of this thread's loaded models, in model zip bytes. */
  maxCacheBytes: number;
}

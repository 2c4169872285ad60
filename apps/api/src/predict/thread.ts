/**
 * A prediction thread: keeps loaded models warm (least recently used unloaded first once their
 * zip sizes pass the thread's bound) and answers one request at a time with `loadPredictor`, the
 * engine's one loader of model bundles, so every task's bundle (images, texts) predicts here.
 * TensorFlow.js runs in this thread, never on the API's event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { frozenRuntimeSetting, initBackend, loadPredictor, TrainingError, type Predictor } from '@graft/engine';
import type { ThreadData, ThreadReady, ThreadReply, ThreadRequest } from './messages.ts';

const { maxCacheBytes } = workerData as ThreadData;
/** Insertion order is recency: a hit is moved to the end. */
const loaded = new Map<string, { predictor: Predictor; bytes: number }>();
let loadedBytes = 0;
const backend = initBackend();

async function model(req: ThreadRequest): Promise<{ predictor: Predictor; hit: boolean }> {
  const hit = loaded.get(req.key);
  if (hit) {
    loaded.delete(req.key);
    loaded.set(req.key, hit);
    return { predictor: hit.predictor, hit: true };
  }
  // Image layers models on ONNX Runtime where GRAFT_FROZEN_RUNTIME allows it and the converted model checks out against tfjs.
  const predictor = await loadPredictor(req.path, { runtime: frozenRuntimeSetting((await backend).name).runtime });
  loaded.set(req.key, { predictor, bytes: req.bytes });
  loadedBytes += req.bytes;
  // The model just loaded stays, even alone over the bound: it is about to answer.
  for (const [key, m] of loaded) {
    if (loadedBytes <= maxCacheBytes || key === req.key) break;
    m.predictor.dispose();
    loaded.delete(key);
    loadedBytes -= m.bytes;
  }
  return { predictor, hit: false };
}

/** Why an input does not suit the model, or null. */
function wrongKind(task: string, input: string | Uint8Array): string | null {
  if (task === 'image-classification' && typeof input === 'string') return 'this model classifies images: send the image file (multipart `image`) or `{ "image": "<base64>" }`, not text';
  if (task === 'text-classification' && typeof input !== 'string') return 'this model classifies texts: send a string, not an image';
  return null;
}

async function handle(req: ThreadRequest): Promise<ThreadReply> {
  const started = performance.now();
  const { predictor, hit } = await model(req);
  const loadMs = hit ? 0 : performance.now() - started;
  for (const [i, input] of req.inputs.entries()) {
    const why = wrongKind(predictor.task, input);
    if (why) return { id: req.id, ok: false, error: { code: 'invalid_input', message: `Input ${i}: ${why}.`, param: `inputs.${i}` } };
  }
  const inferenceStarted = performance.now();
  try {
    const predictions = await predictor.predict(req.inputs, { topK: req.topK });
    return { id: req.id, ok: true, task: predictor.task, labels: predictor.labels, predictions, runtime: { name: predictor.runtime.name, reason: predictor.runtime.reason }, loadMs, inferenceMs: performance.now() - inferenceStarted };
  } catch (err) {
    if (!(err instanceof TrainingError) && !(err instanceof TypeError)) throw err;
    // Which input: each alone, until one fails the same way.
    for (const [i, input] of req.inputs.entries()) {
      const failed = await predictor.predict([input]).then(() => null, (e: Error) => e);
      if (failed) return { id: req.id, ok: false, error: { code: 'invalid_input', message: `Input ${i}: ${failed.message}`, param: `inputs.${i}` } };
    }
    return { id: req.id, ok: false, error: { code: 'invalid_input', message: (err as Error).message } };
  }
}

await backend;
parentPort!.postMessage({ ready: true } satisfies ThreadReady);

parentPort!.on('message', (req: ThreadRequest) => {
  handle(req).then(
    (reply) => parentPort!.postMessage(reply),
    (err: Error) => parentPort!.postMessage({ id: req.id, ok: false, error: { code: 'internal_error', message: err?.message ?? String(err) } } satisfies ThreadReply),
  );
});

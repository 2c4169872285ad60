/** A tfjs layers model's identity: its topology and every weight's bytes (ONNX cache keys, head checkpoints' base reference). */
import { createHash } from 'node:crypto';
import type * as tf from '@tensorflow/tfjs';

/**
 * sha256 over the model's topology (JSON) and each weight's name, shape and float32 bytes. Names as
 * the model declares them (`originalName`): tfjs makes variable names unique per process, so the
 * same base loaded twice would otherwise get two checksums.
 */
export function modelChecksum(model: tf.LayersModel): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(model.toJSON(null, false)));
  for (const w of model.weights) {
    const t = w.read();
    hash.update(`${w.originalName}:${t.shape.join('x')}:${t.dtype};`);
    const data = t.dataSync() as Float32Array;
    hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return hash.digest('hex');
}

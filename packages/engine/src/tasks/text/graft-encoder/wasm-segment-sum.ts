/**
 * tfjs-backend-wasm 4.22 has no `UnsortedSegmentSum`, the kernel tfjs' gradient of `gather` uses:
 * without it an Embedding layer (or any gather) cannot train on wasm ("Kernel 'UnsortedSegmentSum'
 * not registered for backend 'wasm'"). It is registered here as a composite of wasm's own
 * `ScatterNd`, which adds the updates of repeated indices (TF's scatter_nd semantics, checked in
 * the tests against the cpu backend), the same way the engine registers its conv gradient
 * composites (backend/wasm-conv-grad.ts).
 */
import * as tf from '@tensorflow/tfjs';

interface WasmBackendLike {
  incRef(dataId: tf.DataId): void;
}

let registered = false;

/** out[s, ...] = Σ_{i: ids[i] = s} x[i, ...] for s in [0, numSegments); ids outside that range are dropped. */
export function unsortedSegmentSumComposite(x: tf.Tensor, segmentIds: tf.Tensor, numSegments: number): tf.Tensor {
  return tf.tidy(() => {
    const idsRank = segmentIds.rank;
    const n = segmentIds.size;
    const inner = x.shape.slice(idsRank);
    const ids = segmentIds.reshape([n]).toInt();
    const valid = tf.logicalAnd(tf.greaterEqual(ids, 0), tf.less(ids, numSegments));
    // Out-of-range ids (TF drops them) go to an extra row that is sliced away.
    const safe = tf.where(valid, ids, tf.fill([n], numSegments, 'int32'));
    const updates = x.reshape([n, ...inner]);
    const summed = tf.scatterND(safe.reshape([n, 1]), updates, [numSegments + 1, ...inner]);
    return summed.slice(0, numSegments);
  });
}

/** Registers the composite for wasm when wasm lacks the kernel. Idempotent; returns whether it registered now. */
export function registerWasmTextGradientKernels(): boolean {
  if (registered || tf.getKernel('UnsortedSegmentSum', 'wasm')) return false;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { numSegments } = attrs as unknown as { numSegments: number };
      const result = unsortedSegmentSumComposite(inputs.x as tf.Tensor, inputs.segmentIds as tf.Tensor, numSegments);
      // Hand the result's buffer to the kernel's output (one more reference, then drop the temporary), as wasm-conv-grad.ts does.
      (backend as unknown as WasmBackendLike).incRef(result.dataId);
      const out: tf.TensorInfo = { dataId: result.dataId, shape: result.shape, dtype: result.dtype };
      result.dispose();
      return out;
    },
  });
  registered = true;
  return true;
}

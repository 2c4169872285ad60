/**
 * The wasm backend has no Conv2DBackpropFilter kernel, so a Conv2D layer cannot train on it (the
 * frozen-base fine-tune never needs one; scripts/make-mnist-base.ts does). This registers one built
 * from ops wasm has: per filter tap, a strided slice of the (padded) input times dy (im2col as a
 * sum of matMuls). NHWC, any stride/dilation, 'valid' | 'same' | explicit padding.
 */
import * as tf from '@tensorflow/tfjs';

interface Attrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
  dataFormat: 'NHWC' | 'NCHW';
  filterShape: [number, number, number, number];
  dilations?: number | [number, number];
}

const pair = (v: number | [number, number] | undefined): [number, number] => (v === undefined ? [1, 1] : typeof v === 'number' ? [v, v] : v);

/** dW[kh, kw, ci, co] = Σ_b,i,j x[b, i·s + kh·d − padTop, j·s + kw·d − padLeft, ci] · dy[b, i, j, co] */
export function conv2dBackpropFilterComposite(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
  if (attrs.dataFormat !== 'NHWC') throw new Error('conv2dBackpropFilterComposite supports NHWC only');
  const [kh, kw, ci, co] = attrs.filterShape;
  const [sh, sw] = pair(attrs.strides);
  const [dh, dw] = pair(attrs.dilations);
  const [b, h, w] = x.shape;
  const [, oh, ow] = dy.shape;
  let padTop = 0, padBottom = 0, padLeft = 0, padRight = 0;
  if (attrs.pad === 'same') {
    const th = Math.max((oh - 1) * sh + (kh - 1) * dh + 1 - h, 0);
    const tw = Math.max((ow - 1) * sw + (kw - 1) * dw + 1 - w, 0);
    padTop = Math.floor(th / 2); padBottom = th - padTop;
    padLeft = Math.floor(tw / 2); padRight = tw - padLeft;
  } else if (typeof attrs.pad === 'number') {
    padTop = padBottom = padLeft = padRight = attrs.pad;
  } else if (Array.isArray(attrs.pad)) {
    [padTop, padBottom] = attrs.pad[1];
    [padLeft, padRight] = attrs.pad[2];
  }
  return tf.tidy(() => {
    const xp = padTop || padBottom || padLeft || padRight ? tf.pad(x, [[0, 0], [padTop, padBottom], [padLeft, padRight], [0, 0]]) : x;
    const dyMat = dy.reshape([b * oh * ow, co]);
    const taps: tf.Tensor2D[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const patch = tf.stridedSlice(xp, [0, i * dh, j * dw, 0], [b, i * dh + (oh - 1) * sh + 1, j * dw + (ow - 1) * sw + 1, ci], [1, sh, sw, 1]);
        taps.push(tf.matMul(patch.reshape([b * oh * ow, ci]), dyMat, true, false));
      }
    }
    return tf.stack(taps).reshape([kh, kw, ci, co]);
  });
}

let registered = false;

/** Registers the composite as wasm's Conv2DBackpropFilter (once; a no-op if wasm already has one). */
export function registerWasmConv2DBackpropFilter(): void {
  if (registered || tf.getKernel('Conv2DBackpropFilter', 'wasm')) return;
  registered = true;
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs as unknown as { x: tf.Tensor4D; dy: tf.Tensor4D };
      const result = conv2dBackpropFilterComposite(x, dy, attrs as unknown as Attrs);
      // A kernel must return backend data the engine owns: copy the result into a fresh buffer.
      const values = result.dataSync();
      result.dispose();
      const wasm = backend as unknown as { makeOutput(shape: number[], dtype: string): tf.TensorInfo; typedArrayFromHeap(t: tf.TensorInfo): Float32Array };
      const out = wasm.makeOutput([...(attrs as unknown as Attrs).filterShape], 'float32');
      wasm.typedArrayFromHeap(out).set(values);
      return out;
    },
  });
}

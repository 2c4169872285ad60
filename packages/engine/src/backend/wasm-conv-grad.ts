/**
 * Gradient kernels the wasm backend lacks (tfjs-backend-wasm 4.22 has no `Conv2DBackpropFilter`,
 * `DepthwiseConv2dNativeBackpropFilter` or `DepthwiseConv2dNativeBackpropInput`), so a conv or
 * depthwise conv layer cannot train on it. Each is registered as a composite of ops wasm does have,
 * mostly its native (XNNPACK) forward convolutions:
 *
 * - Conv2DBackpropFilter: stride 1, im2col as one `matMul` per filter tap of a slice of the padded
 *   input with dy; stride > 1, one native convolution of the input (batch folded into channels) with
 *   dy as the filter, dilated by the stride.
 * - DepthwiseConv2dNativeBackpropFilter: one native depthwise convolution of the input (batch folded
 *   into channels) with dy as the filter, dilated by the stride: dF[kh,kw,c,q] = Σ_b,i,j xp[b, i·s +
 *   kh·d, j·s + kw·d, c] · dy[b,i,j,c·m+q]; then a sum over the batch.
 * - DepthwiseConv2dNativeBackpropInput (and Conv2DBackpropInput, registered only if absent): the
 *   transposed convolution as a native forward convolution of dy, spread by the stride and padded,
 *   with the filter rotated by 180°.
 *
 * NHWC only; any stride, dilation (1 where tfjs' own gradients require it), 'valid' | 'same' |
 * explicit padding, any channel multiplier. `registerWasmGradientKernels()` (called by `initBackend`
 * when it picks wasm) registers those missing, once.
 */
import * as tf from '@tensorflow/tfjs';

type Pad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];

interface ConvAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}
export interface FilterGradAttrs extends ConvAttrs { filterShape: [number, number, number, number] }
export interface InputGradAttrs extends ConvAttrs { inputShape: [number, number, number, number] }

/** Geometry of a forward conv, as tfjs' own kernels compute it (padding, output size). */
function geometry(xShape: number[], filterShape: number[], attrs: ConvAttrs, depthwise: boolean) {
  if (attrs.dataFormat && attrs.dataFormat !== 'NHWC') throw new Error(`wasm gradient composites support NHWC only, not ${attrs.dataFormat}`);
  const dilations = attrs.dilations ?? 1;
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    dilations,
    attrs.pad as 'valid',
    attrs.dimRoundingMode,
    depthwise,
  );
  return {
    b: info.batchSize, h: info.inHeight, w: info.inWidth, ci: info.inChannels,
    oh: info.outHeight, ow: info.outWidth, co: info.outChannels,
    kh: info.filterHeight, kw: info.filterWidth,
    sh: info.strideHeight, sw: info.strideWidth, dh: info.dilationHeight, dw: info.dilationWidth,
    padTop: info.padInfo.top, padBottom: info.padInfo.bottom, padLeft: info.padInfo.left, padRight: info.padInfo.right,
  };
}

/** Pads (positive amounts) or crops (negative amounts) the H and W axes of an NHWC tensor. */
function padOrCrop(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const cropT = Math.max(0, -top), cropB = Math.max(0, -bottom), cropL = Math.max(0, -left), cropR = Math.max(0, -right);
  let y = x;
  if (cropT || cropB || cropL || cropR) y = tf.slice(y, [0, cropT, cropL, 0], [b, h - cropT - cropB, w - cropL - cropR, c]);
  const pT = Math.max(0, top), pB = Math.max(0, bottom), pL = Math.max(0, left), pR = Math.max(0, right);
  if (pT || pB || pL || pR) y = tf.pad(y, [[0, 0], [pT, pB], [pL, pR], [0, 0]]);
  return y;
}

/** Inserts stride−1 zeros between the rows and columns of an NHWC tensor: [b, (h−1)·sh+1, (w−1)·sw+1, c]. */
function spread(x: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return x;
  const [b, h, w, c] = x.shape;
  const wide = tf.pad(x.reshape([b, h, 1, w, 1, c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
  return tf.slice(wide.reshape([b, h * sh, w * sw, c]) as tf.Tensor4D, [0, 0, 0, 0], [b, (h - 1) * sh + 1, (w - 1) * sw + 1, c]);
}

/**
 * dx of a forward conv: the forward conv of dy spread by the stride, padded so that tap k of the
 * (dilated) filter lands where it read from, with the filter rotated by 180°.
 */
function transposedConvInput(dy: tf.Tensor4D, g: ReturnType<typeof geometry>): tf.Tensor4D {
  const effH = (g.kh - 1) * g.dh + 1;
  const effW = (g.kw - 1) * g.dw + 1;
  const spreadDy = spread(dy, g.sh, g.sw);
  const top = effH - 1 - g.padTop;
  const left = effW - 1 - g.padLeft;
  const bottom = g.h + effH - 1 - spreadDy.shape[1] - top;
  const right = g.w + effW - 1 - spreadDy.shape[2] - left;
  return padOrCrop(spreadDy, top, bottom, left, right);
}

/**
 * dW[kh, kw, ci, co] = Σ_b,i,j xp[b, i·s + kh·d, j·s + kw·d, ci] · dy[b, i, j, co] (xp: x padded).
 * Stride 1: im2col per filter tap, a strided slice of the input (transposed once to [ci, b, H, W]
 * so each tap is a plain matMul; wasm's matMul with transposeA is ~10x slower). Stride > 1: one
 * native conv of the input with the batch as its channels and dy as the filter, dilated by the
 * stride (wasm's strided slices are slow).
 */
export function conv2dBackpropFilterComposite(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: FilterGradAttrs): tf.Tensor4D {
  const g = geometry(x.shape, attrs.filterShape, attrs, false);
  return tf.tidy(() => {
    // Exactly the rows/columns some tap reads: (k−1)·d + (o−1)·s + 1.
    const needH = (g.kh - 1) * g.dh + (g.oh - 1) * g.sh + 1;
    const needW = (g.kw - 1) * g.dw + (g.ow - 1) * g.sw + 1;
    const xp = padOrCrop(x, g.padTop, needH - g.h - g.padTop, g.padLeft, needW - g.w - g.padLeft);
    if ((g.sh > 1 || g.sw > 1) && g.dh === 1 && g.dw === 1) {
      const xT = xp.transpose([3, 1, 2, 0]) as tf.Tensor4D; // [ci, H, W, b]
      const dyT = dy.transpose([1, 2, 0, 3]) as tf.Tensor4D; // [oh, ow, b, co]
      return tf.conv2d(xT, dyT, 1, 'valid', 'NHWC', [g.sh, g.sw]).transpose([1, 2, 0, 3]) as tf.Tensor4D; // [ci, kh, kw, co] → [kh, kw, ci, co]
    }
    const xT = xp.transpose([3, 0, 1, 2]); // [ci, b, H, W]
    const dyMat = dy.reshape([g.b * g.oh * g.ow, g.co]);
    const taps: tf.Tensor2D[] = [];
    for (let i = 0; i < g.kh; i++) {
      for (let j = 0; j < g.kw; j++) {
        const top = i * g.dh;
        const left = j * g.dw;
        const patch = g.sh === 1 && g.sw === 1
          ? tf.slice(xT, [0, 0, top, left], [g.ci, g.b, g.oh, g.ow])
          : tf.stridedSlice(xT, [0, 0, top, left], [g.ci, g.b, top + (g.oh - 1) * g.sh + 1, left + (g.ow - 1) * g.sw + 1], [1, 1, g.sh, g.sw]);
        taps.push(tf.matMul(patch.reshape([g.ci, g.b * g.oh * g.ow]), dyMat));
      }
    }
    return tf.stack(taps).reshape([g.kh, g.kw, g.ci, g.co]);
  });
}

/** dx[b, y, x, ci] of a Conv2D: conv2d(spread+padded dy, filter rotated 180° with ci/co swapped). */
export function conv2dBackpropInputComposite(dy: tf.Tensor4D, filter: tf.Tensor4D, attrs: InputGradAttrs): tf.Tensor4D {
  const g = geometry(attrs.inputShape, filter.shape, attrs, false);
  return tf.tidy(() => {
    const rotated = tf.reverse(filter, [0, 1]).transpose([0, 1, 3, 2]) as tf.Tensor4D;
    return tf.conv2d(transposedConvInput(dy, g), rotated, 1, 'valid', 'NHWC', [g.dh, g.dw]);
  });
}

/**
 * dF[kh, kw, c, q] = Σ_b,i,j xp[b, i·s + kh·d, j·s + kw·d, c] · dy[b, i, j, c·m + q]: a depthwise
 * conv of xp with the batch folded into the channels ([1, Hp, Wp, c·b]) and dy as its filter
 * ([oh, ow, c·b, m]), dilated by s with stride d; then summed over b.
 */
export function depthwiseConv2dNativeBackpropFilterComposite(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: FilterGradAttrs): tf.Tensor4D {
  const g = geometry(x.shape, attrs.filterShape, attrs, true);
  const m = attrs.filterShape[3];
  return tf.tidy(() => {
    // Exactly the rows/columns some tap reads: (k−1)·d + (o−1)·s + 1.
    const needH = (g.kh - 1) * g.dh + (g.oh - 1) * g.sh + 1;
    const needW = (g.kw - 1) * g.dw + (g.ow - 1) * g.sw + 1;
    const xp = padOrCrop(x, g.padTop, needH - g.h - g.padTop, g.padLeft, needW - g.w - g.padLeft);
    // tfjs' conv ops want strides or dilations to be 1; when both are > 1 fall back to per-tap products.
    if ((g.dh > 1 || g.dw > 1) && (g.sh > 1 || g.sw > 1)) return depthwiseFilterByTaps(xp, dy, g, m);
    const xFolded = xp.transpose([1, 2, 3, 0]).reshape([1, needH, needW, g.ci * g.b]) as tf.Tensor4D;
    const dyFilter = dy.reshape([g.b, g.oh, g.ow, g.ci, m]).transpose([1, 2, 3, 0, 4]).reshape([g.oh, g.ow, g.ci * g.b, m]) as tf.Tensor4D;
    const out = tf.depthwiseConv2d(xFolded, dyFilter, [g.dh, g.dw], 'valid', 'NHWC', [g.sh, g.sw]); // [1, kh, kw, c·b·m]
    return out.reshape([g.kh, g.kw, g.ci, g.b, m]).sum(3) as tf.Tensor4D;
  });
}

function depthwiseFilterByTaps(xp: tf.Tensor4D, dy: tf.Tensor4D, g: ReturnType<typeof geometry>, m: number): tf.Tensor4D {
  const dy5 = dy.reshape([g.b * g.oh * g.ow, g.ci, m]);
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < g.kh; i++) {
    for (let j = 0; j < g.kw; j++) {
      const patch = tf.stridedSlice(xp, [0, i * g.dh, j * g.dw, 0], [g.b, i * g.dh + (g.oh - 1) * g.sh + 1, j * g.dw + (g.ow - 1) * g.sw + 1, g.ci], [1, g.sh, g.sw, 1]);
      taps.push(tf.mul(patch.reshape([g.b * g.oh * g.ow, g.ci, 1]), dy5).sum(0));
    }
  }
  return tf.stack(taps).reshape([g.kh, g.kw, g.ci, m]);
}

/**
 * dx[b, y, x, c] = Σ_taps,q dy[b, i, j, c·m + q] · F[kh, kw, c, q] where y = i·s + kh·d − padTop:
 * a depthwise conv (multiplier 1, over the c·m channels) of dy spread by the stride and padded, with
 * F rotated by 180°; for m > 1, then summed over q.
 */
export function depthwiseConv2dNativeBackpropInputComposite(dy: tf.Tensor4D, filter: tf.Tensor4D, attrs: InputGradAttrs): tf.Tensor4D {
  const g = geometry(attrs.inputShape, filter.shape, attrs, true);
  const m = filter.shape[3];
  return tf.tidy(() => {
    const rotated = tf.reverse(filter, [0, 1]).reshape([g.kh, g.kw, g.ci * m, 1]) as tf.Tensor4D;
    const dx = tf.depthwiseConv2d(transposedConvInput(dy, g), rotated, 1, 'valid', 'NHWC', [g.dh, g.dw]);
    return m === 1 ? dx : (dx.reshape([g.b, g.h, g.w, g.ci, m]).sum(4) as tf.Tensor4D);
  });
}

type Composite = (a: tf.Tensor4D, b: tf.Tensor4D, attrs: never) => tf.Tensor4D;

/** Kernel name → [its two input names, in the order the composite takes them, and the composite]. */
export const WASM_GRADIENT_COMPOSITES: Record<string, [string, string, Composite]> = {
  Conv2DBackpropFilter: ['x', 'dy', conv2dBackpropFilterComposite as Composite],
  Conv2DBackpropInput: ['dy', 'filter', conv2dBackpropInputComposite as Composite],
  DepthwiseConv2dNativeBackpropFilter: ['x', 'dy', depthwiseConv2dNativeBackpropFilterComposite as Composite],
  DepthwiseConv2dNativeBackpropInput: ['dy', 'filter', depthwiseConv2dNativeBackpropInputComposite as Composite],
};

interface WasmBackendLike {
  incRef(dataId: tf.DataId): void;
}

const registered = new Set<string>();

/**
 * Registers one composite as a wasm kernel. Without `replace`, a no-op when wasm already has that
 * kernel; with it, wasm's own kernel is unregistered first. Returns whether it registered.
 */
function registerComposite(kernelName: string, replace: boolean): boolean {
  if (registered.has(kernelName)) return false;
  if (tf.getKernel(kernelName, 'wasm')) {
    if (!replace) return false;
    tf.unregisterKernel(kernelName, 'wasm');
  }
  const [first, second, composite] = WASM_GRADIENT_COMPOSITES[kernelName]!;
  tf.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const a = inputs[first] as tf.Tensor4D;
      const b = inputs[second] as tf.Tensor4D;
      const result = composite(a, b, attrs as never);
      // Hand the result's buffer over to the kernel's output: one more reference for the output,
      // then drop the temporary tensor (as wasm's own Reshape does; no copy).
      (backend as unknown as WasmBackendLike).incRef(result.dataId);
      const out: tf.TensorInfo = { dataId: result.dataId, shape: result.shape, dtype: result.dtype };
      result.dispose();
      return out;
    },
  });
  registered.add(kernelName);
  return true;
}

/**
 * Registers, for the wasm backend, every gradient kernel of WASM_GRADIENT_COMPOSITES that it lacks
 * (tfjs-backend-wasm 4.22: Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter,
 * DepthwiseConv2dNativeBackpropInput). `replace` also swaps in the composite for kernels wasm does
 * have: its Conv2DBackpropInput is a plain loop that the composite (XNNPACK's forward conv) beats
 * 2.2-9x per call (README). Idempotent; returns the kernels this process registered (across calls).
 */
export function registerWasmGradientKernels(opts: { replace?: readonly string[] } = {}): string[] {
  for (const name of Object.keys(WASM_GRADIENT_COMPOSITES)) registerComposite(name, opts.replace?.includes(name) ?? false);
  return [...registered];
}

/** Kept for existing callers (scripts/make-mnist-base.ts): registers all the missing gradient kernels. */
export function registerWasmConv2DBackpropFilter(): void {
  registerWasmGradientKernels();
}

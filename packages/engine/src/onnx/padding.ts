/**
 * TensorFlow's padding rules as explicit ONNX pads. TF's `same` pads so that out = ceil(in / stride)
 * and puts the odd pixel at the END (bottom/right): total = max((out - 1) * stride + (k - 1) * dilation
 * + 1 - in, 0), before = floor(total / 2), after = total - before. `valid` pads nothing.
 */
export type TfPadding = 'same' | 'valid';

export function samePads(size: number, kernel: number, stride: number, dilation = 1): [before: number, after: number] {
  const out = Math.ceil(size / stride);
  const effective = (kernel - 1) * dilation + 1;
  const total = Math.max((out - 1) * stride + effective - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/**
 * ONNX attributes for a 2-D window op on [h, w] (nulls: unknown at conversion). Known sizes give
 * explicit `pads` [top, left, bottom, right]; unknown ones fall back to `auto_pad: SAME_UPPER`,
 * which ONNX Runtime computes with the same rule.
 */
export function windowPads(
  padding: string,
  size: readonly (number | null)[],
  kernel: readonly number[],
  stride: readonly number[],
  dilation: readonly number[] = [1, 1],
): { pads: number[] } | { autoPad: 'SAME_UPPER' } {
  if (padding === 'valid') return { pads: [0, 0, 0, 0] };
  if (padding !== 'same') throw new Error(`padding "${padding}" is not supported (same or valid)`);
  const [h, w] = size;
  if (h == null || w == null) return { autoPad: 'SAME_UPPER' };
  const [t, b] = samePads(h, kernel[0]!, stride[0]!, dilation[0]);
  const [l, r] = samePads(w, kernel[1]!, stride[1]!, dilation[1]);
  return { pads: [t, l, b, r] };
}

/** Output spatial size of a window op (TF's rule), or null when the input size is unknown. */
export function windowOutput(padding: string, size: number | null, kernel: number, stride: number, dilation = 1): number | null {
  if (size == null) return null;
  if (padding === 'same') return Math.ceil(size / stride);
  return Math.floor((size - ((kernel - 1) * dilation + 1)) / stride) + 1;
}

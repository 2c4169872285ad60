/**
 * Token states → one vector per text, as a text base's pooling rule says: `cls` the first token's
 * state, `mean` the mean of the states the attention mask keeps (padding never counts, so a text
 * padded further keeps its vector).
 */
export type TokenPooling = 'cls' | 'mean';

/**
 * `states` [n, length, dim] row-major, `mask` [n, length] (1 = token, 0 = padding) → [n, dim].
 */
export function poolTokenStates(states: Float32Array, mask: ArrayLike<number | bigint>, n: number, length: number, dim: number, pooling: TokenPooling): Float32Array {
  if (states.length !== n * length * dim) throw new RangeError(`token states: ${states.length} values for [${n}, ${length}, ${dim}]`);
  const out = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) {
    const o = r * dim;
    if (pooling === 'cls') {
      out.set(states.subarray(r * length * dim, r * length * dim + dim), o);
      continue;
    }
    // Summed in float64: the mean of a long text loses nothing to the order of additions.
    const sum = new Float64Array(dim);
    let count = 0;
    for (let t = 0; t < length; t++) {
      if (!Number(mask[r * length + t])) continue;
      count++;
      const s = (r * length + t) * dim;
      for (let d = 0; d < dim; d++) sum[d]! += states[s + d]!;
    }
    const k = Math.max(1, count);
    for (let d = 0; d < dim; d++) out[o + d] = sum[d]! / k;
  }
  return out;
}

/**
 * The custom tfjs-layers classes of graft's transformer encoder. Each has `getConfig` and is
 * registered with `tf.serialization.registerClass`, so a model using them saves with `model.save`
 * and loads with `tf.loadLayersModel` once this module is imported.
 *
 * tfjs-layers 4.22 has a MultiHeadAttention and a PositionEmbedding under `dist/layers/nlp`, but
 * neither is in the package's published bundle (the one `@tensorflow/tfjs` loads in Node), so they
 * cannot be used with the rest of tfjs-layers; these are small, self-contained equivalents.
 *
 * Masks are int32 `[batch, length]` tensors (1 = token, 0 = padding), passed as a second input.
 *
 * Dense and LayerNormalization are graft's own too, for speed of training on wasm (measured, see
 * packages/engine/README.md): tfjs-layers' Dense computes a rank-3 input's weight gradient with a
 * `transposeA` matMul, which wasm runs about 12x slower than an explicit transpose and a plain
 * matMul; its LayerNormalization tiles gamma/beta/mean/variance to the input's shape, and tfjs'
 * gradient of Tile is one Slice + Add per tile (≈ 4,000 kernel calls per layer at batch 32 × 128
 * tokens). Both here use broadcasting and `matMul2d` (explicit transposes in the gradient).
 */
import * as tf from '@tensorflow/tfjs';

type Shape = (number | null)[];

/** a·b for 2-D tensors, whose gradient uses explicit transposes (no transposeA/transposeB matMul: slow on wasm). */
export const matMul2d: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
}) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/** x·W + b over the last axis of any rank (reshaped to 2-D for one matMul). */
function project(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
  const inner = x.shape.at(-1)!;
  const out = kernel.shape[1]!;
  let y: tf.Tensor = matMul2d(x.reshape([-1, inner]) as tf.Tensor2D, kernel as tf.Tensor2D);
  if (bias) y = tf.add(y, bias);
  return y.reshape([...x.shape.slice(0, -1), out]);
}

function single(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0]! : inputs;
}

function pair(inputs: tf.Tensor | tf.Tensor[], layer: string): [tf.Tensor, tf.Tensor] {
  if (!Array.isArray(inputs) || inputs.length !== 2) throw new Error(`${layer} takes two inputs: [states, attentionMask]`);
  return [inputs[0]!, inputs[1]!];
}

function firstShape(shape: Shape | Shape[]): Shape {
  return Array.isArray(shape[0]) ? (shape[0] as Shape) : (shape as Shape);
}

/**
 * Adds a learnt position vector to each position of `[batch, length, hidden]` (BERT's absolute
 * position embeddings); `length` may be anything up to `maxLength`.
 */
export class PositionEmbedding extends tf.layers.Layer {
  static className = 'GraftPositionEmbedding';
  readonly maxLength: number;
  readonly embeddingsInitializer: SerializedInitializer;
  private table: tf.LayerVariable | null = null;

  constructor(args: { maxLength: number; embeddingsInitializer?: SerializedInitializer; name?: string; trainable?: boolean }) {
    super(args);
    this.maxLength = args.maxLength;
    this.embeddingsInitializer = args.embeddingsInitializer ?? truncatedNormal();
  }

  override build(inputShape: Shape | Shape[]): void {
    const hidden = firstShape(inputShape).at(-1);
    if (typeof hidden !== 'number') throw new Error('PositionEmbedding needs a known last dimension');
    this.table = this.addWeight('embeddings', [this.maxLength, hidden], 'float32', makeInitializer(this.embeddingsInitializer));
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      const length = x.shape[1]!;
      if (length > this.maxLength) throw new Error(`sequence of ${length} tokens is longer than the position table (${this.maxLength})`);
      const table = this.table!.read();
      const positions = length === this.maxLength ? table : table.slice([0, 0], [length, table.shape[1]!]);
      return tf.add(x, positions);
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return firstShape(inputShape);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), maxLength: this.maxLength, embeddingsInitializer: asConfig(this.embeddingsInitializer) };
  }
}

/**
 * Multi-head scaled dot-product self-attention over `[states, attentionMask]`: query, key, value
 * and output projections (each `[hidden, hidden]` + bias), `heads` heads of `hidden / heads`;
 * padded keys get −1e9 before the softmax, so no token attends to padding.
 */
export class MultiHeadSelfAttention extends tf.layers.Layer {
  static className = 'GraftMultiHeadSelfAttention';
  readonly heads: number;
  readonly kernelInitializer: SerializedInitializer;
  private w: Record<'query' | 'key' | 'value' | 'output', { kernel: tf.LayerVariable; bias: tf.LayerVariable }> | null = null;

  constructor(args: { heads: number; kernelInitializer?: SerializedInitializer; name?: string; trainable?: boolean }) {
    super(args);
    this.heads = args.heads;
    this.kernelInitializer = args.kernelInitializer ?? truncatedNormal();
  }

  override build(inputShape: Shape | Shape[]): void {
    const hidden = firstShape(inputShape).at(-1);
    if (typeof hidden !== 'number') throw new Error('MultiHeadSelfAttention needs a known hidden size');
    if (hidden % this.heads !== 0) throw new Error(`hidden size ${hidden} is not a multiple of ${this.heads} heads`);
    const make = (name: string) => ({
      kernel: this.addWeight(`${name}/kernel`, [hidden, hidden], 'float32', makeInitializer(this.kernelInitializer)),
      bias: this.addWeight(`${name}/bias`, [hidden], 'float32', tf.initializers.zeros()),
    });
    this.w = { query: make('query'), key: make('key'), value: make('value'), output: make('output') };
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [x, mask] = pair(inputs, 'MultiHeadSelfAttention');
      const [b, l, hidden] = x.shape as [number, number, number];
      const d = hidden / this.heads;
      const w = this.w!;
      const flat = x.reshape([b * l, hidden]);
      const proj = (p: { kernel: tf.LayerVariable; bias: tf.LayerVariable }) => project(flat, p.kernel.read(), p.bias.read());
      // [b·l, hidden] → [b, heads, l, d]
      const split = (t: tf.Tensor) => t.reshape([b, l, this.heads, d]).transpose([0, 2, 1, 3]);
      const q = split(proj(w.query));
      const k = split(proj(w.key));
      const v = split(proj(w.value));
      const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d)); // [b, heads, l, l]
      const padding = tf.mul(tf.sub(1, tf.cast(mask, 'float32')), -1e9).reshape([b, 1, 1, l]);
      const probs = tf.softmax(tf.add(scores, padding), -1);
      const context = tf.matMul(probs, v).transpose([0, 2, 1, 3]).reshape([b * l, hidden]);
      return project(context, w.output.kernel.read(), w.output.bias.read()).reshape([b, l, hidden]);
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return firstShape(inputShape);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), heads: this.heads, kernelInitializer: asConfig(this.kernelInitializer) };
  }
}

/** A fully connected layer on the last axis: x·kernel + bias, then `gelu` or nothing (`linear`). */
export class Dense extends tf.layers.Layer {
  static className = 'GraftDense';
  readonly units: number;
  readonly activation: 'gelu' | 'linear';
  readonly kernelInitializer: SerializedInitializer;
  private kernel: tf.LayerVariable | null = null;
  private bias: tf.LayerVariable | null = null;

  constructor(args: { units: number; activation?: 'gelu' | 'linear'; kernelInitializer?: SerializedInitializer; name?: string; trainable?: boolean }) {
    super(args);
    this.units = args.units;
    this.activation = args.activation ?? 'linear';
    if (this.activation !== 'gelu' && this.activation !== 'linear') throw new Error(`activation must be "gelu" or "linear"`);
    this.kernelInitializer = args.kernelInitializer ?? truncatedNormal();
  }

  override build(inputShape: Shape | Shape[]): void {
    const inner = firstShape(inputShape).at(-1);
    if (typeof inner !== 'number') throw new Error('Dense needs a known last dimension');
    this.kernel = this.addWeight('kernel', [inner, this.units], 'float32', makeInitializer(this.kernelInitializer));
    this.bias = this.addWeight('bias', [this.units], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const y = project(single(inputs), this.kernel!.read(), this.bias!.read());
      // GELU, exact form (BERT): x · Φ(x) = x · ½ (1 + erf(x / √2)).
      return this.activation === 'gelu' ? tf.mul(y, tf.mul(0.5, tf.add(1, tf.erf(tf.mul(y, Math.SQRT1_2))))) : y;
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...firstShape(inputShape).slice(0, -1), this.units];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), units: this.units, activation: this.activation, kernelInitializer: asConfig(this.kernelInitializer) };
  }
}

/** LayerNormalization over the last axis: (x − mean) / √(variance + epsilon) · gamma + beta. */
export class LayerNorm extends tf.layers.Layer {
  static className = 'GraftLayerNorm';
  readonly epsilon: number;
  private gamma: tf.LayerVariable | null = null;
  private beta: tf.LayerVariable | null = null;

  constructor(args: { epsilon?: number; name?: string; trainable?: boolean }) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-6;
  }

  override build(inputShape: Shape | Shape[]): void {
    const inner = firstShape(inputShape).at(-1);
    if (typeof inner !== 'number') throw new Error('LayerNorm needs a known last dimension');
    this.gamma = this.addWeight('gamma', [inner], 'float32', tf.initializers.ones());
    this.beta = this.addWeight('beta', [inner], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      const { mean, variance } = tf.moments(x, -1, true);
      const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.epsilon)));
      return tf.add(tf.mul(normed, this.gamma!.read()), this.beta!.read());
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return firstShape(inputShape);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}

export type Pooling = 'cls' | 'mean';

/**
 * Token states `[batch, length, hidden]` → one vector per sequence `[batch, hidden]`: the first
 * token's state (`cls`) or the mean over the tokens the attention mask keeps (`mean`; padding
 * never counts, so padding a sentence further does not change its vector).
 */
export class MaskedPooling extends tf.layers.Layer {
  static className = 'GraftMaskedPooling';
  readonly mode: Pooling;

  constructor(args: { mode: Pooling; name?: string; trainable?: boolean }) {
    super(args);
    if (args.mode !== 'cls' && args.mode !== 'mean') throw new Error(`pooling must be "cls" or "mean", not ${JSON.stringify(args.mode)}`);
    this.mode = args.mode;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [x, mask] = pair(inputs, 'MaskedPooling');
      const [b, , hidden] = x.shape as [number, number, number];
      if (this.mode === 'cls') return x.slice([0, 0, 0], [b, 1, hidden]).reshape([b, hidden]);
      const m = tf.cast(mask, 'float32').expandDims(2); // [b, l, 1]
      const sum = tf.sum(tf.mul(x, m), 1);
      const count = tf.maximum(tf.sum(m, 1), 1);
      return tf.div(sum, count);
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = firstShape(inputShape);
    return [s[0] ?? null, s[2] ?? null];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), mode: this.mode };
  }
}

/**
 * An initializer as model.json stores it (`{ className, config }`), so the engine's scratch
 * baseline finds it under the layer's `<weight>Initializer` key and re-seeds it.
 */
export interface SerializedInitializer {
  className: string;
  config: tf.serialization.ConfigDict;
}

/** BERT's initializer: a normal of stddev 0.02 truncated at two deviations. */
export function truncatedNormal(seed?: number): SerializedInitializer {
  return { className: 'TruncatedNormal', config: { mean: 0, stddev: 0.02, ...(seed === undefined ? {} : { seed }) } };
}

type Initializer = ReturnType<typeof tf.initializers.zeros>;

function asConfig(s: SerializedInitializer): tf.serialization.ConfigDict {
  return s as unknown as tf.serialization.ConfigDict;
}

function makeInitializer(s: SerializedInitializer): Initializer {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[s.className];
  if (!entry) throw new Error(`unknown initializer ${s.className}`);
  const [cls, fromConfig] = entry;
  return fromConfig(cls, s.config) as unknown as Initializer;
}

tf.serialization.registerClass(PositionEmbedding);
tf.serialization.registerClass(MultiHeadSelfAttention);
tf.serialization.registerClass(MaskedPooling);
tf.serialization.registerClass(Dense);
tf.serialization.registerClass(LayerNorm);

/** The class names a model.json of graft's encoder uses (the loader checks for them). */
export const CUSTOM_LAYER_CLASSES = [PositionEmbedding.className, MultiHeadSelfAttention.className, MaskedPooling.className, Dense.className, LayerNorm.className] as const;

/**
 * Bytes a training step holds per output byte of one layer (the factors of
 * packages/engine/src/train/memory-plan.ts): the layer between two 1x1 convolutions, tf.profile peak
 * at batch 40 minus batch 8, less the same chain without the layer.
 *
 *   node --import tsx bench/memory-layer-probes.ts
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@graft/engine';
await initBackend();
const H = 16, C = 8;
type Mk = () => tf.layers.Layer[];
const cases: Record<string, { mk: Mk; training: boolean }> = {
  none: { mk: () => [], training: true },
  conv3x3: { mk: () => [tf.layers.conv2d({ filters: C, kernelSize: 3, padding: 'same', useBias: false })], training: true },
  conv3x3_bias_relu: { mk: () => [tf.layers.conv2d({ filters: C, kernelSize: 3, padding: 'same', activation: 'relu' })], training: true },
  depthwise: { mk: () => [tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false })], training: true },
  bn_train: { mk: () => [tf.layers.batchNormalization()], training: true },
  bn_infer: { mk: () => [tf.layers.batchNormalization()], training: false },
  relu: { mk: () => [tf.layers.reLU({ maxValue: 6 })], training: true },
  activation_relu: { mk: () => [tf.layers.activation({ activation: 'relu' })], training: true },
  zeropad: { mk: () => [tf.layers.zeroPadding2d({ padding: [[0, 0], [0, 0]] })], training: true },
  maxpool: { mk: () => [tf.layers.maxPooling2d({ poolSize: 1, strides: 1 })], training: true },
  conv1x1: { mk: () => [tf.layers.conv2d({ filters: C, kernelSize: 1, useBias: false })], training: true },
  conv3x3_s2: { mk: () => [tf.layers.conv2d({ filters: 4*C, kernelSize: 3, strides: 2, padding: 'same', useBias: false })], training: true },
  dense: { mk: () => [tf.layers.dense({ units: C, activation: 'relu' })], training: true },
  dropout: { mk: () => [tf.layers.dropout({ rate: 0.5 })], training: true },
};
const perExample = (name: string) => {
  const { mk, training } = cases[name]!;
  const pre = tf.layers.conv2d({ filters: C, kernelSize: 1, useBias: false });
  const mid = mk();
  const post = tf.layers.conv2d({ filters: C, kernelSize: 1, useBias: false });
  const run = (x: tf.Tensor) => { let y = pre.apply(x) as tf.Tensor; for (const l of mid) y = l.apply(y, { training }) as tf.Tensor; return (post.apply(y) as tf.Tensor).mean() as tf.Scalar; };
  tf.tidy(() => run(tf.zeros([1, H, H, C])));
  const vars = [pre, ...mid, post].flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
  const opt = tf.train.sgd(0.01);
  const peak = async (b: number) => { const x = tf.zeros([b, H, H, C]); const p = await tf.profile(() => { opt.minimize(() => run(x), false, vars); }); x.dispose(); return p.peakBytes; };
  return (async () => { await peak(8); const a = await peak(8); const b = await peak(40); return (b - a) / 32; })();
};
const out = H * H * C * 4;
const base = await perExample('none');
for (const name of Object.keys(cases)) {
  const pe = await perExample(name);
  console.log(name.padEnd(18), 'per example', pe, 'extra vs none', pe - base, 'factor', ((pe - base) / out).toFixed(2));
}

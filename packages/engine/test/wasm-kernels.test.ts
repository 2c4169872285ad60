/**
 * The composite gradient kernels graft registers for wasm (wasm-conv-grad.ts) against the cpu
 * backend's own kernels, per kernel and end to end through a MobileNet-like block. Their speed is measured in
 * bench/wasm-gradients.ts.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/backend.ts';
import {
  conv2dBackpropInputComposite,
  depthwiseConv2dNativeBackpropFilterComposite,
  depthwiseConv2dNativeBackpropInputComposite,
  registerWasmGradientKernels,
  WASM_GRADIENT_COMPOSITES,
} from '../src/backend/wasm-conv-grad.ts';

let onWasm = false;
before(async () => {
  onWasm = (await initBackend()).name === 'wasm';
});

const TOLERANCE = 1e-4; // max |wasm − cpu| / max |cpu|

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

/** Runs a kernel on a backend with copies of the inputs; returns its output values. */
async function runOn(backend: string, kernel: string, inputs: Record<string, tf.Tensor>, attrs: object): Promise<Float32Array> {
  const previous = tf.getBackend();
  await tf.setBackend(backend);
  try {
    const copies = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, tf.tensor(v.dataSync(), v.shape)]));
    const out = tf.engine().runKernel(kernel, copies, attrs as tf.NamedAttrMap) as tf.Tensor;
    const values = out.dataSync() as Float32Array;
    tf.dispose([out, ...Object.values(copies)]);
    return values;
  } finally {
    await tf.setBackend(previous);
  }
}

test('initBackend registers exactly the gradient kernels wasm lacks, once', async (t) => {
  if (!onWasm) return t.skip('wasm backend not active');
  const info = await initBackend();
  assert.deepEqual([...(info.compositeKernels ?? [])].sort(), ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput']);
  // wasm's own Conv2DBackpropInput stays.
  assert.ok(Object.keys(WASM_GRADIENT_COMPOSITES).includes('Conv2DBackpropInput'));
  assert.deepEqual(registerWasmGradientKernels().sort(), [...info.compositeKernels!].sort());
  for (const k of Object.keys(WASM_GRADIENT_COMPOSITES)) assert.ok(tf.getKernel(k, 'wasm'), `${k} is registered for wasm`);
});

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
// [batch, height, width, channels, kernel, multiplier, stride, pad]
const CASES: [number, number, number, number, number, number, number, Pad][] = [
  [2, 9, 11, 5, 3, 1, 1, 'same'],
  [2, 9, 11, 5, 3, 1, 2, 'same'],
  [2, 9, 11, 5, 3, 1, 1, 'valid'],
  [2, 10, 11, 5, 3, 1, 2, 'valid'],
  [3, 14, 14, 32, 3, 1, 2, 'same'], // MobileNetV2's stride-2 depthwise, even size
  [2, 7, 7, 48, 3, 1, 1, 'same'], // MobileNetV2's top blocks
  [1, 8, 8, 3, 5, 1, 2, 'same'],
  [2, 9, 11, 4, 3, 3, 1, 'same'], // channel multiplier > 1
  [2, 9, 11, 4, 3, 2, 2, 'valid'],
  [2, 8, 8, 3, 3, 1, 2, [[0, 0], [1, 1], [1, 1], [0, 0]]],
];

test('Depthwise and Conv2D gradient composites match the cpu kernels (stride 1/2, same/valid/explicit, multiplier 1-3)', async (t) => {
  if (!onWasm) return t.skip('wasm backend not active');
  const report: string[] = [];
  let worst = 0;
  for (const [i, [b, h, w, c, k, m, s, pad]] of CASES.entries()) {
    const x = tf.randomNormal([b, h, w, c], 0, 1, 'float32', 10 + i) as tf.Tensor4D;
    const f = tf.randomNormal([k, k, c, m], 0, 1, 'float32', 20 + i) as tf.Tensor4D;
    const y = tf.depthwiseConv2d(x, f, s, pad);
    const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 30 + i) as tf.Tensor4D;
    const dF = { strides: s, pad, dilations: 1, filterShape: f.shape };
    const dX = { strides: s, pad, dilations: 1, inputShape: x.shape };
    const filterDiff = maxRelDiff(await runOn('wasm', 'DepthwiseConv2dNativeBackpropFilter', { x, dy }, dF), await runOn('cpu', 'DepthwiseConv2dNativeBackpropFilter', { x, dy }, dF));
    const inputDiff = maxRelDiff(await runOn('wasm', 'DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, dX), await runOn('cpu', 'DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, dX));
    // Conv2D (filter gradient is the composite; input gradient is wasm's own kernel) on the same geometry.
    const f2 = tf.randomNormal([k, k, c, 6], 0, 1, 'float32', 40 + i) as tf.Tensor4D;
    const y2 = tf.conv2d(x, f2, s, pad);
    const dy2 = tf.randomNormal(y2.shape, 0, 1, 'float32', 50 + i) as tf.Tensor4D;
    const cF = { strides: s, pad, dataFormat: 'NHWC', dilations: 1, filterShape: f2.shape };
    const convDiff = maxRelDiff(await runOn('wasm', 'Conv2DBackpropFilter', { x, dy: dy2 }, cF), await runOn('cpu', 'Conv2DBackpropFilter', { x, dy: dy2 }, cF));
    // The Conv2DBackpropInput composite (registered only on request: wasm has its own kernel).
    const cI = { strides: s, pad, dataFormat: 'NHWC' as const, dilations: 1, inputShape: x.shape };
    const convInputDiff = maxRelDiff(tf.tidy(() => conv2dBackpropInputComposite(dy2, f2, cI).dataSync()), await runOn('cpu', 'Conv2DBackpropInput', { dy: dy2, filter: f2 }, cI));
    report.push(
      `[${b},${h},${w},${c}] k${k} m${m} s${s} ${typeof pad === 'string' ? pad : 'explicit'}: ` +
        `dwFilter ${filterDiff.toExponential(1)} dwInput ${inputDiff.toExponential(1)} convFilter ${convDiff.toExponential(1)} convInput ${convInputDiff.toExponential(1)}`,
    );
    worst = Math.max(worst, filterDiff, inputDiff, convDiff, convInputDiff);
    assert.ok(Math.max(filterDiff, inputDiff, convDiff, convInputDiff) <= TOLERANCE, report.at(-1));
    tf.dispose([x, f, y, dy, f2, y2, dy2]);
  }
  console.log(`wasm gradient composites vs cpu, max relative difference ${worst.toExponential(2)}:\n  ${report.join('\n  ')}`);
});

test('the depthwise composites are the exact adjoints of the forward op with dilation 2 (which the cpu kernels ignore)', async (t) => {
  if (!onWasm) return t.skip('wasm backend not active');
  for (const pad of ['same', 'valid'] as const) {
    tf.tidy(() => {
      const x = tf.randomNormal([2, 12, 12, 4], 0, 1, 'float32', 1) as tf.Tensor4D;
      const f = tf.randomNormal([3, 3, 4, 2], 0, 1, 'float32', 2) as tf.Tensor4D;
      const dy = tf.randomNormal(tf.depthwiseConv2d(x, f, 1, pad, 'NHWC', 2).shape, 0, 1, 'float32', 3) as tf.Tensor4D;
      const df = depthwiseConv2dNativeBackpropFilterComposite(x, dy, { strides: 1, pad, dilations: 2, filterShape: f.shape });
      const dx = depthwiseConv2dNativeBackpropInputComposite(dy, f, { strides: 1, pad, dilations: 2, inputShape: x.shape });
      const u = tf.randomNormal(f.shape, 0, 1, 'float32', 4) as tf.Tensor4D;
      const v = tf.randomNormal(x.shape, 0, 1, 'float32', 5) as tf.Tensor4D;
      // <dF, u> = <dy, conv(x, u)> and <dX, v> = <dy, conv(v, f)>: conv is linear in each argument.
      const pairs = [
        [df.mul(u).sum(), dy.mul(tf.depthwiseConv2d(x, u, 1, pad, 'NHWC', 2)).sum()],
        [dx.mul(v).sum(), dy.mul(tf.depthwiseConv2d(v, f, 1, pad, 'NHWC', 2)).sum()],
      ].map(([a, b]) => [a!.dataSync()[0]!, b!.dataSync()[0]!]);
      for (const [a, b] of pairs) assert.ok(Math.abs(a! - b!) <= 1e-4 * Math.abs(b!), `${pad}: ${a} vs ${b}`);
    });
  }
});

test('the kernels leak no tensors', async (t) => {
  if (!onWasm) return t.skip('wasm backend not active');
  const x = tf.randomNormal([2, 8, 8, 6]) as tf.Tensor4D;
  const f = tf.randomNormal([3, 3, 6, 1]) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same').square().sum())([x, f]);
    tf.dispose([gx!, gf!]);
  }
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, f]);
});

/** expand 1x1 → BN → relu6 → depthwise 3x3 (stride) → BN → relu6 → project 1x1 → BN: MobileNetV2's block, in layers. */
function mobileNetBlock(inputShape: number[], stride: number): tf.LayersModel {
  const input = tf.input({ shape: inputShape });
  let x = tf.layers.conv2d({ filters: 24, kernelSize: 1, useBias: false, name: 'expand', kernelInitializer: 'glorotNormal' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'expand_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 6 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'same', useBias: false, name: 'dw', depthwiseInitializer: 'glorotNormal' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'dw_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 6 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 16, kernelSize: 1, useBias: false, name: 'project', kernelInitializer: 'glorotNormal' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'project_bn' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x });
}

test('end to end: gradients of a MobileNet-like block w.r.t. all its weights agree on wasm and cpu', async (t) => {
  if (!onWasm) return t.skip('wasm backend not active');
  for (const stride of [1, 2]) {
    const run = async (backend: string, weights: Float32Array[] | null, xs: Float32Array, training: boolean) => {
      await tf.setBackend(backend);
      const model = mobileNetBlock([10, 10, 8], stride);
      if (weights) model.setWeights(model.getWeights().map((w, i) => tf.tensor(weights[i]!, w.shape)));
      const x = tf.tensor4d(xs, [4, 10, 10, 8]);
      // A fixed random projection of the output as the loss: no gradient vanishes by symmetry.
      const r = tf.tensor(rs, [4, side, side, 16]);
      const { grads } = tf.variableGrads(() => (model.apply(x, { training }) as tf.Tensor).mul(r).sum() as tf.Scalar, model.trainableWeights.map((w) => w.read() as tf.Variable));
      const names = model.trainableWeights.map((w) => w.originalName);
      const values = Object.values(grads).map((g) => g.dataSync().slice() as Float32Array);
      const out = { names, values, weights: model.getWeights().map((w) => w.dataSync().slice() as Float32Array) };
      tf.dispose([x, r, ...Object.values(grads)]);
      model.dispose();
      return out;
    };
    const xs = tf.tidy(() => tf.randomUniform([4, 10, 10, 8], -1, 1, 'float32', 7).dataSync().slice() as Float32Array);
    const side = stride === 1 ? 10 : 5;
    const rs = tf.tidy(() => tf.randomNormal([4, side, side, 16], 0, 1, 'float32', 8).dataSync().slice() as Float32Array);
    // BatchNorm in inference mode (how a fine-tune keeps a base's BN) and in training mode (batch statistics).
    for (const [training, tolerance] of [[false, TOLERANCE], [true, TOLERANCE]] as const) {
      const wasm = await run('wasm', null, xs, training);
      const cpu = await run('cpu', wasm.weights, xs, training);
      await tf.setBackend('wasm');
      const diffs = wasm.names.map((n, i) => [n, maxRelDiff(wasm.values[i]!, cpu.values[i]!)] as const);
      console.log(`MobileNet-like block, stride ${stride}, BN ${training ? 'training' : 'inference'} mode: ${diffs.map(([n, d]) => `${n} ${d.toExponential(1)}`).join(', ')}`);
      for (const [n, d] of diffs) assert.ok(d <= tolerance, `stride ${stride}: gradient of ${n} differs by ${d}`);
      assert.ok(wasm.names.some((n) => n.includes('dw/depthwise_kernel')), 'the depthwise kernel is among the trained weights');
    }
  }
});

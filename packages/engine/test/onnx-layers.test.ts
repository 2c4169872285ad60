/**
 * The tfjs → ONNX converter, layer by layer, on small random models built here: every converted
 * model runs in ONNX Runtime and must equal tfjs (inference mode) within 1e-4 of the output's scale
 * on seeded random inputs. Odd spatial sizes with strides make TF's `same` padding asymmetric.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/backend.ts';
import { convertLayersModel, UnsupportedLayerError, unsupportedLayers, type OutputPooling } from '../src/onnx/convert.ts';
import { describeModel } from '../src/onnx/graph.ts';
import { samePads } from '../src/onnx/padding.ts';
import { openOnnxRunner } from '../src/onnx/runtime.ts';
import { randomInputs, relativeError, tfjsReference } from '../src/onnx/verify.ts';
import { mulberry32 } from '../src/util/random.ts';

before(async () => {
  await initBackend();
});

let seed = 1;
const init = () => tf.initializers.glorotUniform({ seed: seed++ });

/** Gives every BatchNormalization non-trivial statistics (random gamma, beta, mean; positive variance). */
function randomizeBatchNorms(model: tf.LayersModel): void {
  const random = mulberry32(seed++);
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const ws = layer.getWeights();
    // The last weight is the moving variance (positive); gamma, beta and the mean go around 0.
    layer.setWeights(ws.map((w, i) => tf.tensor(Float32Array.from({ length: w.size }, () => (i === ws.length - 1 ? random() * 2 + 0.2 : (random() - 0.5) * 3)), w.shape)));
  }
}

/** Converts, runs both, returns the relative error and the ONNX op counts. */
async function convertAndCompare(model: tf.LayersModel, pooling: OutputPooling = 'none', n = 2): Promise<{ rel: number; ops: Record<string, number>; flops: number | null }> {
  randomizeBatchNorms(model);
  const converted = convertLayersModel(model, { pooling });
  const inputShape = converted.inputShape as number[];
  const runner = await openOnnxRunner(converted.bytes, { inputName: converted.inputName, outputName: converted.outputName, inputShape }, { threads: 1 });
  try {
    const x = randomInputs(n, inputShape, null, 7).map((v) => v * 4 - 2);
    const expected = tfjsReference(model, x, n, inputShape, pooling);
    const actual = await runner.run(x, n);
    const { relError, scale } = relativeError(actual, expected);
    assert.ok(scale > 0, 'the reference output is all zeros: the test proves nothing');
    assert.deepEqual(describeModel(converted.bytes).ops, converted.ops);
    return { rel: relError, ops: converted.ops, flops: converted.flopsPerImage };
  } finally {
    await runner.release();
  }
}

function sequential(inputShape: number[], layers: tf.layers.Layer[]): tf.LayersModel {
  const input = tf.input({ shape: inputShape });
  let x: tf.SymbolicTensor = input;
  for (const l of layers) x = l.apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x });
}

const TOL = 1e-4;

test("TF's same padding puts the odd pixel after: samePads matches tf.conv2d output sizes and offsets", () => {
  assert.deepEqual(samePads(224, 3, 2), [0, 1]);
  assert.deepEqual(samePads(225, 3, 2), [1, 1]);
  assert.deepEqual(samePads(7, 3, 1), [1, 1]);
  assert.deepEqual(samePads(8, 4, 1), [1, 2]);
  assert.deepEqual(samePads(9, 3, 1, 2), [2, 2]);
  assert.deepEqual(samePads(5, 1, 2), [0, 0]);
  assert.deepEqual(samePads(6, 5, 3), [1, 1]);
  // Against tfjs itself: 'same' equals 'valid' on the input padded by samePads.
  for (const [size, k, s] of [[9, 3, 2], [10, 3, 2], [8, 4, 1], [11, 5, 3]] as const) {
    const x = tf.randomNormal([1, size, size + 1, 2], 0, 1, 'float32', 5) as tf.Tensor4D;
    const w = tf.randomNormal([k, k, 2, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    const [t, b] = samePads(size, k, s);
    const [l, r] = samePads(size + 1, k, s);
    const same = tf.conv2d(x, w, s, 'same');
    const explicit = tf.conv2d(x, w, s, [[0, 0], [t, b], [l, r], [0, 0]]);
    assert.deepEqual(same.shape, explicit.shape);
    assert.ok(tf.max(tf.abs(tf.sub(same, explicit))).dataSync()[0]! < 1e-5, `size ${size} kernel ${k} stride ${s}`);
    tf.dispose([x, w, same, explicit]);
  }
});

test('Conv2D: same/valid, strides 1 and 2 on odd sizes, dilation 2, with and without bias, fused activations', async () => {
  const cases: [string, tf.layers.Layer[]][] = [
    ['same s2 odd', [tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(), biasInitializer: 'randomNormal' })]],
    ['same s2 even k4', [tf.layers.conv2d({ filters: 4, kernelSize: 4, strides: 2, padding: 'same', kernelInitializer: init(), activation: 'relu' })]],
    ['valid 5x3', [tf.layers.conv2d({ filters: 6, kernelSize: [5, 3], strides: [2, 1], padding: 'valid', useBias: false, kernelInitializer: init() })]],
    ['dilation 2', [tf.layers.conv2d({ filters: 3, kernelSize: 3, dilationRate: 2, padding: 'same', kernelInitializer: init(), activation: 'tanh' })]],
  ];
  for (const [name, layers] of cases) {
    const { rel, ops } = await convertAndCompare(sequential([11, 13, 3], layers));
    assert.ok(rel < TOL, `${name}: relative error ${rel}`);
    assert.equal(ops.Conv, 1, name);
  }
});

test('DepthwiseConv2D (multiplier 1 and 2, stride 2, same on odd sizes) and SeparableConv2D', async () => {
  for (const depthMultiplier of [1, 2]) {
    const model = sequential([9, 10, 4], [tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier, depthwiseInitializer: init(), useBias: true, biasInitializer: 'randomNormal' })]);
    const { rel, flops } = await convertAndCompare(model);
    assert.ok(rel < TOL, `depthwise x${depthMultiplier}: ${rel}`);
    assert.equal(flops, 2 * 5 * 5 * 4 * depthMultiplier * 9);
  }
  const sep = sequential([12, 12, 3], [tf.layers.separableConv2d({ filters: 7, kernelSize: 3, padding: 'same', depthMultiplier: 2, depthwiseInitializer: init(), pointwiseInitializer: init(), activation: 'relu6' })]);
  const { rel, ops } = await convertAndCompare(sep);
  assert.ok(rel < TOL, `separable: ${rel}`);
  assert.equal(ops.Conv, 2);
});

test('BatchNormalization: folded into the conv before it, standalone after an activation and after Dense', async () => {
  const folded = await convertAndCompare(sequential([8, 8, 3], [
    tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init() }),
    tf.layers.batchNormalization({ epsilon: 1e-3 }),
    tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', depthwiseInitializer: init(), useBias: false }),
    tf.layers.batchNormalization({ scale: false }),
  ]));
  assert.ok(folded.rel < TOL, `folded: ${folded.rel}`);
  assert.equal(folded.ops.BatchNormalization, undefined, 'both BNs fold into their convs');
  const standalone = await convertAndCompare(sequential([8, 8, 3], [
    tf.layers.conv2d({ filters: 4, kernelSize: 3, kernelInitializer: init(), activation: 'relu' }),
    tf.layers.batchNormalization({ center: false }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 5, kernelInitializer: init() }),
    tf.layers.batchNormalization(),
    tf.layers.softmax(), // tfjs' default axis for the layer is 1
  ]));
  assert.ok(standalone.rel < TOL, `standalone: ${standalone.rel}`);
  assert.equal(standalone.ops.BatchNormalization, 2);
});

test('activations: as Activation layers and as ReLU / LeakyReLU / ELU / PReLU / ThresholdedReLU / Softmax layers', async () => {
  for (const activation of ['relu', 'relu6', 'elu', 'selu', 'sigmoid', 'hardSigmoid', 'tanh', 'softplus', 'softsign', 'swish', 'mish', 'gelu', 'softmax', 'logSoftmax', 'linear']) {
    const model = sequential([5, 6, 3], [
      tf.layers.conv2d({ filters: 4, kernelSize: 1, kernelInitializer: init() }),
      tf.layers.activation({ activation: activation as 'relu' }),
    ]);
    const { rel } = await convertAndCompare(model);
    assert.ok(rel < TOL, `${activation}: ${rel}`);
  }
  const layers: [string, tf.layers.Layer][] = [
    ['ReLU max 6', tf.layers.reLU({ maxValue: 6 })],
    ['ReLU max 1.5', tf.layers.reLU({ maxValue: 1.5 })],
    ['ReLU', tf.layers.reLU()],
    ['LeakyReLU', tf.layers.leakyReLU({ alpha: 0.1 })],
    ['ELU', tf.layers.elu()],
    ['ThresholdedReLU', tf.layers.thresholdedReLU({ theta: 0.3 })],
    ['Softmax', tf.layers.softmax({ axis: -1 })],
    ['PReLU', tf.layers.prelu({ alphaInitializer: tf.initializers.randomUniform({ minval: 0.05, maxval: 0.5, seed: 3 }), sharedAxes: [1, 2] })],
  ];
  for (const [name, layer] of layers) {
    const model = sequential([5, 6, 3], [tf.layers.conv2d({ filters: 4, kernelSize: 1, kernelInitializer: init() }), layer]);
    const { rel } = await convertAndCompare(model);
    assert.ok(rel < TOL, `${name}: ${rel}`);
  }
});

test('pooling: Max/Average same (odd sizes, stride 2) and valid, global average and max', async () => {
  for (const padding of ['same', 'valid'] as const) {
    for (const [name, layer] of [
      ['max', tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding })],
      ['avg', tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding })],
      ['avg 2x2 default strides', tf.layers.averagePooling2d({ poolSize: 2, padding })],
    ] as const) {
      const { rel } = await convertAndCompare(sequential([9, 11, 3], [layer]));
      assert.ok(rel < TOL, `${name} ${padding}: ${rel}`);
    }
  }
  for (const layer of [tf.layers.globalAveragePooling2d({}), tf.layers.globalMaxPooling2d({})]) {
    const { rel } = await convertAndCompare(sequential([7, 5, 6], [tf.layers.conv2d({ filters: 4, kernelSize: 3, kernelInitializer: init() }), layer, tf.layers.dense({ units: 3, kernelInitializer: init() })]));
    assert.ok(rel < TOL, `${layer.getClassName()}: ${rel}`);
  }
});

test('shapes: ZeroPadding2D (asymmetric), Flatten after a map (NHWC order), Reshape, Dense on a map, Dropout as identity', async () => {
  const model = sequential([6, 7, 2], [
    tf.layers.zeroPadding2d({ padding: [[0, 1], [2, 1]] }),
    tf.layers.conv2d({ filters: 3, kernelSize: 3, strides: 2, kernelInitializer: init() }),
    tf.layers.dense({ units: 4, kernelInitializer: init(), activation: 'relu' }),
    tf.layers.dropout({ rate: 0.5 }),
    tf.layers.flatten(),
    tf.layers.reshape({ targetShape: [3, 16] }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 5, kernelInitializer: init(), activation: 'softmax' }),
  ]);
  const { rel, ops } = await convertAndCompare(model);
  assert.ok(rel < TOL, `shapes: ${rel}`);
  assert.ok(ops.Pad && ops.Reshape && ops.MatMul && ops.Gemm);
  assert.equal(ops.Dropout, undefined);
});

test('merges: Add, Multiply, Average, Maximum, Minimum and Concatenate (channel axis and a spatial axis)', async () => {
  for (const make of [
    () => tf.layers.add(), () => tf.layers.multiply(), () => tf.layers.average(), () => tf.layers.maximum(), () => tf.layers.minimum(),
    () => tf.layers.concatenate(), () => tf.layers.concatenate({ axis: 2 }),
  ]) {
    const input = tf.input({ shape: [7, 7, 3] });
    const a = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: init() }).apply(input) as tf.SymbolicTensor;
    const b = tf.layers.conv2d({ filters: 4, kernelSize: 1, kernelInitializer: init(), activation: 'sigmoid' }).apply(input) as tf.SymbolicTensor;
    const c = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', depthMultiplier: 1, depthwiseInitializer: init() }).apply(a) as tf.SymbolicTensor;
    const layer = make();
    const out = layer.apply([a, b, c]) as tf.SymbolicTensor;
    const { rel } = await convertAndCompare(tf.model({ inputs: input, outputs: out }));
    assert.ok(rel < TOL, `${layer.getClassName()}: ${rel}`);
  }
});

test('a VGG-style block (conv-conv-maxpool ×2 → flatten → dense) converts and matches', async () => {
  const model = sequential([32, 32, 3], [
    tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init() }),
    tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init() }),
    tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
    tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init() }),
    tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init() }),
    tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 10, activation: 'relu', kernelInitializer: init() }),
  ]);
  const { rel, flops } = await convertAndCompare(model, 'none', 3);
  assert.ok(rel < TOL, `vgg: ${rel}`);
  assert.equal(flops, 2 * (32 * 32 * 8 * 9 * 3 + 32 * 32 * 8 * 9 * 8 + 16 * 16 * 16 * 9 * 8 + 16 * 16 * 16 * 9 * 16 + 8 * 8 * 16 * 10));
});

test('ResNet-style blocks (conv-BN-relu ×2 + identity / projection shortcut, Add) and an Inception-style module (branches → Concatenate), pooled outputs', async () => {
  const convBn = (x: tf.SymbolicTensor, filters: number, k: number, strides = 1, act = true) => {
    let y = tf.layers.conv2d({ filters, kernelSize: k, strides, padding: 'same', useBias: false, kernelInitializer: init() }).apply(x) as tf.SymbolicTensor;
    y = tf.layers.batchNormalization().apply(y) as tf.SymbolicTensor;
    return act ? (tf.layers.activation({ activation: 'relu' }).apply(y) as tf.SymbolicTensor) : y;
  };
  const input = tf.input({ shape: [15, 15, 3] });
  let x = convBn(input, 8, 3, 2);
  // identity shortcut
  let y = convBn(convBn(x, 8, 3), 8, 3, 1, false);
  x = tf.layers.activation({ activation: 'relu' }).apply(tf.layers.add().apply([x, y])) as tf.SymbolicTensor;
  // projection shortcut, stride 2 on an odd size (8 → 4)
  y = convBn(convBn(x, 12, 3, 2), 12, 3, 1, false);
  const shortcut = convBn(x, 12, 1, 2, false);
  x = tf.layers.activation({ activation: 'relu' }).apply(tf.layers.add().apply([shortcut, y])) as tf.SymbolicTensor;
  // inception module
  const b1 = convBn(x, 4, 1);
  const b2 = convBn(convBn(x, 4, 1), 6, 3);
  const b3 = convBn(tf.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same' }).apply(x) as tf.SymbolicTensor, 4, 1);
  const b4 = tf.layers.maxPooling2d({ poolSize: 3, strides: 1, padding: 'same' }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.concatenate({ axis: 3 }).apply([b1, b2, b3, b4]) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  for (const pooling of ['none', 'avg', 'flatten'] as const) {
    const { rel, ops } = await convertAndCompare(model, pooling);
    assert.ok(rel < TOL, `resnet/inception ${pooling}: ${rel}`);
    assert.equal(ops.BatchNormalization, undefined, 'every BN follows a conv it alone reads: all folded');
    assert.equal(ops.Transpose, pooling === 'avg' ? 1 : 2, 'one transpose in, one out (none when pooled in NCHW)');
  }
});

test('a MobileNetV2 inverted residual (ZeroPadding2D, ReLU(6), depthwise, linear bottleneck, Add)', async () => {
  const input = tf.input({ shape: [17, 17, 8] });
  const bn = (x: tf.SymbolicTensor) => tf.layers.batchNormalization({ epsilon: 1e-3 }).apply(x) as tf.SymbolicTensor;
  let x = bn(tf.layers.conv2d({ filters: 48, kernelSize: 1, useBias: false, kernelInitializer: init() }).apply(input) as tf.SymbolicTensor);
  x = tf.layers.reLU({ maxValue: 6 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]] }).apply(x) as tf.SymbolicTensor;
  x = bn(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 1, padding: 'valid', useBias: false, depthwiseInitializer: init() }).apply(x) as tf.SymbolicTensor);
  x = tf.layers.reLU({ maxValue: 6 }).apply(x) as tf.SymbolicTensor;
  x = bn(tf.layers.conv2d({ filters: 8, kernelSize: 1, useBias: false, kernelInitializer: init() }).apply(x) as tf.SymbolicTensor);
  const out = tf.layers.add().apply([input, x]) as tf.SymbolicTensor;
  const { rel } = await convertAndCompare(tf.model({ inputs: input, outputs: out }), 'avg');
  assert.ok(rel < TOL, `inverted residual: ${rel}`);
});

test('an unsupported layer is named, with the classes the converter supports', () => {
  const model = sequential([6, 6, 3], [tf.layers.conv2d({ filters: 2, kernelSize: 3, kernelInitializer: init() }), tf.layers.upSampling2d({ size: [2, 2] })]);
  assert.deepEqual(unsupportedLayers(model).map((u) => u.className), ['UpSampling2D']);
  assert.throws(() => convertLayersModel(model, { pooling: 'none' }), (err: unknown) => {
    assert.ok(err instanceof UnsupportedLayerError);
    assert.equal(err.className, 'UpSampling2D');
    assert.match(err.message, /no converter for UpSampling2D .*supported: .*Conv2D/);
    return true;
  });
  const channelsFirst = sequential([3, 6, 6], [tf.layers.maxPooling2d({ poolSize: 2, dataFormat: 'channelsFirst' })]);
  assert.throws(() => convertLayersModel(channelsFirst, { pooling: 'none' }), /channelsFirst/);
});

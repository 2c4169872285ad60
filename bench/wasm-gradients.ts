/**
 * One gradient step through MobileNetV2's top block (block_16 + Conv_1: what `trainableLayers`
 * unfreezes first), on wasm with graft's composite gradient kernels against the cpu backend, in
 * one process (ratios, not absolute times, are the claim).
 *
 *   node --import tsx bench/wasm-gradients.ts
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, openBase, registerWasmGradientKernels, resolveCatalogBase } from '@graft/engine';

const backend = await initBackend();
if (backend.name !== 'wasm') throw new Error(`this benchmark compares wasm with cpu; the active backend is ${backend.name}`);
const model = (await openBase(resolveCatalogBase('bm_mobilenet_v2')!)).layers!;
const names = ['block_16_expand', 'block_16_expand_BN', 'block_16_expand_relu', 'block_16_depthwise', 'block_16_depthwise_BN', 'block_16_depthwise_relu', 'block_16_project', 'block_16_project_BN', 'Conv_1', 'Conv_1_bn', 'out_relu'];
const input = tf.input({ shape: [7, 7, 160] });
let y = input;
for (const n of names) y = model.getLayer(n).apply(y) as tf.SymbolicTensor;
const top = tf.model({ inputs: input, outputs: y });
const batch = 2; // the cpu backend's Conv2DBackpropFilter is a slow loop (about 7 s per image here)
const x = tf.randomUniform([batch, 7, 7, 160], 0, 2, 'float32', 3);
const target = tf.randomUniform([batch, 1280], 0, 1, 'float32', 4);
const step = () => {
  const { value, grads } = tf.variableGrads(
    () => tf.losses.meanSquaredError(target, (top.apply(x, { training: false }) as tf.Tensor).mean([1, 2])) as tf.Scalar,
    top.trainableWeights.map((w) => w.read() as tf.Variable),
  );
  const gs = Object.values(grads);
  for (const g of gs) g.dataSync();
  tf.dispose([value, ...gs]);
};
const time = async (backend: string, reps: number, warmUp = true) => {
  await tf.setBackend(backend);
  if (warmUp) step(); // (and moves the variables to this backend)
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) step();
  return (performance.now() - t0) / reps;
};
const wasmMs = await time('wasm', 5);
const cpuMs = await time('cpu', 1, false); // 12 s per step: no warm-up
registerWasmGradientKernels({ replace: ['Conv2DBackpropInput'] });
const wasmReplacedMs = await time('wasm', 5);
console.log(
  `MobileNetV2 top block (block_16 + Conv_1, batch ${batch} at 7x7x160, ${top.trainableWeights.length} weight tensors), one gradient step: ` +
    `wasm ${wasmMs.toFixed(0)} ms, cpu ${cpuMs.toFixed(0)} ms, cpu/wasm ${(cpuMs / wasmMs).toFixed(0)}x; ` +
    `wasm with the Conv2DBackpropInput composite instead of wasm's own kernel ${wasmReplacedMs.toFixed(0)} ms (${(wasmMs / wasmReplacedMs).toFixed(2)}x faster)`,
);
tf.dispose([x, target]);
model.dispose();


import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/backend.ts';
import { registerWasmConv2DBackpropFilter } from '../src/backend/wasm-conv-grad.ts';

test('the composite Conv2DBackpropFilter lets a conv layer train on wasm and matches the cpu kernel', async (t) => {
  if ((await initBackend()).name !== 'wasm') return t.skip('wasm backend not active');
  registerWasmConv2DBackpropFilter();
  const x = tf.randomNormal([3, 11, 9, 4], 0, 1, 'float32', 1);
  const filter = tf.randomNormal([3, 3, 4, 5], 0, 1, 'float32', 2);
  const bias = tf.randomNormal([5], 0, 1, 'float32', 3);
  const cases = [['valid', 1], ['same', 1], ['same', 2], ['valid', 2]] as const;
  const grads = async (backend: string) => {
    await tf.setBackend(backend);
    const out: number[][] = [];
    for (const [pad, strides] of cases) {
      const [xs, fs, bs] = [x, filter, bias].map((v) => tf.tensor(v.arraySync() as number[]));
      const g = tf.grad((f: tf.Tensor) => tf.fused.conv2d({ x: xs as tf.Tensor4D, filter: f as tf.Tensor4D, bias: bs, strides, pad, activation: 'relu' }).square().sum())(fs!);
      out.push([...(await g.data())]);
      tf.dispose([xs!, fs!, bs!, g]);
    }
    return out;
  };
  const onWasm = await grads('wasm');
  const onCpu = await grads('cpu');
  await tf.setBackend('wasm');
  cases.forEach((c, k) => {
    const scale = Math.max(...onCpu[k]!.map(Math.abs));
    const diff = Math.max(...onWasm[k]!.map((v, i) => Math.abs(v - onCpu[k]![i]!)));
    assert.ok(diff / scale < 1e-5, `${c.join(' stride ')}: max relative difference ${diff / scale}`);
  });
  tf.dispose([x, filter, bias]);
});

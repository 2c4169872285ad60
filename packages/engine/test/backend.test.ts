import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/backend.ts';

const BACKEND_MODULE = new URL('../src/backend/backend.ts', import.meta.url).href;

test('initBackend picks wasm on this machine (no tfjs-node), says what it tried, and is idempotent', async (t) => {
  if (process.env.GRAFT_TF_BACKEND) return t.skip('GRAFT_TF_BACKEND forces a backend');
  const info = await initBackend();
  assert.equal(info.name, 'wasm');
  assert.equal(info.tfBackend, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(info.tried.map((x) => x.name), ['node-gpu', 'node']);
  for (const tried of info.tried) assert.match(tried.error, /tfjs-node/);
  assert.equal(await initBackend(), info);
  // The emscripten runtime's crash handlers are removed: the host process decides.
  const stray = process.listeners('unhandledRejection').filter((l) => String(l).includes('throw reason'));
  assert.equal(stray.length, 0);
});

test('GRAFT_TF_BACKEND forces a backend, and a forced backend that fails is an error', () => {
  const run = (value: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `import { initBackend } from ${JSON.stringify(BACKEND_MODULE)}; try { console.log(JSON.stringify(await initBackend())); } catch (e) { console.log('ERROR ' + e.message); }`], {
      env: { ...process.env, GRAFT_TF_BACKEND: value },
      encoding: 'utf8',
    }).stdout.trim().split('\n').at(-1)!;
  assert.equal(JSON.parse(run('cpu')).name, 'cpu');
  assert.match(run('node'), /^ERROR No TensorFlow.js backend could be initialised: node: /);
  assert.match(run('gpu'), /^ERROR GRAFT_TF_BACKEND="gpu" is not one of node-gpu, node, wasm, cpu/);
});

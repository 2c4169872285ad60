/** The routing rules: what a job needs (resources) and whether a worker should start it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canRun, estimateTrainingMemoryMB, GPU_PREFERENCE_WAIT_MS, resolveResources, type Resources, type WorkerCapabilities } from '../src/index.ts';

const GiB = 2 ** 30;
const worker = (accelerator: 'gpu' | 'cpu', memoryGiB: number, concurrency = 1): WorkerCapabilities => ({
  backend: accelerator === 'gpu' ? 'node-gpu' : 'wasm',
  accelerator,
  gpus: accelerator === 'gpu' ? [{ name: 'A10', memoryBytes: 24 * GiB }] : [],
  memoryBytes: memoryGiB * GiB,
  memoryPerJobBytes: Math.floor((memoryGiB * GiB) / concurrency),
  cpus: 8,
  concurrency,
});
const need = (gpu: Resources['gpu'], memoryMB: number | null = 512): Resources => ({ gpu, memoryMB, estimated: true });
const gpu = worker('gpu', 32);
const cpu = worker('cpu', 16);

test('the estimate matches the measured MobileNetV2 peak and grows with batch and input size', () => {
  const mobilenet = { inputShape: [224, 224, 3], featureShape: [7, 7, 1280] };
  // bench/RESULTS.md: 0.75 GiB peak at batch 32 with 60-240 images.
  const mb = estimateTrainingMemoryMB(mobilenet, 32, 240);
  assert.ok(mb > 0.7 * 1024 && mb < 0.9 * 1024, `${mb} MiB`);
  assert.ok(estimateTrainingMemoryMB(mobilenet, 64) > estimateTrainingMemoryMB(mobilenet, 32));
  assert.ok(estimateTrainingMemoryMB({ inputShape: [28, 28, 1], featureShape: [800] }, 32, 300) < 400);
});

test('defaults: large image bases prefer a GPU, small ones and text take any worker; a given memory is kept', () => {
  assert.deepEqual(resolveResources(undefined, { task: 'image-classification', inputShape: [224, 224, 3] }, 32).gpu, 'preferred');
  assert.deepEqual(resolveResources(undefined, { task: 'image-classification', inputShape: [28, 28, 1] }, 32).gpu, 'any');
  assert.deepEqual(resolveResources(undefined, { task: 'text-classification', inputShape: [128] }, 32).gpu, 'any');
  assert.deepEqual(resolveResources({ gpu: 'never', memoryMB: 2048 }, { inputShape: [224, 224, 3] }, 32), { gpu: 'never', memoryMB: 2048, estimated: false });
});

test('required and never pick the accelerator; any runs anywhere', () => {
  assert.deepEqual(canRun(need('required'), gpu, [gpu, cpu], 0), { ok: true });
  assert.equal(canRun(need('required'), cpu, [gpu, cpu], 0).ok, false);
  assert.equal(canRun(need('never'), gpu, [gpu, cpu], 0).ok, false);
  assert.deepEqual(canRun(need('never'), cpu, [gpu, cpu], 0), { ok: true });
  assert.deepEqual(canRun(need('any'), cpu, [gpu, cpu], 0), { ok: true });
  assert.deepEqual(canRun(need('any'), gpu, [gpu, cpu], 0), { ok: true });
});

test('preferred waits for a live GPU worker, then a CPU worker takes it; without one it runs on CPU at once', () => {
  const refused = canRun(need('preferred'), cpu, [gpu, cpu], 1_000);
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.noWorkerCan, false);
  assert.deepEqual(canRun(need('preferred'), cpu, [gpu, cpu], GPU_PREFERENCE_WAIT_MS + 1), { ok: true });
  assert.deepEqual(canRun(need('preferred'), cpu, [cpu], 0), { ok: true });
  // A GPU worker too small for the job does not count.
  assert.deepEqual(canRun(need('preferred', 8 * 1024), worker('cpu', 16), [worker('gpu', 4), worker('cpu', 16)], 0), { ok: true });
});

test('memory: a job goes only where one job\'s share of RAM fits it; noWorkerCan when none does', () => {
  const big = need('any', 12 * 1024);
  assert.deepEqual(canRun(big, gpu, [gpu, cpu], 0), { ok: true });
  const v = canRun(big, worker('cpu', 16, 2), [worker('cpu', 16, 2), gpu], 0);
  assert.equal(v.ok, false);
  assert.equal(!v.ok && v.noWorkerCan, false);
  const none = canRun(need('required', 64 * 1024), gpu, [gpu, cpu], 0);
  assert.ok(!none.ok && none.noWorkerCan && /65536 MiB/.test(none.reason));
  assert.ok(canRun(need('any', null), worker('cpu', 1), [], 0).ok, 'no recorded memory: no check');
});

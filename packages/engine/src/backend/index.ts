/**
 * The TensorFlow.js backend: the best one available chosen once per process (node-gpu, node, wasm,
 * cpu; `GRAFT_TF_BACKEND` forces one), and on wasm the gradient kernels it lacks for training
 * convolutions, registered as composites of kernels it has.
 */
export { BACKEND_CHOICES, initBackend, type BackendChoice, type BackendInfo } from './backend.ts';
export { registerWasmGradientKernels } from './wasm-conv-grad.ts';

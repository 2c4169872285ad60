/**
 * Chooses the TensorFlow.js backend at run time. tfjs-node(-gpu) are optional dependencies whose
 * install downloads libtensorflow, so they are often absent; wasm always installs and is 14-32x
 * faster than the pure-JS `cpu` backend.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { registerWasmGradientKernels } from './wasm-conv-grad.ts';

export const BACKEND_CHOICES = ['node-gpu', 'node', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendInfo {
  /** What was chosen, as GRAFT_TF_BACKEND names it: `node-gpu`, `node`, `wasm` or `cpu`. */
  name: BackendChoice;
  /** tfjs' own name for the active backend (`tensorflow` for both tfjs-node packages). */
  tfBackend: string;
  /** Candidates that were tried before and failed, with why. */
  tried: { name: string; error: string }[];
  /**
   * Gradient kernels graft registered as composites because the backend lacks them (wasm:
   * Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter/Input; see wasm-conv-grad.ts).
   */
  compositeKernels?: string[];
}

const require = createRequire(import.meta.url);

async function tryNode(pkg: string): Promise<void> {
  // A variable specifier: the packages may be missing, and TypeScript must not resolve them.
  const specifier: string = pkg;
  await import(specifier);
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but the tensorflow backend did not initialise`);
}

async function tryWasm(): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  // In Node the emscripten loader reads the .wasm binaries from disk; point it at the package's dist.
  const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  wasm.setWasmPaths(`${dist}/`);
  const events = ['uncaughtException', 'unhandledRejection'];
  const emitter = process as NodeJS.EventEmitter;
  const before = new Set(events.flatMap((e) => emitter.listeners(e)));
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
  } finally {
    // The emscripten runtime adds uncaughtException/unhandledRejection handlers that rethrow from
    // inside its minified source (printing all of it); leave crash handling to the host process.
    for (const e of events) {
      for (const listener of emitter.listeners(e)) {
        if (!before.has(listener)) emitter.removeListener(e, listener as (...args: unknown[]) => void);
      }
    }
  }
}

async function tryCpu(): Promise<void> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not initialise');
}

const LOADERS: Record<BackendChoice, () => Promise<void>> = {
  'node-gpu': () => tryNode('@tensorflow/tfjs-node-gpu'),
  node: () => tryNode('@tensorflow/tfjs-node'),
  wasm: tryWasm,
  cpu: tryCpu,
};

let chosen: Promise<BackendInfo> | null = null;

/**
 * Activates the best available backend once per process (later calls return the same answer).
 * `GRAFT_TF_BACKEND=node-gpu|node|wasm|cpu` forces one; a forced backend that fails is an error,
 * not a silent fallback.
 */
export function initBackend(): Promise<BackendInfo> {
  chosen ??= pick().catch((err: unknown) => {
    chosen = null; // let a later call retry (e.g. after fixing the environment)
    throw err;
  });
  return chosen;
}

async function pick(): Promise<BackendInfo> {
  const forced = process.env.GRAFT_TF_BACKEND?.trim();
  if (forced && !(BACKEND_CHOICES as readonly string[]).includes(forced)) {
    throw new Error(`GRAFT_TF_BACKEND="${forced}" is not one of ${BACKEND_CHOICES.join(', ')}`);
  }
  const candidates: readonly BackendChoice[] = forced ? [forced as BackendChoice] : BACKEND_CHOICES;
  const tried: BackendInfo['tried'] = [];
  for (const name of candidates) {
    try {
      await LOADERS[name]();
      await tf.ready();
      if (name === 'wasm') return { name, tfBackend: tf.getBackend(), tried, compositeKernels: registerWasmGradientKernels() };
      return { name, tfBackend: tf.getBackend(), tried };
    } catch (err) {
      tried.push({ name, error: firstLine(err) });
    }
  }
  throw new Error(`No TensorFlow.js backend could be initialised: ${tried.map((t) => `${t.name}: ${t.error}`).join('; ')}`);
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]!.slice(0, 300);
}

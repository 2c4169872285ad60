/**
 * Which runtime computes a frozen tfjs-layers base's features: ONNX Runtime (the base converted by
 * graft, checked against tfjs) or TensorFlow.js itself. Read from the environment, without loading
 * onnxruntime-node (the worker reports it in /readyz, the pipeline in the job's `backend` event):
 *
 *   GRAFT_FROZEN_RUNTIME  auto (default) | onnx | tfjs
 *     auto: ONNX Runtime on wasm/cpu; with tfjs-node(-gpu) the whole model stays in TensorFlow,
 *           which is native there already.
 *   GRAFT_ONNX_THREADS    ONNX Runtime's intra-op threads (default: the machine's available parallelism)
 */
import { availableParallelism } from 'node:os';
import type { BackendChoice } from '../backend/backend.ts';

export const FROZEN_RUNTIME_CHOICES = ['auto', 'onnx', 'tfjs'] as const;
export type FrozenRuntimeChoice = (typeof FROZEN_RUNTIME_CHOICES)[number];
export type FrozenRuntime = 'onnx' | 'tfjs';

export interface FrozenRuntimeSetting {
  /** What frozen layers bases use unless their conversion fails (then tfjs, said in an event). */
  runtime: FrozenRuntime;
  requested: FrozenRuntimeChoice;
  /** ONNX Runtime's intra-op threads. */
  threads: number;
  /** Why tfjs was chosen, when it was. */
  reason: string | null;
}

export function frozenRuntimeSetting(backend: BackendChoice, env: NodeJS.ProcessEnv = process.env): FrozenRuntimeSetting {
  const raw = env.GRAFT_FROZEN_RUNTIME?.trim() || 'auto';
  if (!(FROZEN_RUNTIME_CHOICES as readonly string[]).includes(raw)) {
    throw new Error(`GRAFT_FROZEN_RUNTIME="${raw}" is not one of ${FROZEN_RUNTIME_CHOICES.join(', ')}`);
  }
  const requested = raw as FrozenRuntimeChoice;
  const threadsRaw = env.GRAFT_ONNX_THREADS?.trim();
  const threads = threadsRaw ? Number(threadsRaw) : availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`GRAFT_ONNX_THREADS="${threadsRaw}" is not a positive integer`);
  if (requested === 'tfjs') return { runtime: 'tfjs', requested, threads, reason: 'GRAFT_FROZEN_RUNTIME=tfjs' };
  if (requested === 'auto' && (backend === 'node' || backend === 'node-gpu')) {
    return { runtime: 'tfjs', requested, threads, reason: `the ${backend} backend runs the whole model natively` };
  }
  return { runtime: 'onnx', requested, threads, reason: null };
}

/** Whether onnxruntime-node loads in this process (its native binding may be missing); the error's first line if not. */
export async function onnxRuntimeLoads(): Promise<{ ok: true; version: string } | { ok: false; error: string }> {
  try {
    const { onnxRuntimeVersion } = await import('./runtime.ts');
    return { ok: true, version: onnxRuntimeVersion() };
  } catch (err) {
    return { ok: false, error: (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300) };
  }
}

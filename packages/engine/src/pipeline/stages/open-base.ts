/**
 * Stage 2, open the base: the task opens it as its frozen encoder, cut at `spec.cutLayer`
 * (`invalid_cut_layer` lists the valid layers), and, when the encoder is a tfjs layers model, the
 * layers phase 2 would unfreeze are chosen (`invalid_layer`). The plan decides whether they are;
 * then the backend is checked for the gradient kernels the plan needs (`unsupported_on_backend`).
 */
import type { TaskEncoder } from '../../tasks/task.ts';
import { assertGradientKernels, selectTrainableLayers, type TrainableSelection } from '../../train/freezing.ts';
import type { RunContext } from '../context.ts';
import type { PhasePlan } from './plan-phases.ts';

export interface OpenedEncoder {
  encoder: TaskEncoder;
  /** What `spec.trainableLayers` selects in the encoder (nothing for a frozen-only encoder). */
  selection: TrainableSelection;
}

export async function openEncoder(ctx: RunContext): Promise<OpenedEncoder> {
  const { spec } = ctx;
  const encoder = await ctx.task.openEncoder(ctx.base, {
    cutLayer: spec.cutLayer,
    cacheDir: ctx.cacheDir ?? undefined,
    signal: ctx.signal,
    ...(spec.maxBundledEncoderBytes !== undefined ? { maxBundledEncoderBytes: spec.maxBundledEncoderBytes } : {}),
  });
  ctx.onDispose(() => encoder.dispose());
  await reportFeatureRuntime(ctx, encoder);
  const selection = encoder.cut ? selectTrainableLayers(encoder.cut, spec.trainableLayers) : { layers: [], names: [], clampedFrom: null };
  return { encoder, selection };
}

/**
 * The second `backend` event, when a frozen layers encoder was meant for ONNX Runtime: on it (with
 * the check's error against tfjs), or back on tfjs and why. A setting or backend that keeps tfjs
 * was said in the first `backend` event already.
 */
async function reportFeatureRuntime(ctx: RunContext, encoder: TaskEncoder): Promise<void> {
  const r = encoder.featureRuntime;
  if (!r || (r.runtime === 'tfjs' && !r.fallback)) return;
  ctx.record.featureRuntime = r.runtime;
  const o = r.onnx;
  await ctx.emit({
    level: 'info',
    type: 'backend',
    message: o
      ? `Frozen base features on ONNX Runtime ${o.version} (${o.threads} threads, ${o.batchSize} per call): the converted base ${o.cached ? 'was reused from the cache' : `was converted in ${o.convertMs} ms`} and matched TensorFlow.js (${o.checkedOn}) within a relative error of ${o.relError.toExponential(1)}.`
      : `Frozen base features stay on TensorFlow.js: ${r.reason}.`,
    data: { featureRuntime: r.runtime, fallback: r.fallback, reason: r.reason, onnx: o },
  });
}

/** `unsupported_on_backend` before any expensive work when the backend cannot compute the gradients the plan needs. */
export function assertBackendCanTrain(encoder: TaskEncoder, selection: TrainableSelection, plan: PhasePlan): void {
  if (plan.fineTune) assertGradientKernels(encoder.cut!, selection.layers, 'phase 2 (fine-tune)');
  if (plan.baseline) assertGradientKernels(encoder.cut!, encoder.cut!.layers.filter((l) => l.weights.length > 0), 'the scratch baseline');
}

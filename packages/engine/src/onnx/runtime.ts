/**
 * ONNX Runtime (onnxruntime-node, CPU) sessions for converted bases: one session per model, its
 * intra-op thread pool sized to the cores graft may use, every graph optimisation on (ONNX Runtime
 * fuses Conv+activation and re-lays convolutions out in its blocked NCHWc format on x86).
 */
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';

export interface OnnxRunnerOptions {
  /** Intra-op threads (default: the machine's available parallelism). */
  threads?: number;
}

export interface OnnxRunner {
  readonly inputName: string;
  readonly outputName: string;
  /** Per-image input shape (NHWC), e.g. [224, 224, 3]. */
  readonly inputShape: number[];
  readonly threads: number;
  /** Runs `n` images (NHWC float32, row-major) and returns the output rows. */
  run(x: Float32Array, n: number): Promise<Float32Array>;
  release(): Promise<void>;
}

export function onnxRuntimeVersion(): string {
  return ort.env.versions.node ?? ort.env.versions.common;
}

export async function openOnnxRunner(model: string | Uint8Array, io: { inputName: string; outputName: string; inputShape: number[] }, opts: OnnxRunnerOptions = {}): Promise<OnnxRunner> {
  const threads = Math.max(1, Math.floor(opts.threads ?? availableParallelism()));
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    enableCpuMemArena: true,
    enableMemPattern: true,
  };
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
  const perImage = io.inputShape.reduce((a, b) => a * b, 1);
  return {
    inputName: io.inputName,
    outputName: io.outputName,
    inputShape: io.inputShape,
    threads,
    async run(x, n) {
      if (x.length !== n * perImage) throw new Error(`ONNX input: ${x.length} values for ${n} images of [${io.inputShape}]`);
      const feeds = { [io.inputName]: new ort.Tensor('float32', x, [n, ...io.inputShape]) };
      const result = await session.run(feeds, [io.outputName]);
      const out = result[io.outputName]!;
      try {
        return (out.data as Float32Array).slice();
      } finally {
        out.dispose();
      }
    },
    release: () => session.release(),
  };
}

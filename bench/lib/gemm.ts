/**
 * A float32 GEMM (n×n · n×n) on ONNX Runtime: the machine's matrix-multiply rate as graft's runtime
 * reaches it. Timed around `session.run` alone (no output copy), so the peak is not understated.
 */
import * as ort from 'onnxruntime-node';
import { OnnxGraph } from '../../packages/engine/src/onnx/graph.ts';
import { mulberry32 } from '../../packages/engine/src/util/random.ts';

export interface Gemm {
  n: number;
  flops: number;
  /** One multiplication, seconds. */
  run(): Promise<number>;
  release(): Promise<void>;
}

export async function ortGemm(n: number, threads: number): Promise<Gemm> {
  const random = mulberry32(n);
  const values = () => Float32Array.from({ length: n * n }, () => random() - 0.5);
  const g = new OnnxGraph();
  const input = g.reserve('a');
  const output = g.reserve('c');
  g.nodes.push({ op: 'MatMul', name: 'gemm', inputs: [input, g.floats('b', [n, n], values())], outputs: [output], attrs: {} });
  const bytes = g.encode({ name: input, shape: [null, n] }, { name: output, shape: [null, n] }, { graphName: 'gemm', docString: 'GEMM peak' });
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1 });
  const feeds = { [input]: new ort.Tensor('float32', values(), [n, n]) };
  await session.run(feeds); // warm-up
  return {
    n,
    flops: 2 * n ** 3,
    async run() {
      const t = performance.now();
      await session.run(feeds);
      return (performance.now() - t) / 1000;
    },
    release: () => session.release(),
  };
}

/**
 * A small graph model with the Universal Sentence Encoder lite's signature, made by the tests: inputs
 * `indices` int32 [N, 2] and `values` int32 [N] (a sparse batch of SentencePiece ids), output one
 * vector per text. The graph uses real TensorFlow ops that tfjs-converter executes: GatherV2 (the
 * text of each id), SparseSegmentMean (mean of the ids' embedding rows per text, as TF's
 * embedding_lookup_sparse with combiner "mean"), MatMul and Tanh.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const FIXTURE_DIM = 6;
const EMBED = 8;

/** [piece, score]: six reserved symbols, then pieces (scores are log-probabilities). */
export const FIXTURE_VOCAB: [string, number][] = [
  ['<unk>', 0], ['<s>', 0], ['</s>', 0], ['<pad>', 0], ['<ctrl1>', 0], ['<ctrl2>', 0],
  ['▁', -3], ['▁the', -2], ['▁whale', -4], ['▁wh', -5], ['ale', -5], ['▁sea', -4], ['s', -3],
  ['▁a', -3], ['a', -3], ['l', -3], ['e', -3], ['t', -3], ['h', -3], ['w', -3], ['▁is', -3], ['▁big', -4],
];

/** Deterministic weights: table[i][j] = sin(i·EMBED + j), w[i][j] = cos(i·DIM + j) / 2. */
export function fixtureWeights() {
  const v = FIXTURE_VOCAB.length;
  const table = Float32Array.from({ length: v * EMBED }, (_, k) => Math.sin(k));
  const w = Float32Array.from({ length: EMBED * FIXTURE_DIM }, (_, k) => Math.cos(k) / 2);
  return { table, w };
}

/** What the graph computes for one text's ids (the test's reference). */
export function referenceVector(ids: number[]): number[] {
  const { table, w } = fixtureWeights();
  const mean = Array.from({ length: EMBED }, (_, j) => ids.reduce((s, id) => s + table[id * EMBED + j]!, 0) / ids.length);
  return Array.from({ length: FIXTURE_DIM }, (_, k) => Math.tanh(mean.reduce((s, m, j) => s + m * w[j * FIXTURE_DIM + k]!, 0)));
}

const dt = (t: string) => ({ type: t });
const shape = (dims: number[]) => ({ dim: dims.map((d) => ({ size: String(d) })) });
const constNode = (name: string, dtype: string, dims: number[]) => ({ name, op: 'Const', attr: { value: { tensor: { dtype, tensorShape: shape(dims) } }, dtype: dt(dtype) } });

/** Writes model.json, group1-shard1of1.bin and vocab.json into `dir`. `inputName` renames the ids input (to make a wrong graph). */
export async function writeUseFixture(dir: string, opts: { inputName?: string } = {}): Promise<void> {
  const v = FIXTURE_VOCAB.length;
  const values = opts.inputName ?? 'values';
  const node = [
    { name: 'indices', op: 'Placeholder', attr: { dtype: dt('DT_INT32'), shape: { shape: shape([-1, 2]) } } },
    { name: values, op: 'Placeholder', attr: { dtype: dt('DT_INT32'), shape: { shape: shape([-1]) } } },
    constNode('zero', 'DT_INT32', []),
    constNode('one', 'DT_INT32', []),
    constNode('table', 'DT_FLOAT', [v, EMBED]),
    constNode('w', 'DT_FLOAT', [EMBED, FIXTURE_DIM]),
    { name: 'rows', op: 'GatherV2', input: ['indices', 'zero', 'one'], attr: { Tparams: dt('DT_INT32'), Tindices: dt('DT_INT32'), Taxis: dt('DT_INT32'), batch_dims: { i: '0' } } },
    { name: 'pooled', op: 'SparseSegmentMean', input: ['table', values, 'rows'], attr: { T: dt('DT_FLOAT'), Tidx: dt('DT_INT32'), Tsegmentids: dt('DT_INT32') } },
    { name: 'projected', op: 'MatMul', input: ['pooled', 'w'], attr: { T: dt('DT_FLOAT'), transpose_a: { b: false }, transpose_b: { b: false } } },
    { name: 'Encoder/embeddings', op: 'Tanh', input: ['projected'], attr: { T: dt('DT_FLOAT') } },
  ];
  const { table, w } = fixtureWeights();
  const weights = Buffer.concat([
    Buffer.from(Int32Array.from([0]).buffer),
    Buffer.from(Int32Array.from([1]).buffer),
    Buffer.from(table.buffer),
    Buffer.from(w.buffer),
  ]);
  const modelJson = {
    format: 'graph-model',
    generatedBy: '2.15.0',
    convertedBy: 'graft test fixture',
    modelTopology: { node, library: {}, versions: { producer: 1 } },
    weightsManifest: [
      {
        paths: ['group1-shard1of1.bin'],
        weights: [
          { name: 'zero', shape: [], dtype: 'int32' },
          { name: 'one', shape: [], dtype: 'int32' },
          { name: 'table', shape: [v, EMBED], dtype: 'float32' },
          { name: 'w', shape: [EMBED, FIXTURE_DIM], dtype: 'float32' },
        ],
      },
    ],
  };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
  await writeFile(join(dir, 'group1-shard1of1.bin'), weights);
  await writeFile(join(dir, 'vocab.json'), JSON.stringify(FIXTURE_VOCAB));
}

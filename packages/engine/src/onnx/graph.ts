/**
 * A small in-memory ONNX graph (nodes, float32/int64 initializers, one input, one output) that the
 * converter fills and a few passes rewrite (batch-norm folding) before it is encoded with
 * `onnx-proto` — the ONNX schema (onnx.proto3) compiled for protobufjs.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** Opset 13: Clip/Pad/Reshape take their bounds and shapes as inputs; Softmax takes any axis. */
export const OPSET = 13;
/** IR version 7 is the one that goes with opset 13. */
const IR_VERSION = 7;

export type AttrValue = { int: number } | { ints: number[] } | { float: number } | { floats: number[] } | { string: string };

export interface GraphNode {
  op: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

export type Initializer = { dims: number[]; type: 'float32'; data: Float32Array } | { dims: number[]; type: 'int64'; data: BigInt64Array };

/** A graph input or output: `batch` is symbolic, other dimensions fixed (null: symbolic too). */
export interface GraphIO {
  name: string;
  /** Including the batch dimension (index 0, always symbolic). */
  shape: (number | null)[];
}

export class OnnxGraph {
  readonly nodes: GraphNode[] = [];
  readonly initializers = new Map<string, Initializer>();
  private readonly used = new Set<string>();

  /** A fresh value or node name derived from `hint` (layer names are reused as hints). */
  unique(hint: string): string {
    const base = hint.replace(/[^\w./:-]/g, '_') || 'v';
    let name = base;
    for (let k = 1; this.used.has(name); k++) name = `${base}__${k}`;
    this.used.add(name);
    return name;
  }

  /** Reserves an exact name (the graph's input). */
  reserve(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX name "${name}" is already used`);
    this.used.add(name);
    return name;
  }

  floats(hint: string, dims: number[], data: Float32Array): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`initializer ${hint}: ${data.length} values for dims [${dims}]`);
    const name = this.unique(hint);
    this.initializers.set(name, { dims, type: 'float32', data });
    return name;
  }

  int64s(hint: string, values: readonly number[]): string {
    const name = this.unique(hint);
    this.initializers.set(name, { dims: [values.length], type: 'int64', data: BigInt64Array.from(values, (v) => BigInt(v)) });
    return name;
  }

  scalar(hint: string, value: number): string {
    const name = this.unique(hint);
    this.initializers.set(name, { dims: [], type: 'float32', data: Float32Array.of(value) });
    return name;
  }

  /** Appends a node with one output; returns the output's name. */
  add(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint = op): string {
    const output = this.unique(hint);
    this.nodes.push({ op, name: this.unique(`${hint}/${op}`), inputs, outputs: [output], attrs });
    return output;
  }

  /** Nodes reading each value name. */
  consumers(): Map<string, GraphNode[]> {
    const map = new Map<string, GraphNode[]>();
    for (const node of this.nodes) {
      for (const input of node.inputs) {
        if (!input) continue;
        const list = map.get(input) ?? [];
        list.push(node);
        map.set(input, list);
      }
    }
    return map;
  }

  /** Drops initializers no node reads any more (after a rewrite). */
  pruneInitializers(): void {
    const read = new Set(this.nodes.flatMap((n) => n.inputs));
    for (const name of [...this.initializers.keys()]) if (!read.has(name)) this.initializers.delete(name);
  }

  encode(input: GraphIO, output: GraphIO, meta: { graphName: string; docString: string }): Uint8Array {
    const valueInfo = (io: GraphIO) => ({
      name: io.name,
      type: {
        tensorType: {
          elemType: onnx.TensorProto.DataType.FLOAT,
          shape: { dim: io.shape.map((d, i) => (i === 0 || d === null ? { dimParam: i === 0 ? 'batch' : `d${i}` } : { dimValue: d })) },
        },
      },
    });
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: 'graft',
      producerVersion: '1',
      docString: meta.docString,
      graph: {
        name: meta.graphName,
        node: this.nodes.map((n) => ({ opType: n.op, name: n.name, input: n.inputs, output: n.outputs, attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)) })),
        initializer: [...this.initializers].map(([name, init]) => ({
          name,
          dims: init.dims,
          dataType: init.type === 'float32' ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.INT64,
          // Little-endian raw bytes, as ONNX specifies (x86 and ARM hosts are little-endian).
          rawData: new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength),
        })),
        input: [valueInfo(input)],
        output: [valueInfo(output)],
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('int' in v) return { name, type: T.INT, i: v.int };
  if ('ints' in v) return { name, type: T.INTS, ints: v.ints };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.STRING, s: new TextEncoder().encode(v.string) };
}

/** Reads back the op types and initializer count of an encoded model (tests, summaries). */
export function describeModel(bytes: Uint8Array): { ops: Record<string, number>; initializers: number; opset: number } {
  const model = onnx.ModelProto.decode(bytes);
  const ops: Record<string, number> = {};
  for (const n of model.graph?.node ?? []) ops[n.opType ?? '?'] = (ops[n.opType ?? '?'] ?? 0) + 1;
  return { ops, initializers: model.graph?.initializer?.length ?? 0, opset: Number(model.opsetImport?.[0]?.version ?? 0) };
}
